"""Fixtures for tests/test_optim.cpp: optimizer trajectories, learning-rate sequences and gradient clipping
from PyTorch (torch.optim, torch.optim.lr_scheduler, torch.nn.utils).

Optimizers: three parameters with fixed initial values and a fixed sequence of ten gradients each
("init.<j>", "grad.<k>.<j>", f64). Each case (described in the metadata entry "cases" as JSON: optimizer,
groups with PyTorch option names, and steps at which a parameter has no gradient) records the parameters
after every step in f64 ("<case>.step<k>.<j>") and after the last step in f32 ("<case>.f32.<j>").
Schedulers: "sched.<case>.lr" [steps + 1, groups] holds get_last_lr() after construction and after each
step ("sched.<case>.momentum" the groups' momentum or beta1 for OneCycleLR; "sched.<case>.metrics" the
metrics fed to ReduceLROnPlateau). Clipping: "clip.grad.<j>" and per case "clip.<case>.total" and
"clip.<case>.<j>" (the clipped gradients).
"""
import json
import math
import os

import torch
from safetensors.torch import save_file

SHAPES = [(3, 4), (5,), (2, 1, 3)]
STEPS = 10


def optimizer_cases():
    def one(opt, options, no_grad=None):
        return {"optimizer": opt, "groups": [{"params": [0, 1, 2], "options": options}], "no_grad": no_grad or {}}

    def two(opt, a, b):
        return {"optimizer": opt, "groups": [{"params": [0, 1], "options": a}, {"params": [2], "options": b}],
                "no_grad": {}}

    return {
        "sgd_plain": one("SGD", {"lr": 0.1}),
        "sgd_momentum": one("SGD", {"lr": 0.1, "momentum": 0.9}),
        "sgd_dampening": one("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.5}),
        "sgd_nesterov_wd": one("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
        "sgd_wd_maximize": one("SGD", {"lr": 0.1, "momentum": 0.5, "weight_decay": 0.1, "maximize": True}),
        "sgd_groups": two("SGD", {"lr": 0.1, "momentum": 0.9}, {"lr": 0.01}),
        "sgd_skip": one("SGD", {"lr": 0.1, "momentum": 0.9}, {"1": [0, 3, 4], "2": [7]}),
        "adam_default": one("Adam", {"lr": 0.01}),
        "adam_wd_betas": one("Adam", {"lr": 0.02, "betas": [0.3, 0.99], "weight_decay": 0.1}),
        "adam_amsgrad_maximize": one("Adam", {"lr": 0.01, "amsgrad": True, "maximize": True, "eps": 1e-3}),
        "adam_decoupled": one("Adam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
        "adam_groups": two("Adam", {"lr": 0.01}, {"lr": 0.05, "betas": [0.8, 0.9]}),
        "adam_skip": one("Adam", {"lr": 0.01, "amsgrad": True}, {"1": [2, 5], "0": [9]}),
        "adamw_default": one("AdamW", {"lr": 0.01}),
        "adamw_amsgrad_wd": one("AdamW", {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True}),
        "adamw_groups": two("AdamW", {"lr": 0.01, "weight_decay": 0.0}, {"lr": 0.003, "weight_decay": 0.5}),
        "rmsprop_default": one("RMSprop", {"lr": 0.01}),
        "rmsprop_centered": one("RMSprop", {"lr": 0.01, "centered": True, "alpha": 0.9}),
        "rmsprop_momentum": one("RMSprop", {"lr": 0.01, "momentum": 0.9}),
        "rmsprop_all": one("RMSprop", {"lr": 0.005, "alpha": 0.3, "centered": True, "momentum": 0.5,
                                       "weight_decay": 0.1, "maximize": True, "eps": 1e-4}),
        "rmsprop_groups": two("RMSprop", {"lr": 0.01}, {"lr": 0.001, "momentum": 0.8}),
        "adagrad_default": one("Adagrad", {"lr": 0.1}),
        "adagrad_decay": one("Adagrad", {"lr": 0.1, "lr_decay": 0.1, "weight_decay": 0.1,
                                         "initial_accumulator_value": 0.1}),
        "adagrad_maximize": one("Adagrad", {"lr": 0.05, "maximize": True, "eps": 1e-3}, {"2": [1, 2]}),
        "adagrad_groups": two("Adagrad", {"lr": 0.1}, {"lr": 0.01, "lr_decay": 0.5}),
    }


def run_optimizer(case, inits, grads, dtype):
    params = [t.clone().to(dtype).requires_grad_() for t in inits]
    cls = getattr(torch.optim, case["optimizer"])
    groups = []
    for g in case["groups"]:
        opts = dict(g["options"])
        if "betas" in opts:
            opts["betas"] = tuple(opts["betas"])
        groups.append({"params": [params[i] for i in g["params"]], **opts})
    if len(groups) == 1:  # one group: the options go to the constructor (Adagrad reads its accumulator there)
        opt = cls(groups[0].pop("params"), **groups[0], foreach=False)
    else:
        opt = cls(groups, foreach=False)
    out = []
    for k in range(STEPS):
        for j, p in enumerate(params):
            skip = k in case["no_grad"].get(str(j), [])
            p.grad = None if skip else grads[k][j].clone().to(dtype)
        opt.step()
        out.append([p.detach().clone() for p in params])
    return out


def lr_run(opt, sched, steps, metrics=None):
    lrs = [list(sched.get_last_lr())]
    moms = [[g.get("momentum", g.get("betas", (0.0,))[0]) for g in opt.param_groups]]
    for k in range(steps):
        opt.step()
        if metrics is None:
            sched.step()
        else:
            sched.step(float(metrics[k]))
        lrs.append(list(sched.get_last_lr()))
        moms.append([g.get("momentum", g.get("betas", (0.0,))[0]) for g in opt.param_groups])
    return torch.tensor(lrs, dtype=torch.float64), torch.tensor(moms, dtype=torch.float64)


def scheduler_cases(out):
    S = torch.optim.lr_scheduler

    def sgd(momentum=0.0):
        w = [torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)]
        return torch.optim.SGD([{"params": [w[0]], "lr": 0.1}, {"params": [w[1]], "lr": 0.05}], momentum=momentum)

    def adam():
        w = [torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)]
        return torch.optim.Adam([{"params": [w[0]], "lr": 0.1}, {"params": [w[1]], "lr": 0.05}],
                                betas=(0.9, 0.99))

    def add(name, opt, make, steps, metrics=None):
        sched = make(opt)
        lr, mom = lr_run(opt, sched, steps, metrics)
        out[f"sched.{name}.lr"] = lr
        out[f"sched.{name}.momentum"] = mom
        if metrics is not None:
            out[f"sched.{name}.metrics"] = torch.tensor(metrics, dtype=torch.float64)

    add("step", sgd(), lambda o: S.StepLR(o, step_size=7, gamma=0.5), 40)
    add("multistep", sgd(), lambda o: S.MultiStepLR(o, milestones=[12, 5, 30, 12], gamma=0.3), 40)
    add("exponential", sgd(), lambda o: S.ExponentialLR(o, gamma=0.95), 50)
    add("cosine", sgd(), lambda o: S.CosineAnnealingLR(o, T_max=30, eta_min=0.001), 100)
    add("cosine_zero", sgd(), lambda o: S.CosineAnnealingLR(o, T_max=10), 25)
    add("linear_warmup", sgd(), lambda o: S.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=10), 30)
    add("linear_decay", sgd(), lambda o: S.LinearLR(o, start_factor=1.0, end_factor=0.2, total_iters=20), 30)
    add("lambda", sgd(), lambda o: S.LambdaLR(o, lambda e: 1.0 / (1.0 + 0.1 * e)), 30)
    add("lambda_per_group", sgd(), lambda o: S.LambdaLR(o, [lambda e: 0.9 ** e, lambda e: 1.0 + e % 3]), 30)
    add("onecycle_cos", sgd(momentum=0.9), lambda o: S.OneCycleLR(o, max_lr=[1.0, 0.5], total_steps=50), 50)
    add("onecycle_linear3", adam(),
        lambda o: S.OneCycleLR(o, max_lr=0.2, epochs=4, steps_per_epoch=10, pct_start=0.25,
                               anneal_strategy="linear", three_phase=True, div_factor=10.0,
                               final_div_factor=100.0, base_momentum=0.8, max_momentum=0.9), 40)
    add("sequential", sgd(),
        lambda o: S.SequentialLR(o, [S.LinearLR(o, start_factor=0.1, total_iters=5),
                                     S.CosineAnnealingLR(o, T_max=20, eta_min=0.001)], milestones=[5]), 30)
    add("sequential3", sgd(),
        lambda o: S.SequentialLR(o, [S.ExponentialLR(o, gamma=0.9), S.StepLR(o, step_size=3, gamma=0.5),
                                     S.MultiStepLR(o, milestones=[12, 14], gamma=0.1)], milestones=[4, 10]), 20)
    m1 = [1.0, 0.9, 0.95, 0.91, 0.9, 0.92, 0.85, 0.86, 0.855, 0.9, 0.8, 0.81, 0.82, 0.83, 0.84, 0.7, 0.71,
          0.72, 0.73, 0.74, 0.75, 0.76, 0.77, 0.78, 0.79]
    add("plateau_min", sgd(),
        lambda o: S.ReduceLROnPlateau(o, mode="min", factor=0.5, patience=2, threshold=0.01, cooldown=1,
                                      min_lr=[0.01, 0.001]), len(m1), m1)
    m2 = [0.1, 0.2, 0.2, 0.21, 0.25, 0.25, 0.24, 0.3, 0.3, 0.3, 0.3, 0.3, 0.31, 0.35, 0.35, 0.35, 0.35, 0.35]
    add("plateau_max_abs", sgd(),
        lambda o: S.ReduceLROnPlateau(o, mode="max", factor=0.1, patience=1, threshold=0.02,
                                      threshold_mode="abs"), len(m2), m2)


