// ember::metrics: values against torchmetrics and scikit-learn (tests/reference/fixtures_metrics.py),
// accumulation over uneven batches, forward's batch value, state save/load/merge and the DDP join, and
// the Trainer's handling of logged metric objects: compute and reset at epoch ends, exact resume.
#include <doctest/doctest.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dist/communicator.hpp"
#include "ember.hpp"
#include "test_util.hpp"
#include "trainer_fixtures.hpp"

using namespace ember;
using testing::throws_with;
namespace mt = ember::metrics;

namespace {

const TensorMap& fx() {
  static const TensorMap m = testing::fixtures("metrics");
  return m;
}
Tensor in(const std::string& k) { return fx().at("in." + k); }
Tensor ref(const std::string& k) { return fx().at("ref." + k); }

// Feeds (preds, target) in uneven batches (50, 64, 17, 50, ...) along dim 0 and returns compute().
Tensor feed(mt::Metric& m, const Tensor& preds, const Tensor& target = {}) {
  const int64_t sizes[] = {50, 64, 17};
  for (int64_t start = 0, i = 0; start < preds.size(0); ++i) {
    const int64_t len = std::min(sizes[i % 3], preds.size(0) - start);
    m.update(preds.narrow(0, start, len), target.defined() ? target.narrow(0, start, len) : Tensor());
    start += len;
  }
  return m.compute();
}

bool matches(const Tensor& got, const std::string& case_name) {
  CAPTURE(case_name);
  const Tensor want = ref(case_name);
  CHECK(got.dtype() == want.dtype());
  return testing::allclose(got.to(kF64), want.to(kF64), 1e-5, 1e-6);
}

template <class M>
std::function<std::unique_ptr<mt::Metric>(mt::ClassificationOptions)> maker() {
  return [](mt::ClassificationOptions o) { return std::make_unique<M>(o); };
}

}  // namespace

