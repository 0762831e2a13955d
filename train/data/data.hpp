// ember::data: datasets, DataLoader, samplers, file readers and the bundled real data sets.
#pragma once
#include "train/data/batch.hpp"
#include "train/data/datamodule.hpp"
#include "train/data/dataset.hpp"
#include "train/data/datasets.hpp"
#include "train/data/loader.hpp"
#include "train/data/readers.hpp"
#include "train/data/sampler.hpp"
#include "train/data/text.hpp"
