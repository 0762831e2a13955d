"""Reference values and input gradients of the nn::functional losses, from torch.nn.functional in float64
(one float32 cross_entropy case checks the fused f32 kernel).

Each case "<case>" stores the upstream gradient "<case>.gy", the result "<case>.out" and the gradients
"<case>.grad_input" (and "<case>.grad_target" where PyTorch differentiates the target). The metadata
entry "<case>" holds the call as "fn=...;reduction=...;input=<key>;target=<key>[;weight=<key>]..." for
tests/test_loss.cpp to replay; inputs shared by several cases are stored once under the first one's name.
"""
import torch
import torch.nn.functional as F
from safetensors.torch import save_file


def make(out_dir):
    g = torch.Generator().manual_seed(7)
    f64 = torch.float64

    def randn(*shape, dtype=f64):
        return torch.randn(tuple(shape), generator=g, dtype=dtype)

    def rand(*shape):
        return torch.rand(*shape, generator=g, dtype=f64)

    def randint(high, *shape):
        return torch.randint(0, high, shape, generator=g)

    t, meta = {}, {}

    stored, keep = {}, []  # id of an input tensor -> its key: shared inputs are stored once

    def put(key, v):
        if id(v) not in stored:
            stored[id(v)] = key
            keep.append(v)  # alive, so that its id is not reused
            t[key] = v.clone()
        return stored[id(v)]

    def case(name, fn, opts, input, target, grad_target=False, **kw):
        x = input.clone().requires_grad_(True)
        tg = target.clone().requires_grad_(grad_target)
        out = fn(x, tg, **kw)
        gy = randn(*out.shape, dtype=out.dtype)
        leaves = [x] + ([tg] if grad_target else [])
        grads = torch.autograd.grad(out, leaves, gy)
        opts = {k: v for k, v in opts.items() if k not in ("weight", "pos_weight")}  # set below when given
        opts.update(input=put(f"{name}.input", input), target=put(f"{name}.target", target))
        for k in ("weight", "pos_weight"):
            if kw.get(k) is not None:
                opts[k] = put(f"{name}.{k}", kw[k])
        t[f"{name}.out"], t[f"{name}.gy"] = out.detach(), gy
        t[f"{name}.grad_input"] = grads[0]
        if grad_target:
            t[f"{name}.grad_target"] = grads[1]
        meta[name] = ";".join(f"{k}={v}" for k, v in opts.items())

    reductions = ["none", "mean", "sum"]

    # Regression losses (input and target gradients); exact ties at 0 and at beta / delta.
    x, y = randn(3, 4), randn(3, 4)
    y[0, 0] = x[0, 0]
    y[0, 1] = x[0, 1] - 0.5
    for r in reductions:
        case(f"mse_{r}", F.mse_loss, {"fn": "mse_loss", "reduction": r}, x, y, grad_target=True, reduction=r)
        case(f"l1_{r}", F.l1_loss, {"fn": "l1_loss", "reduction": r}, x, y, grad_target=True, reduction=r)
        for beta in (1.0, 0.5, 0.0):
            case(f"smooth_l1_{r}_{beta}", F.smooth_l1_loss, {"fn": "smooth_l1_loss", "reduction": r, "beta": beta}, x,
                 y, grad_target=True, reduction=r, beta=beta)
        for delta in (1.0, 0.5, 2.0):
            case(f"huber_{r}_{delta}", F.huber_loss, {"fn": "huber_loss", "reduction": r, "delta": delta}, x, y,
                 grad_target=True, reduction=r, delta=delta)

    # cross_entropy with class indices: weight, ignore_index (default and custom), label smoothing,
    # K-dimensional input, unbatched input, a batch whose every target is ignored.
    logits = randn(6, 5) * 2
    tgt = randint(5, 6)
    tgt_ign = tgt.clone()
    tgt_ign[1], tgt_ign[4] = -100, -100
    assert (tgt == 3).any()  # the ignore_index=3 cases drop these rows
    w = rand(5) + 0.2
    kd_logits, kd_tgt = randn(2, 5, 3, 2), randint(5, 2, 3, 2)
    kd_tgt[0, 1, 0] = -100
    all_ign = torch.full((4,), -100, dtype=torch.long)
    probs = torch.softmax(randn(6, 5), 1)
    kd_probs = torch.softmax(randn(2, 5, 3), 1)
    for r in reductions:
        for ls in (0.0, 0.15):
            for wname, wt in (("", None), ("_w", w)):
                o = {"fn": "cross_entropy", "reduction": r, "label_smoothing": ls}
                sfx = f"{r}_{ls}{wname}"
                case(f"ce_{sfx}", F.cross_entropy, o, logits, tgt, weight=wt, reduction=r, label_smoothing=ls)
                case(f"ce_ign_{sfx}", F.cross_entropy, o, logits, tgt_ign, weight=wt, reduction=r,
                     label_smoothing=ls)
                case(f"ce_ign3_{sfx}", F.cross_entropy, {**o, "ignore_index": 3}, logits, tgt, weight=wt,
                     reduction=r, label_smoothing=ls, ignore_index=3)
                case(f"ce_kd_{sfx}", F.cross_entropy, o, kd_logits, kd_tgt, weight=wt, reduction=r,
                     label_smoothing=ls)
                case(f"ce_allign_{sfx}", F.cross_entropy, o, logits[:4], all_ign, weight=wt, reduction=r,
                     label_smoothing=ls)
                case(f"ce_probs_{sfx}", F.cross_entropy, o, logits, probs, weight=wt, grad_target=True, reduction=r,
                     label_smoothing=ls)
                case(f"ce_kdprobs_{sfx}", F.cross_entropy, o, kd_logits[:, :, :, 0], kd_probs, weight=wt, reduction=r,
                     label_smoothing=ls)
        case(f"ce_unbatched_{r}", F.cross_entropy, {"fn": "cross_entropy", "reduction": r, "label_smoothing": 0.1},
             logits[0], tgt[0], reduction=r, label_smoothing=0.1)
        case(f"ce_unbatched_probs_{r}", F.cross_entropy, {"fn": "cross_entropy", "reduction": r}, logits[0], probs[0],
             reduction=r)
    # float32: the fused f32 kernel (vectorised exp) against PyTorch in f32.
    l32 = randn(8, 7, dtype=torch.float32) * 3
    t32 = randint(7, 8)
    t32[2] = -100
    for r in reductions:
        case(f"ce_f32_{r}", F.cross_entropy, {"fn": "cross_entropy", "reduction": r, "label_smoothing": 0.1},
             l32, t32, reduction=r, label_smoothing=0.1)

    # nll_loss on log-probabilities.
    logp = torch.log_softmax(logits, 1)
    kd_logp = torch.log_softmax(kd_logits, 1)
    for r in reductions:
        for wname, wt in (("", None), ("_w", w)):
            o = {"fn": "nll_loss", "reduction": r}
            case(f"nll_{r}{wname}", F.nll_loss, o, logp, tgt_ign, weight=wt, reduction=r)
            case(f"nll_kd_{r}{wname}", F.nll_loss, o, kd_logp, kd_tgt, weight=wt, reduction=r)
            case(f"nll_ign3_{r}{wname}", F.nll_loss, {**o, "ignore_index": 3}, logp, tgt, weight=wt, reduction=r,
                 ignore_index=3)
            case(f"nll_allign_{r}{wname}", F.nll_loss, o, logp[:4], all_ign, weight=wt, reduction=r)

    # binary_cross_entropy: probabilities including exact 0 and 1 (the clamped logs), weight [4] broadcast.
    p = rand(3, 4) * 0.9 + 0.05
    p[0, 0], p[0, 1] = 0.0, 1.0
    bt = rand(3, 4)
    bt[0, 0], bt[0, 1] = 1.0, 0.0
    bw = rand(4) + 0.5
    pz = p.clone()
    pz[0, 0], pz[0, 1] = 0.3, 0.6  # the target gradient is finite only away from 0 and 1
    for r in reductions:
        for wname, wt in (("", None), ("_w", bw)):
            o = {"fn": "binary_cross_entropy", "reduction": r}
            case(f"bce_{r}{wname}", F.binary_cross_entropy, o, p, bt, weight=wt, reduction=r)
            case(f"bce_t_{r}{wname}", F.binary_cross_entropy, o, pz, bt, weight=wt, grad_target=True, reduction=r)

    # binary_cross_entropy_with_logits: an exact 0 and large logits, weight and pos_weight [4].
    z = randn(3, 4) * 3
    z[0, 0], z[1, 1], z[2, 2] = 0.0, 40.0, -40.0
    pw = rand(4) * 2 + 0.3
    for r in reductions:
        for wname, wt in (("", None), ("_w", bw)):
            for pname, pwt in (("", None), ("_pw", pw)):
                o = {"fn": "binary_cross_entropy_with_logits", "reduction": r}
                case(f"bcel_{r}{wname}{pname}", F.binary_cross_entropy_with_logits, o, z, bt, weight=wt,
                     pos_weight=pwt, grad_target=True, reduction=r)

    # kl_div: probabilities with exact zeros in the target (input gradient only), and log targets.
    inp = torch.log_softmax(randn(3, 5), 1)
    kt = torch.softmax(randn(3, 5), 1)
    kt0 = kt.clone()
    kt0[0, 1], kt0[2, 3] = 0.0, 0.0
    for r in reductions + ["batchmean"]:
        case(f"kl_{r}", F.kl_div, {"fn": "kl_div", "reduction": r}, inp, kt, grad_target=True, reduction=r)
        case(f"kl_zero_{r}", F.kl_div, {"fn": "kl_div", "reduction": r}, inp, kt0, reduction=r)
        case(f"kl_log_{r}", F.kl_div, {"fn": "kl_div", "reduction": r, "log_target": 1}, inp, kt.log(),
             grad_target=True, reduction=r, log_target=True)

    save_file({k: v.contiguous() for k, v in t.items()}, str(out_dir / "loss.safetensors"), metadata=meta)
