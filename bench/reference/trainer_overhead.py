"""Twin of bench/workloads/trainer_overhead.cpp: LeNet-5 on in-memory MNIST-shaped data, trained for the same
steps by a raw PyTorch loop and by PyTorch Lightning's Trainer, with its extras off (as Lightning's own
parity benchmark) and on (progress bar, CSVLogger, ModelCheckpoint at epoch end). Runs alternate; prints
JSON on the last line.
Usage: trainer_overhead.py [--epochs 3] [--batches 100] [--reps 3] [--threads N] [--model lenet|linear]
"""
import argparse
import json
import logging
import os
import pathlib
import shutil
import statistics
import sys
import tempfile
import time
import warnings

import torch
import torch.nn.functional as F
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, TensorDataset

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import models  # noqa: E402


def now_ms():
    return time.perf_counter() * 1e3


class Clock:
    """Batch start/end times per epoch; the same bookkeeping as the C++ side."""

    def __init__(self):
        self.starts, self.ends = [], []

    def epoch(self):
        self.starts.append([])
        self.ends.append([])

    def step_ms(self):
        return sum(s[-1] - s[0] for s in self.starts) / sum(len(s) - 1 for s in self.starts)

    def boundary_ms(self):
        return statistics.mean(self.starts[e + 1][0] - self.ends[e][-1] for e in range(len(self.starts) - 1))


def make_loader(batches):
    """Whole batches by tensor indexing (as Ember's TensorDataset.get_batch), so per-sample collation isn't timed."""
    g = torch.Generator().manual_seed(1)
    n = batches * 64
    ds = TensorDataset(torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g))
    sampler = BatchSampler(RandomSampler(ds, generator=torch.Generator().manual_seed(0)), 64, drop_last=False)
    return DataLoader(ds, batch_size=None, sampler=sampler)


def make_net(linear):
    """LeNet-5, or a single Linear(784, 10), where the step is so cheap that the Trainer's own cost shows."""
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10)) if linear else models.lenet()


def plain_run(epochs, loader, linear):
    torch.manual_seed(0)
    m = make_net(linear)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    c = Clock()
    for _ in range(epochs):
        c.epoch()
        for x, y in loader:
            c.starts[-1].append(now_ms())
            loss = F.cross_entropy(m(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            c.ends[-1].append(now_ms())
    return c


def lightning_run(epochs, loader, full, root, linear):
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelCheckpoint
    from pytorch_lightning.loggers import CSVLogger

    class LeNetModule(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = make_net(linear)

        def training_step(self, batch, batch_idx):
            loss = F.cross_entropy(self.net(batch[0]), batch[1])
            self.log("train_loss", loss, prog_bar=True)
            return loss

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    class ClockCallback(pl.Callback):
        def __init__(self):
            self.clock = Clock()

        def on_train_epoch_start(self, *_):
            self.clock.epoch()

        def on_train_batch_start(self, *_):
            self.clock.starts[-1].append(now_ms())

        def on_train_batch_end(self, *_):
            self.clock.ends[-1].append(now_ms())

    class TimedCheckpoint(ModelCheckpoint):
        total_ms = 0.0

        def on_train_epoch_end(self, trainer, module):
            t0 = now_ms()
            super().on_train_epoch_end(trainer, module)
            self.total_ms += now_ms() - t0

    torch.manual_seed(0)
    model, clock = LeNetModule(), ClockCallback()
    callbacks = [clock]
    if full:
        ckpt = TimedCheckpoint(dirpath=os.path.join(root, "checkpoints"))
        callbacks.append(ckpt)
    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, callbacks=callbacks,
                         enable_progress_bar=full, enable_model_summary=full, enable_checkpointing=full,
                         logger=CSVLogger(root) if full else False, default_root_dir=root)
    trainer.fit(model, loader)
    return clock.clock, (ckpt.total_ms / epochs if full else 0.0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batches", type=int, default=100)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--model", choices=("lenet", "linear"), default="lenet")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    import pytorch_lightning as pl
    loader = make_loader(args.batches)
    linear = args.model == "linear"
    plain_run(1, loader, linear)  # warm-up
    raw = {k: [] for k in ("plain_step_ms", "plain_boundary_ms", "bare_step_ms", "bare_boundary_ms",
                           "trainer_step_ms", "trainer_boundary_ms", "checkpoint_ms", "step_overhead",
                           "bare_step_overhead")}
    for _ in range(args.reps):
        root = tempfile.mkdtemp(prefix="lightning_overhead_")
        p = plain_run(args.epochs, loader, linear)
        b, _ = lightning_run(args.epochs, loader, False, root, linear)
        t, ckpt = lightning_run(args.epochs, loader, True, root, linear)
        shutil.rmtree(root, ignore_errors=True)
        for k, v in (("plain_step_ms", p.step_ms()), ("plain_boundary_ms", p.boundary_ms()),
                     ("bare_step_ms", b.step_ms()), ("bare_boundary_ms", b.boundary_ms()),
                     ("trainer_step_ms", t.step_ms()), ("trainer_boundary_ms", t.boundary_ms()),
                     ("checkpoint_ms", ckpt), ("step_overhead", t.step_ms() / p.step_ms() - 1),
                     ("bare_step_overhead", b.step_ms() / p.step_ms() - 1)):
            raw[k].append(v)
    out = {"framework": "lightning", "versions": {"torch": torch.__version__, "lightning": pl.__version__},
           "model": "Linear(784, 10), batch 64, Adam" if linear else "LeNet-5, batch 64, Adam",
           "epochs": args.epochs, "batches": args.batches, "reps": args.reps}
    out.update({k: statistics.median(v) for k, v in raw.items()})
    out["raw"] = raw
    print("\n" + json.dumps(out))


if __name__ == "__main__":
    main()
