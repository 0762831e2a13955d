"""A tiny random-weight Hugging Face GPT-2 and what it computes, for examples/gpt2's layout and math.

Writes two files:
- gpt2_tiny.safetensors: exactly what transformers' GPT2LMHeadModel.save_pretrained writes (HF's names with
  the "transformer." prefix, Conv1D weights [in, out], the tied lm_head left out); tests/test_gpt2.cpp
  loads it with gpt2::load_hf.
- gpt2.safetensors: token ids, the logits PyTorch computes for them (a full-context batch "ids"/"logits" and
  a shorter one "ids_short"/"logits_short"), the language-model loss with labels = ids ("loss"; HF shifts
  them), and that loss's gradients for a few parameters ("grad.<name>", GPT2Model names; wte's includes the
  tied head's share).
Config (restated in tests/test_gpt2.cpp): 2 layers, 2 heads, d 32, context 16, vocab 61, GELU-tanh, eps 1e-5.
Needs `pip install torch transformers safetensors`.
"""
import shutil
import tempfile

import torch
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel


def make(out_dir):
    torch.manual_seed(0)
    cfg = GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=16, vocab_size=61, bos_token_id=0,
                     eos_token_id=0, activation_function="gelu_new", layer_norm_epsilon=1e-5)
    model = GPT2LMHeadModel(cfg).float().eval()
    # Every parameter random (HF's init leaves biases at 0 and norms at 1, which would hide mistakes there).
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.endswith("ln_f.weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
    with tempfile.TemporaryDirectory() as d:
        model.save_pretrained(d, safe_serialization=True)
        shutil.copyfile(f"{d}/model.safetensors", out_dir / "gpt2_tiny.safetensors")

    ids = torch.randint(0, 61, (2, 16), generator=g)
    ids_short = torch.randint(0, 61, (3, 9), generator=g)
    out = model(ids, labels=ids)
    out.loss.backward()
    t = {"ids": ids, "logits": out.logits.detach().clone(), "loss": out.loss.detach().reshape(1).clone()}
    with torch.no_grad():
        t["ids_short"] = ids_short
        t["logits_short"] = model(ids_short).logits.clone()
    params = dict(model.transformer.named_parameters())
    for name in ["wte.weight", "wpe.weight", "h.0.attn.c_attn.weight", "h.0.ln_1.bias", "h.1.mlp.c_proj.weight",
                 "h.1.mlp.c_fc.bias", "ln_f.weight"]:
        t[f"grad.{name}"] = params[name].grad.clone()
    save_file({k: v.contiguous() for k, v in t.items()}, str(out_dir / "gpt2.safetensors"))
