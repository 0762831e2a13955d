"""Reference gradients for the shape, index and view ops: for each case, the inputs x<i>, a weight w of the
output's shape, and g<i> = d sum(op(x...) * w) / d x<i> from torch autograd, all float64. The index
tensors are literals repeated in tests/test_grad_shape.cpp."""
import torch
import torch.nn.functional as F
from safetensors.torch import save_file


def make(out_dir):
    g = torch.Generator().manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    def idx(values, *shape):
        return torch.tensor(values, dtype=torch.int64).reshape(shape)

    t = {}

    def case(name, fn, *inputs):
        xs = [x.clone().requires_grad_() for x in inputs]
        out = fn(*xs)
        w = randn(*out.shape)
        grads = torch.autograd.grad((out * w).sum(), xs)
        for i, (x, gr) in enumerate(zip(inputs, grads)):
            t[f"{name}.x{i}"] = x
            t[f"{name}.g{i}"] = gr.contiguous()
        t[f"{name}.w"] = w

    case("cat_flip_repeat", lambda a, b: torch.cat([a.flip(0), b], 1).repeat(2, 1), randn(2, 3), randn(2, 2))
    case("pad", lambda x: F.pad(x, (1, -1, -1, 2), value=0.5), randn(2, 3, 4))
    case("stack", lambda a, b: torch.stack([a, b], -1), randn(2, 3), randn(2, 3))
    case("gather", lambda x: x.gather(1, idx([0, 3, 3, 1, 1, 1, 2, 0, 2], 3, 3)), randn(3, 4))
    case("scatter", lambda x, s: x.scatter(1, idx([0, 4, 2, 1, 3, 0], 3, 2), s), randn(3, 5), randn(3, 2))
    case("scatter_add", lambda x, s: x.scatter_add(0, idx([0, 0, 2, 1, 0, 2, 2, 2], 2, 4), s), randn(3, 4),
         randn(2, 4))
    case("index_add", lambda x, s: x.index_add(0, idx([3, 0, 3, 3, 1], 5), s, alpha=2.5), randn(4, 3), randn(5, 3))
    case("index_select", lambda x: x.index_select(0, idx([2, 0, 2, 2], 4)), randn(3, 4))
    case("masked_fill", lambda x: x.masked_fill(torch.tensor([True, False, True]), -1.0), randn(2, 3))
    case("masked_select", lambda x: x.masked_select(idx([1, 0, 1, 1, 1, 0], 2, 3).bool()), randn(2, 3))
    case("take_along_dim", lambda x: torch.take_along_dim(x, idx([0, 3, 2, 2, 1, 0], 3, 2), 1), randn(1, 4))
    case("embedding", lambda w: F.embedding(idx([1, 3, 1, 4, 1, 0], 2, 3), w, padding_idx=1), randn(5, 3))
    case("as_strided", lambda x: x.as_strided((3, 3), (1, 1)), randn(3, 4))
    save_file(t, f"{out_dir}/grad_shape.safetensors")

