"""Reference outputs and gradients of nn layers, made by PyTorch's own modules in float64.

For each case "<case>" the file holds the module's state_dict under "<case>.sd.<name>" (loaded into the
Ember layer with strict load_state_dict: names and shapes must match PyTorch's), the inputs "<case>.x"
(and "<case>.x2" ...), the output "<case>.out", the upstream gradient "<case>.gy", the input gradient
"<case>.gx" and the parameter gradients "<case>.g.<name>". Layer arguments are restated in
tests/test_module.cpp next to each case. Stateful layers (BatchNorm) also store "<case>.after.<name>".
"""
import torch
import torch.nn as nn
from safetensors.torch import save_file


def make(out_dir):
    torch.manual_seed(7)
    g = torch.Generator().manual_seed(11)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    t = {}

    def case(name, module, *inputs, train=False, randomize=False, call=None):
        module = module.double().train(train)
        if randomize:  # affine parameters away from their ones/zeros defaults
            with torch.no_grad():
                for p in module.parameters():
                    p.copy_(randn(*p.shape))
        for k, v in module.state_dict().items():
            t[f"{name}.sd.{k}"] = v.clone()
        leaves = [x.clone().requires_grad_(x.is_floating_point()) for x in inputs]
        out = call(module, *leaves) if call else module(*leaves)
        weights = None
        if isinstance(out, tuple):
            out, weights = out
        gy = randn(*out.shape)
        params = [p for _, p in module.named_parameters()]
        float_leaves = [x for x in leaves if x.requires_grad]
        grads = torch.autograd.grad(out, float_leaves + params, gy)
        suffixes = ["x"] + [f"x{i + 1}" for i in range(1, len(inputs))]
        for s, x in zip(suffixes, inputs):
            t[f"{name}.{s}"] = x
        t[f"{name}.out"] = out.detach()
        if weights is not None:
            t[f"{name}.weights"] = weights.detach()
        t[f"{name}.gy"] = gy
        for s, gx in zip([s for s, x in zip(suffixes, inputs) if x.is_floating_point()], grads):
            t[f"{name}.g{s}"] = gx
        for (k, _), gp in zip(module.named_parameters(), grads[len(float_leaves):]):
            t[f"{name}.g.{k}"] = gp
        for k, v in module.state_dict().items():
            t[f"{name}.after.{k}"] = v.clone()

    case("linear", nn.Linear(5, 3), randn(2, 4, 5))
    case("linear_nobias", nn.Linear(5, 3, bias=False), randn(4, 5))
    case("bilinear", nn.Bilinear(3, 4, 2), randn(5, 3), randn(5, 4))
    case("conv1d", nn.Conv1d(4, 6, 3, stride=2, padding=1, groups=2), randn(2, 4, 9))
    case("conv2d", nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=1, dilation=(1, 2), groups=2), randn(2, 4, 7, 8))
    case("convt2d", nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2), randn(2, 4, 5, 5))
    case("bn1d_train", nn.BatchNorm1d(3), randn(6, 3), train=True, randomize=True)
    case("bn2d_train", nn.BatchNorm2d(3, momentum=None), randn(4, 3, 5, 5), train=True)
    bn = nn.BatchNorm2d(3).double()
    bn.train()(randn(4, 3, 5, 5))  # one step of running statistics, then evaluate with them
    case("bn2d_eval", bn, randn(2, 3, 4, 4))
    case("layernorm", nn.LayerNorm([4, 5]), randn(3, 4, 5), randomize=True)
    case("rmsnorm", nn.RMSNorm(5, eps=1e-6), randn(3, 5), randomize=True)
    case("groupnorm", nn.GroupNorm(2, 6), randn(3, 6, 4, 4), randomize=True)
    case("embedding", nn.Embedding(10, 4, padding_idx=0), torch.tensor([[0, 3, 9], [1, 0, 3]]))
    case("maxpool", nn.MaxPool2d(2), randn(2, 3, 6, 7))
    case("avgpool", nn.AvgPool2d(3, stride=2, padding=1), randn(2, 3, 6, 7))
    case("adaptive", nn.AdaptiveAvgPool2d((2, 3)), randn(2, 3, 7, 8))
    case("leaky", nn.LeakyReLU(0.2), randn(3, 4))

    # MultiheadAttention: self-attention, batch_first, key padding mask, averaged weights.
    kpm = torch.tensor([[False, False, False, True], [False, False, False, False]])
    case("mha_self", nn.MultiheadAttention(8, 2, batch_first=True), randn(2, 4, 8),
         call=lambda m, x: m(x, x, x, key_padding_mask=kpm))
    t["mha_self.kpm"] = kpm
    # Cross-attention, sequence first, bool attn_mask [L, S], per-head weights.
    am = torch.rand(3, 5, generator=g) > 0.7
    am[:, 0] = False
    case("mha_cross", nn.MultiheadAttention(6, 3), randn(3, 2, 6), randn(5, 2, 6), randn(5, 2, 6),
         call=lambda m, q, k, v: m(q, k, v, attn_mask=am, average_attn_weights=False))
    t["mha_cross.am"] = am
    # Float mask [N * H, L, S], no weights.
    fm = randn(4, 3, 3)
    case("mha_float", nn.MultiheadAttention(4, 2, batch_first=True), randn(2, 3, 4),
         call=lambda m, x: (m(x, x, x, attn_mask=fm, need_weights=False)[0], None))
    t["mha_float.fm"] = fm
    # Causal self-attention (Ember: is_causal without a mask; PyTorch: the explicit causal mask).
    causal = torch.ones(5, 5).tril() == 0
    case("mha_causal", nn.MultiheadAttention(4, 2, batch_first=True), randn(2, 5, 4),
         call=lambda m, x: (m(x, x, x, attn_mask=causal, need_weights=False)[0], None))
    # Encoder layers (dropout 0): post-norm relu with padding, pre-norm gelu with a causal mask.
    case("enc_post", nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, batch_first=True),
         randn(2, 4, 8), call=lambda m, x: m(x, src_key_padding_mask=kpm))
    case("enc_pre", nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, activation="gelu",
                                               norm_first=True, batch_first=True),
         randn(2, 5, 8), call=lambda m, x: m(x, src_mask=causal, is_causal=True))

    # A whole model's state_dict naming (Sequential inside a module, nested indices).
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2))
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * 3 * 3, 5), nn.GELU(), nn.Dropout(0.1),
                                      nn.Linear(5, 3))

        def forward(self, x):
            return self.head(self.features(x))

    case("net", Net(), randn(2, 1, 8, 8))
    save_file({k: v.contiguous() for k, v in t.items()}, str(out_dir / "modules.safetensors"))
