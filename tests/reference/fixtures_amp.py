"""Reference values of an MLP step under torch.autocast("cpu", dtype=torch.bfloat16): Linear -> ReLU ->
Linear -> cross_entropy, float32 weights. Stores the inputs and weights, the logits (bfloat16, stored as
float32), the float32 loss and the weights' float32 gradients for tests/test_amp.cpp.
"""
import torch
import torch.nn.functional as F
from safetensors.torch import save_file


def make(out_dir):
    g = torch.Generator().manual_seed(11)
    x = torch.randn(8, 12, generator=g)
    target = torch.randint(0, 5, (8,), generator=g)
    w1 = (torch.randn(16, 12, generator=g) / 12 ** 0.5).requires_grad_()
    b1 = (torch.randn(16, generator=g) * 0.1).requires_grad_()
    w2 = (torch.randn(5, 16, generator=g) / 4).requires_grad_()
    b2 = (torch.randn(5, generator=g) * 0.1).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = F.linear(F.relu(F.linear(x, w1, b1)), w2, b2)
        loss = F.cross_entropy(logits, target)
    assert logits.dtype == torch.bfloat16 and loss.dtype == torch.float32
    loss.backward()
    t = {"x": x, "target": target, "w1": w1, "b1": b1, "w2": w2, "b2": b2, "logits": logits.float(), "loss": loss}
    for name, p in (("w1", w1), ("b1", b1), ("w2", w2), ("b2", b2)):
        t[f"grad_{name}"] = p.grad
    save_file({k: v.detach().contiguous() for k, v in t.items()}, str(out_dir / "amp.safetensors"))