TEST_SUITE("metrics") {
  TEST_CASE("classification metrics match torchmetrics (and scikit-learn) over uneven batches") {
    const std::vector<std::pair<std::string, std::function<std::unique_ptr<mt::Metric>(mt::ClassificationOptions)>>>
        kinds = {{"acc", maker<mt::Accuracy>()},
                 {"prec", maker<mt::Precision>()},
                 {"rec", maker<mt::Recall>()},
                 {"f1", maker<mt::F1Score>()}};
    for (const auto& [k, make] : kinds) {
      CHECK(matches(feed(*make({}), in("bin_prob"), in("bin_target")), k + "_bin_prob"));
      CHECK(matches(feed(*make({.threshold = 0.3}), in("bin_logit"), in("bin_target")), k + "_bin_logit"));
      CHECK(matches(feed(*make({.ignore_index = -1}), in("bin_prob"), in("bin_target_ign")), k + "_bin_ign"));
      for (std::string avg : {"micro", "macro", "weighted", "none"}) {
        const mt::ClassificationOptions o{.task = "multiclass", .num_classes = 5, .average = avg};
        CHECK(matches(feed(*make(o), in("mc_logits"), in("mc_target")), k + "_mc_" + avg));
        CHECK(matches(feed(*make(o), in("mc_labels"), in("mc_target")), k + "_mc_labels_" + avg));
        mt::ClassificationOptions top2 = o;
        top2.top_k = 2;
        CHECK(matches(feed(*make(top2), in("mc_logits"), in("mc_target")), k + "_mc_top2_" + avg));
        mt::ClassificationOptions ign = o;
        ign.ignore_index = -1;
        CHECK(matches(feed(*make(ign), in("mc_logits"), in("mc_target_ign")), k + "_mc_ign_" + avg));
      }
    }
  }

  TEST_CASE("ConfusionMatrix, AUROC, regression, Perplexity and aggregation metrics match torchmetrics") {
    mt::ConfusionMatrix cm_bin;
    CHECK(matches(feed(cm_bin, in("bin_prob"), in("bin_target")), "cm_bin"));
    mt::ConfusionMatrix cm({.task = "multiclass", .num_classes = 5});
    CHECK(matches(feed(cm, in("mc_logits"), in("mc_target")), "cm_mc"));
    mt::ConfusionMatrix cm_true({.task = "multiclass", .num_classes = 5, .normalize = "true"});
    CHECK(matches(feed(cm_true, in("mc_logits"), in("mc_target")), "cm_mc_true"));
    mt::ConfusionMatrix cm_ign({.task = "multiclass", .num_classes = 5, .ignore_index = -1});
    CHECK(matches(feed(cm_ign, in("mc_logits"), in("mc_target_ign")), "cm_mc_ign"));

    mt::AUROC auroc;
    CHECK(matches(feed(auroc, in("bin_prob"), in("bin_target")), "auroc_bin_prob"));
    mt::AUROC auroc_logit;
    CHECK(matches(feed(auroc_logit, in("bin_logit"), in("bin_target")), "auroc_bin_logit"));
    for (std::string avg : {"macro", "weighted", "none"}) {
      mt::AUROC a({.task = "multiclass", .num_classes = 5, .average = avg});
      CHECK(matches(feed(a, in("mc_logits"), in("mc_target")), "auroc_mc_" + avg));
    }
    // Ties count half, and a class without positives scores 0 (torchmetrics).
    mt::AUROC ties;
    ties.update(tensor({0.5, 0.5, 0.2, 0.9}), tensor<int64_t>({1, 0, 0, 1}));
    CHECK(ties.compute().item<float>() == doctest::Approx(0.875));
    mt::AUROC none_pos;
    none_pos.update(tensor({0.1, 0.7}), tensor<int64_t>({0, 0}));
    CHECK(none_pos.compute().item<float>() == 0.0f);

    mt::MeanSquaredError mse;
    CHECK(matches(feed(mse, in("reg_preds"), in("reg_target")), "mse"));
    mt::MeanSquaredError rmse({.squared = false});
    CHECK(matches(feed(rmse, in("reg_preds"), in("reg_target")), "rmse"));
    mt::MeanAbsoluteError mae;
    CHECK(matches(feed(mae, in("reg_preds"), in("reg_target")), "mae"));
    mt::Perplexity ppl;
    CHECK(matches(feed(ppl, in("lm_logits"), in("lm_target")), "ppl"));
    mt::Perplexity ppl_ign({.ignore_index = -100});
    CHECK(matches(feed(ppl_ign, in("lm_logits"), in("lm_target_ign")), "ppl_ign"));

    mt::MeanMetric mean;
    CHECK(matches(feed(mean, in("values"), in("weights")), "mean_weighted"));
    mt::SumMetric sum;
    CHECK(matches(feed(sum, in("values")), "sum"));
    mt::MaxMetric max;
    CHECK(matches(feed(max, in("values")), "max"));
    mt::MinMetric min;
    CHECK(matches(feed(min, in("values")), "min"));
    // Plain numbers, and NaNs left out by default.
    mt::MeanMetric m2({.nan_strategy = "ignore"});
    m2.update(1.0);
    m2.update(4.0, 2.0);
    m2.update(std::nan(""));
    CHECK(m2.compute().item<float>() == doctest::Approx(3.0));
    mt::MeanMetric strict({.nan_strategy = "error"});
    CHECK(throws_with<ValueError>([&] { strict.update(std::nan("")); }, "[MeanMetric.update] got a NaN"));
  }

  TEST_CASE("forward returns the batch's value and accumulates; reset clears") {
    mt::Accuracy acc({.task = "multiclass", .num_classes = 5});
    const Tensor p = in("mc_logits"), t = in("mc_target");
    const Tensor first = acc(p.narrow(0, 0, 100), t.narrow(0, 0, 100));
    const Tensor second = acc(p.narrow(0, 100, 103), t.narrow(0, 100, 103));
    mt::Accuracy alone({.task = "multiclass", .num_classes = 5});
    alone.update(p.narrow(0, 100, 103), t.narrow(0, 100, 103));
    CHECK(second.item<float>() == alone.compute().item<float>());
    CHECK(acc.forward_value().item<float>() == second.item<float>());
    CHECK(first.item<float>() != second.item<float>());
    CHECK(matches(acc.compute(), "acc_mc_micro"));  // both batches
    CHECK(acc.update_count() == 2);
    // A rejected batch leaves the state as it was.
    CHECK(throws_with<ShapeError>([&] { acc(p.narrow(0, 0, 3), t.narrow(0, 0, 4)); }, "[Accuracy.update] scores"));
    CHECK(matches(acc.compute(), "acc_mc_micro"));
    acc.reset();
    CHECK(acc.update_count() == 0);
    CHECK(!acc.forward_value().defined());
    CHECK(acc.state_dict().at("tp").sum().item<int64_t>() == 0);
  }

  TEST_CASE("state: save, load, merge halves, the single-process DDP join, make_metric") {
    const Tensor p = in("mc_logits"), t = in("mc_target");
    auto a = std::make_unique<mt::AUROC>(mt::AUROCOptions{.task = "multiclass", .num_classes = 5});
    mt::F1Score f1({.task = "multiclass", .num_classes = 5, .average = "macro"});
    for (mt::Metric* m : std::vector<mt::Metric*>{a.get(), &f1}) {
      CAPTURE(m->name());
      // Two "ranks" with a half each, joined, equal the whole.
      auto first = mt::make_metric(m->name(), m->config());
      auto second = mt::make_metric(m->name(), m->config());
      first->update(p.narrow(0, 0, 77), t.narrow(0, 0, 77));
      second->update(p.narrow(0, 77, 126), t.narrow(0, 77, 126));
      first->merge_state(second->state_dict());
      m->update(p, t);
      CHECK(testing::allclose(first->compute(), m->compute(), 1e-6, 1e-7));
      // Save and load into a fresh one.
      auto restored = mt::make_metric(m->name(), m->config());
      restored->load_state_dict(m->state_dict());
      CHECK(testing::equal(restored->compute(), m->compute()));
      // The one-process communicator's join leaves the state as it is.
      auto comm = dist::make_single_process_communicator();
      const Tensor before = m->compute();
      m->sync(*comm);
      CHECK(testing::equal(m->compute(), before));
    }
    CHECK(a->state_reduce("preds") == mt::Reduce::kCat);
    CHECK(f1.state_reduce("tp") == mt::Reduce::kSum);
    CHECK(throws_with<ValueError>(
        [&] {
          f1.load_state_dict({{"tp", zeros({5}, {.dtype = kI64})}});
        },
        "the state 'fn' is missing"));
    CHECK(throws_with<ValueError>(
        [&] {
          f1.load_state_dict({{"tp", zeros({4}, {.dtype = kI64})},
                              {"fp", zeros({5}, {.dtype = kI64})},
                              {"tn", zeros({5}, {.dtype = kI64})},
                              {"fn", zeros({5}, {.dtype = kI64})}});
        },
        "the state 'tp' is [4] int64"));
    CHECK(throws_with<ValueError>([] { mt::make_metric("Nope", {}); }, "unknown metric \"Nope\""));
  }

  TEST_CASE("bad options and inputs are ValueErrors naming the metric") {
    CHECK(throws_with<ValueError>([] { mt::Accuracy a({.task = "multilabel"}); }, "[Accuracy] task must be"));
    CHECK(throws_with<ValueError>([] { mt::F1Score f({.task = "multiclass"}); }, "needs num_classes >= 2"));
    CHECK(throws_with<ValueError>([] { mt::Precision p({.task = "multiclass", .num_classes = 3, .average = "avg"}); },
                                  "average must be"));
    CHECK(throws_with<ValueError>([] { mt::Accuracy a({.task = "multiclass", .num_classes = 3, .top_k = 4}); },
                                  "top_k must lie in"));
    mt::Accuracy bin;
    CHECK(throws_with<ShapeError>([&] { bin.update(zeros({3}), zeros({4}, {.dtype = kI64})); },
                                  "[Accuracy.update] preds [3] float32"));
    CHECK(throws_with<ValueError>([&] { bin.update(zeros({2}), tensor<int64_t>({0, 2})); }, "other than 0 and 1"));
    CHECK(throws_with<DTypeError>([&] { bin.update(zeros({2}), zeros({2})); }, "must hold integer labels"));
    mt::Recall mc({.task = "multiclass", .num_classes = 3});
    CHECK(throws_with<ValueError>([&] { mc.update(zeros({2, 3}), tensor<int64_t>({0, 3})); }, "outside [0, 3)"));
    mt::SumMetric s;
    CHECK(throws_with<ValueError>([&] { s.update(1.0, 2.0); }, "[SumMetric.update] takes one value"));
  }
}
