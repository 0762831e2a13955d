"""PyTorch twins of bench/micro: each entry is (setup, statement) doing the same work as the Ember benchmark."""

N16M = 16 << 20

WORKLOADS = {
    "BM_memcpy_64MiB": ("a = torch.rand(N); b = torch.empty(N)", "b.copy_(a)"),
    "BM_add_16M": ("a = torch.rand(N); b = torch.rand(N)", "c = a + b"),
    "BM_add_inplace_16M": ("a = torch.rand(N); b = torch.rand(N)", "a.add_(b)"),
    "BM_mul_16M": ("a = torch.rand(N); b = torch.rand(N)", "c = a * b"),
    "BM_exp_16M": ("a = torch.rand(N)", "c = torch.exp(a)"),
    "BM_gelu_16M": ("a = torch.randn(N)", "c = torch.nn.functional.gelu(a)"),
    "BM_sum_16M": ("a = torch.rand(N)", "s = a.sum()"),
    "BM_softmax_4096x1024": ("a = torch.randn(4096, 1024)", "s = torch.softmax(a, -1)"),
    "BM_tiny_add": ("a = torch.ones(1); b = torch.ones(1)", "c = a + b"),
    "BM_tiny_add_scalar": ("a = torch.ones(1)", "c = a + 1.0"),
    "BM_tiny_view": ("a = torch.ones(4, 4)", "c = a.t()"),
    "BM_matmul_f64_512": ("a = torch.randn(512, 512, dtype=torch.float64); b = torch.randn(512, 512, dtype=torch.float64)",
                          "c = a @ b"),
    "BM_matmul_bf16_512": ("a = torch.randn(512, 512, dtype=torch.bfloat16); b = torch.randn(512, 512, dtype=torch.bfloat16)",
                           "c = a @ b"),
}
for n in (128, 256, 512, 1024, 2048):
    WORKLOADS[f"BM_matmul_f32/{n}"] = (f"a = torch.randn({n}, {n}); b = torch.randn({n}, {n})", "c = a @ b")