def clip_cases(out, gen):
    grads = [torch.randn(s, generator=gen, dtype=torch.float64) * 0.7 for s in SHAPES]
    for j, g in enumerate(grads):
        out[f"clip.grad.{j}"] = g
    for name, max_norm, norm_type in [("l2", 1.0, 2.0), ("l1", 2.0, 1.0), ("inf", 0.5, math.inf),
                                      ("l2_noclip", 100.0, 2.0), ("l3", 1.0, 3.0)]:
        ps = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in SHAPES]
        for p, g in zip(ps, grads):
            p.grad = g.clone()
        total = torch.nn.utils.clip_grad_norm_(ps, max_norm, norm_type=norm_type, foreach=False)
        out[f"clip.{name}.total"] = total.detach().clone()
        for j, p in enumerate(ps):
            out[f"clip.{name}.{j}"] = p.grad.clone()
    ps = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in SHAPES]
    for p, g in zip(ps, grads):
        p.grad = g.clone()
    torch.nn.utils.clip_grad_value_(ps, 0.5, foreach=False)
    for j, p in enumerate(ps):
        out[f"clip.value.{j}"] = p.grad.clone()


def make(out_dir):
    gen = torch.Generator().manual_seed(1234)
    out = {}
    inits = [torch.randn(s, generator=gen, dtype=torch.float64) for s in SHAPES]
    grads = [[torch.randn(s, generator=gen, dtype=torch.float64) for s in SHAPES] for _ in range(STEPS)]
    for j, t in enumerate(inits):
        out[f"init.{j}"] = t
    for k in range(STEPS):
        for j in range(len(SHAPES)):
            out[f"grad.{k}.{j}"] = grads[k][j]
    cases = optimizer_cases()
    for name, case in cases.items():
        traj = run_optimizer(case, inits, grads, torch.float64)
        for k in range(STEPS):
            for j in range(len(SHAPES)):
                out[f"{name}.step{k}.{j}"] = traj[k][j]
        final32 = run_optimizer(case, inits, grads, torch.float32)[-1]
        for j in range(len(SHAPES)):
            out[f"{name}.f32.{j}"] = final32[j]
    scheduler_cases(out)
    clip_cases(out, gen)
    out = {k: v.contiguous() for k, v in out.items()}
    save_file(out, os.path.join(out_dir, "optim.safetensors"),
              metadata={"cases": json.dumps(cases), "torch": torch.__version__, "source": "fixtures_optim.py"})


if __name__ == "__main__":
    make(os.path.dirname(os.path.abspath(__file__)))
