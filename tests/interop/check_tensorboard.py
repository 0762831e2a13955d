#!/usr/bin/env python3
"""Interop with TensorBoard: reads the runs tests/interop/write_tensorboard.cpp wrote into DIR with
TensorBoard's own readers (its record reader, which checks every CRC, and EventAccumulator) and checks tags,
steps and values; also reads the CSVLogger's metrics.csv with Python's csv module. Values are formulas of
the step, shared with write_tensorboard.cpp."""
import csv
import glob
import math
import os
import struct
import sys
import time

from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.tensorflow_stub import errors, pywrap_tensorflow

STEPS = 20


def f32(x):
    """x rounded to float32, as TensorBoard stores simple_value."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def expected():
    out = {"train_loss": [], "lr": [], "val_acc": [], "epoch": []}
    for step in range(STEPS):
        out["train_loss"].append((step, 1.0 / (step + 1)))
        out["lr"].append((step, 0.1 * 0.5 ** (step // 5)))
        if step % 5 == 4:
            out["val_acc"].append((step, step / 20.0 + 0.05))
            out["epoch"].append((step, float(step // 5)))
    return out


def check(cond, what):
    if not cond:
        sys.exit("check_tensorboard: FAILED: " + what)


def read_records(path):
    """Every record of the file through TensorBoard's reader; a CRC mismatch raises DataLossError."""
    reader = pywrap_tensorflow.PyRecordReader_New(path)
    records = []
    while True:
        try:
            reader.GetNext()
        except errors.OutOfRangeError:
            return records
        records.append(reader.record())


def check_events(run_dir):
    files = glob.glob(os.path.join(run_dir, "events.out.tfevents.*"))
    check(len(files) == 1, f"one event file in {run_dir}, found {files}")
    events = [event_pb2.Event.FromString(r) for r in read_records(files[0])]
    want = expected()
    check(len(events) == 2 + STEPS + len(want["val_acc"]), f"{len(events)} records")
    check(events[0].file_version == "brain.Event:2", f"file_version {events[0].file_version!r}")
    now = time.time()
    for e in events:
        check(now - 3600 < e.wall_time <= now + 1, f"wall_time {e.wall_time}")

    acc = ea.EventAccumulator(run_dir, size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
    acc.Reload()
    check(acc.file_version == 2.0, f"EventAccumulator file_version {acc.file_version}")
    tags = acc.Tags()
    check(sorted(tags["scalars"]) == sorted(want), f"scalar tags {tags['scalars']}")
    for tag, points in want.items():
        got = [(s.step, s.value) for s in acc.Scalars(tag)]
        check(len(got) == len(points), f"{tag}: {len(got)} points, expected {len(points)}")
        for (gs, gv), (ws, wv) in zip(got, points):
            check(gs == ws and gv == f32(wv), f"{tag} at step {gs}: {gv}, expected step {ws} value {f32(wv)}")

    check("hparams" in tags["tensors"], f"tensor tags {tags['tensors']}")
    check("hparams" in acc.PluginTagToContent("text"), "hparams is not a text-plugin summary")
    text_events = acc.Tensors("hparams")
    check(len(text_events) == 1, f"{len(text_events)} hparams events")
    text = text_events[0].tensor_proto.string_val[0].decode("utf-8")
    for row in ("| lr | 0.001 |", "| model.hidden | 32 |", "| model.layers | [64,32] |", "| optimizer | adam |"):
        check(row in text, f"hparams text lacks {row!r}:\n{text}")
    check(os.path.isfile(os.path.join(run_dir, "hparams.yaml")), "hparams.yaml next to the event file")


def check_csv(run_dir):
    with open(os.path.join(run_dir, "metrics.csv"), newline="") as f:
        reader = csv.DictReader(f)
        check(reader.fieldnames == ["epoch", "lr", "step", "train_loss", "val_acc"], f"header {reader.fieldnames}")
        rows = list(reader)
    want = expected()
    train = [r for r in rows if r["train_loss"]]
    val = [r for r in rows if r["val_acc"]]
    check(len(train) == STEPS and len(val) == len(want["val_acc"]), f"{len(rows)} rows")
    for r, (step, v) in zip(train, want["train_loss"]):
        check(int(r["step"]) == step and float(r["train_loss"]) == v, f"metrics.csv row {r}")
    for r, (step, v) in zip(val, want["val_acc"]):
        check(int(r["step"]) == step and float(r["val_acc"]) == v, f"metrics.csv row {r}")
        check(r["epoch"] == str(step // 5), f"metrics.csv epoch in {r}")  # written as Lightning does: "0"
    check(os.path.isfile(os.path.join(run_dir, "metrics.svg")), "metrics.svg next to metrics.csv")
    try:
        import yaml
    except ImportError:
        return
    with open(os.path.join(run_dir, "hparams.yaml")) as f:
        hp = yaml.safe_load(f)
    check(hp == {"lr": 0.001, "model": {"hidden": 32, "layers": [64, 32]}, "optimizer": "adam"}, f"hparams {hp}")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: check_tensorboard.py DIR")
    root = sys.argv[1]
    check_events(os.path.join(root, "tb", "version_0"))
    check_csv(os.path.join(root, "csv", "version_0"))
    print("check_tensorboard: OK")


if __name__ == "__main__":
    main()
