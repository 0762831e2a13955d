"""Reference FLOP counts from torch.utils.flop_counter.FlopCounterMode (what Lightning's ModelSummary shows)
for the cases of tests/test_flops.cpp: single ops and layers, MultiheadAttention, and a LeNet-like model's
per-module counts. Each count is an int64 scalar "ref.<case>"; the shapes live in the C++ test, which
builds the same modules (keep the two in step).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file
from torch.utils.flop_counter import FlopCounterMode


def count(fn):
    with FlopCounterMode(display=False) as mode:
        fn()
    return mode.get_total_flops()


class LeNet(nn.Module):
    """tests/test_flops.cpp's FlopLeNet: features and classifier Sequentials."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Dropout(0.5), nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


def make(out_dir):
    torch.manual_seed(0)
    r = torch.randn
    ref = {
        "linear_2d": count(lambda: nn.Linear(64, 32)(r(8, 64))),
        "linear_3d_nobias": count(lambda: nn.Linear(16, 24, bias=False)(r(4, 5, 16))),
        "conv2d_groups_stride": count(
            lambda: nn.Conv2d(8, 12, 3, stride=2, padding=1, groups=4)(r(2, 8, 15, 15))),
        "conv2d_dilation": count(lambda: nn.Conv2d(3, 5, (3, 2), stride=(1, 2), dilation=2)(r(1, 3, 11, 9))),
        "conv1d": count(lambda: nn.Conv1d(3, 6, 5, stride=2)(r(2, 3, 20))),
        "conv3d": count(lambda: F.conv3d(r(1, 2, 5, 8, 8), r(4, 1, 2, 3, 3), stride=(1, 2, 2), padding=1,
                                         groups=2)),
        "conv_transpose2d": count(lambda: nn.ConvTranspose2d(6, 4, 3, stride=2, groups=2)(r(2, 6, 5, 5))),
        "conv_transpose1d": count(lambda: F.conv_transpose1d(r(2, 4, 7), r(4, 3, 3), stride=2)),
        "mm": count(lambda: torch.mm(r(7, 3), r(3, 5))),
        "addmm": count(lambda: torch.addmm(r(5), r(7, 3), r(3, 5))),
        "bmm": count(lambda: torch.bmm(r(3, 4, 5), r(3, 5, 6))),
        "baddbmm": count(lambda: torch.baddbmm(r(3, 4, 6), r(3, 4, 5), r(3, 5, 6))),
        "matmul_3d_2d": count(lambda: torch.matmul(r(2, 4, 5), r(5, 3))),
        "matmul_broadcast": count(lambda: torch.matmul(r(2, 1, 4, 5), r(3, 5, 6))),
        "matmul_1d_2d": count(lambda: torch.matmul(r(5), r(5, 3))),
        "sdpa": count(lambda: F.scaled_dot_product_attention(r(2, 4, 5, 8), r(2, 4, 7, 8), r(2, 4, 7, 3))),
    }
    # MultiheadAttention in training mode with grad: eval without grad takes PyTorch's fused fast path,
    # which FlopCounterMode sees as 0 FLOPs. Self-attention packs the three projections into one GEMM.
    mha = nn.MultiheadAttention(16, 4, batch_first=True)
    x = r(2, 5, 16)
    ref["mha_self"] = count(lambda: mha(x, x, x, need_weights=False))

    model = LeNet().eval()
    with torch.no_grad(), FlopCounterMode(display=False) as mode:
        model(r(2, 1, 28, 28))
    counts = mode.get_flop_counts()
    ref["lenet.total"] = mode.get_total_flops()
    for name, _ in model.named_modules():
        if name:
            ref[f"lenet.{name}"] = sum(counts.get(f"LeNet.{name}", {}).values())

    save_file({f"ref.{k}": torch.tensor(v, dtype=torch.int64) for k, v in ref.items()},
              str(out_dir / "flops.safetensors"))
