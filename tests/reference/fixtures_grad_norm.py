"""Reference gradients for the normalisations and a composite expression: layer_norm and rms_norm over
one and two trailing dims, batch_norm in training and evaluation, in f64, plus the gradients of
layer_norm -> gelu -> batch_norm chained (keys "<case>.<what>")."""
import torch
import torch.nn.functional as F
from safetensors.torch import save_file


def make(out_dir):
    torch.manual_seed(0)
    t = {}
    f64 = torch.float64

    def leaf(*shape):
        return torch.randn(*shape, dtype=f64).requires_grad_()

    def record(name, out, inputs):
        g = torch.randn_like(out)
        grads = torch.autograd.grad(out, list(inputs.values()), g)
        t[f"{name}.g"] = g
        t[f"{name}.out"] = out.detach()
        for (k, v), gr in zip(inputs.items(), grads):
            t[f"{name}.{k}"] = v.detach()
            t[f"{name}.grad_{k}"] = gr

    x, w, b = leaf(3, 4, 5), leaf(5), leaf(5)
    record("layer_norm1", F.layer_norm(x, (5,), w, b, 1e-5), {"x": x, "w": w, "b": b})
    x, w, b = leaf(2, 3, 4), leaf(3, 4), leaf(3, 4)
    record("layer_norm2", F.layer_norm(x, (3, 4), w, b, 1e-5), {"x": x, "w": w, "b": b})
    x, w = leaf(3, 6), leaf(6)
    record("rms_norm", F.rms_norm(x, (6,), w, 1e-6), {"x": x, "w": w})
    x, w, b = leaf(4, 3, 2, 2), leaf(3), leaf(3)
    record("batch_norm_train", F.batch_norm(x, torch.zeros(3, dtype=f64), torch.ones(3, dtype=f64), w, b, True, 0.1, 1e-5),
           {"x": x, "w": w, "b": b})
    x, w, b = leaf(4, 3), leaf(3), leaf(3)
    rm, rv = torch.randn(3, dtype=f64), torch.rand(3, dtype=f64) + 0.5
    t["batch_norm_eval.rm"], t["batch_norm_eval.rv"] = rm, rv
    record("batch_norm_eval", F.batch_norm(x, rm, rv, w, b, False, 0.1, 1e-5), {"x": x, "w": w, "b": b})
    x, w1, b1, w2, b2 = leaf(4, 3, 6), leaf(6), leaf(6), leaf(3), leaf(3)
    y = F.batch_norm(F.gelu(F.layer_norm(x, (6,), w1, b1)), None, None, w2, b2, True)
    record("chain", y, {"x": x, "w1": w1, "b1": b1, "w2": w2, "b2": b2})
    save_file({k: v.contiguous() for k, v in t.items()}, str(out_dir / "grad_norm.safetensors"))
