// examples/gpt2: Hugging Face's GPT-2 layout and math (a random-weight GPT2LMHeadModel from
// tests/reference/fixtures_gpt2.py gives the same logits, loss and gradients), save_hf/load_hf round trips
// and their errors, GPT-2's initialisation, activation checkpointing, and the small configuration training
// on the bundled Austen text.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <set>
#include <string>

#include "examples/gpt2/gpt2_train.hpp"
#include "examples/gpt2/settings.hpp"
#include "test_util.hpp"

using namespace ember;
using namespace ember::testing;

namespace {

// The fixture's configuration (fixtures_gpt2.py).
gpt2::Config tiny_config() { return {.vocab_size = 61, .context = 16, .n_layer = 2, .n_head = 2, .n_embd = 32}; }
std::string tiny_path() { return std::string(EMBER_TEST_DIR) + "/reference/gpt2_tiny.safetensors"; }

std::filesystem::path temp_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("ember_test_gpt2_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return dir;
}

// HF's loss with labels = ids: logits at t predict the token at t + 1.
Tensor shifted_loss(const Tensor& logits, const Tensor& ids) {
  const int64_t t = ids.size(1);
  return nn::functional::cross_entropy(logits.narrow(1, 0, t - 1).flatten(0, 1), ids.narrow(1, 1, t - 1).flatten());
}

// Logits, loss and the fixture's gradients of a model loaded from HF's file (activation checkpointing
// and the attention backend must not change them).
void check_against_pytorch(const gpt2::Config& cfg) {
  TensorMap f = fixtures("gpt2");
  gpt2::GPT2Model m(cfg);
  gpt2::load_hf(*m, tiny_path());
  m->eval();
  Tensor logits = gpt2::lm_logits(*m, f.at("ids"));
  CHECK(allclose(logits, f.at("logits"), 1e-4, 1e-5));
  Tensor loss = shifted_loss(logits, f.at("ids"));
  CHECK(loss.item<float>() == doctest::Approx(f.at("loss").item<float>()).epsilon(1e-5));
  loss.backward();
  const nn::StateDict params = m->state_dict();
  std::map<std::string, Tensor> grads;
  for (auto& [name, p] : m->named_parameters()) grads[name] = p.grad();
  for (const std::string name : {"wte.weight", "wpe.weight", "h.0.attn.c_attn.weight", "h.0.ln_1.bias",
                                 "h.1.mlp.c_proj.weight", "h.1.mlp.c_fc.bias", "ln_f.weight"}) {
    CAPTURE(name);
    REQUIRE(grads.at(name).defined());
    CHECK(allclose(grads.at(name), f.at("grad." + name), 1e-4, 1e-6));
  }
  autograd::NoGradGuard no_grad;
  CHECK(allclose(gpt2::lm_logits(*m, f.at("ids_short")), f.at("logits_short"), 1e-4, 1e-5));  // T = 9 < context
}

}  // namespace

TEST_CASE("gpt2 command line: size auto is 124M on CUDA and small on the CPU; an explicit size wins") {
  auto layers = [](std::vector<std::string> args) { return gpt2::defaults_for_args(args).cfg.model.n_layer; };
  CHECK(layers({"--device", "cuda"}) == 12);
  CHECK(layers({"--device", "cuda", "--model.size", "auto"}) == 12);
  CHECK(gpt2::defaults_for_args({"--device", "cuda"}).cfg.precision == "bf16-mixed");
  CHECK(layers({"--device", "cpu"}) == gpt2::TrainConfig::small().model.n_layer);
  CHECK(layers({"--device", "cuda", "--model.size", "small"}) == gpt2::TrainConfig::small().model.n_layer);
  CHECK(layers({"--model.size", "124M", "--device", "cpu"}) == 12);
  CHECK(layers({}) == (cuda_is_available() ? 12 : gpt2::TrainConfig::small().model.n_layer));
}

TEST_CASE("gpt2: HF GPT-2 weights give PyTorch's logits, loss and gradients") {
  SUBCASE("default attention") { check_against_pytorch(tiny_config()); }
  SUBCASE("the composed attention") {
    SdpaBackendGuard math(SdpaBackend::Math);
    check_against_pytorch(tiny_config());
  }
  SUBCASE("the blocked attention") {
    SdpaBackendGuard blocked(SdpaBackend::Blocked);
    check_against_pytorch(tiny_config());
  }
  SUBCASE("activation checkpointing") {
    gpt2::Config c = tiny_config();
    c.activation_checkpointing = true;
    check_against_pytorch(c);
  }
}

TEST_CASE("gpt2: module names are HF's; save_hf writes HF's keys and shapes and round-trips bit-exactly") {
  const TensorMap hf = load(tiny_path());  // what GPT2LMHeadModel.save_pretrained wrote
  // The TrainModule's names are GPT2LMHeadModel's (the tied lm_head is not a separate parameter).
  gpt2::TrainConfig tc;
  tc.model = tiny_config();
  gpt2::GPT2 lm(tc);
  std::set<std::string> lm_keys, hf_keys;
  for (auto& [k, t] : lm.state_dict()) lm_keys.insert(k);
  for (auto& [k, t] : hf) hf_keys.insert(k);
  CHECK(lm_keys == hf_keys);

  gpt2::load_hf(*lm.transformer, tiny_path());
  const auto dir = temp_dir("save");
  const std::string plain = (dir / "plain.safetensors").string(), prefixed = (dir / "prefixed.safetensors").string();
  gpt2::save_hf(*lm.transformer, plain);
  gpt2::save_hf(*lm.transformer, prefixed, "transformer.");
  Metadata meta;
  const TensorMap a = load(plain, &meta), b = load(prefixed);
  CHECK(meta.at("format") == "pt");
  REQUIRE(b.size() == hf.size());
  REQUIRE(a.size() == hf.size());
  for (const auto& entry : hf) {
    const std::string& k = entry.first;  // not a structured binding: clang 14's CAPTURE
    const Tensor& t = entry.second;
    CAPTURE(k);
    REQUIRE(b.count(k));
    REQUIRE(a.count(k.substr(12)));
    CHECK(b.at(k).shape() == t.shape());
    CHECK(b.at(k).dtype() == kF32);
    CHECK(equal(b.at(k), t));
    CHECK(equal(a.at(k.substr(12)), t));
  }
  // Conv1D weights are [in, out] as HF's: c_attn [32, 96], mlp.c_proj [128, 32].
  CHECK(a.at("h.0.attn.c_attn.weight").shape() == Shape{32, 96});
  CHECK(a.at("h.1.mlp.c_proj.weight").shape() == Shape{128, 32});

  // A fresh model (other random weights) loads the saved file to the same bits.
  manual_seed(123);
  gpt2::GPT2Model fresh(tiny_config());
  gpt2::load_hf(*fresh, plain);
  for (const auto& entry : fresh->state_dict()) {
    const std::string& k = entry.first;
    const Tensor& t = entry.second;
    CAPTURE(k);
    CHECK(equal(t, hf.at("transformer." + k)));
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("gpt2: load_hf accepts HF's extra keys and names what is missing, unexpected or mis-shaped") {
  const TensorMap hf = load(tiny_path());
  const auto dir = temp_dir("errors");
  gpt2::GPT2Model m(tiny_config());
  auto write = [&](const TensorMap& t) {
    const std::string p = (dir / "w.safetensors").string();
    save(p, t);
    return p;
  };
  TensorMap ok;  // unprefixed (the hub's layout), with the old mask buffers and the tied head
  for (auto& [k, t] : hf) ok[k.substr(12)] = t;
  ok["h.0.attn.bias"] = ones({1, 1, 16, 16});
  ok["h.1.attn.masked_bias"] = full({}, -1e4);
  ok["lm_head.weight"] = hf.at("transformer.wte.weight");
  gpt2::load_hf(*m, write(ok));
  CHECK(equal(m->blocks[1]->mlp->c_fc->bias, hf.at("transformer.h.1.mlp.c_fc.bias")));

  TensorMap missing = ok;
  missing.erase("h.1.attn.c_proj.bias");
  CHECK(throws_with<ValueError>([&] { gpt2::load_hf(*m, write(missing)); },
                                "missing tensor 'h.1.attn.c_proj.bias' (expected shape [32])"));
  TensorMap misshaped = ok;  // nn.Linear's [out, in] where HF's Conv1D has [in, out]
  misshaped["h.0.mlp.c_fc.weight"] = zeros({128, 32});
  const std::string msg = error_message<ShapeError>([&] { gpt2::load_hf(*m, write(misshaped)); });
  CHECK(msg.rfind("[gpt2 load_hf]", 0) == 0);
  CHECK(msg.find("tensor 'h.0.mlp.c_fc.weight' has shape [128, 32] but the model expects [32, 128]") !=
        std::string::npos);
  TensorMap unexpected = ok;
  unexpected["h.2.ln_1.weight"] = ones({32});  // a third layer this configuration does not have
  CHECK(throws_with<ValueError>([&] { gpt2::load_hf(*m, write(unexpected)); }, "unexpected tensor 'h.2.ln_1.weight'"));
  TensorMap head = ok;
  head["lm_head.weight"] = zeros({60, 32});
  CHECK(throws_with<ShapeError>([&] { gpt2::load_hf(*m, write(head)); }, "lm_head.weight has shape [60, 32]"));
  TensorMap twice = ok;
  twice["transformer.ln_f.bias"] = ok.at("ln_f.bias");
  CHECK(throws_with<ValueError>([&] { gpt2::load_hf(*m, write(twice)); }, "'ln_f.bias' appears twice"));
  // A larger model cannot take the tiny file: the first mismatch is named.
  gpt2::Config wide = tiny_config();
  wide.vocab_size = 64;
  gpt2::GPT2Model big(wide);
  CHECK(throws_with<ShapeError>([&] { gpt2::load_hf(*big, tiny_path()); },
                                "'transformer.wte.weight' has shape [61, 32] but the model expects [64, 32]"));
  CHECK_THROWS_AS(gpt2::load_hf(*m, (dir / "absent.safetensors").string()), IOError);
  std::filesystem::remove_all(dir);
}

TEST_CASE("gpt2: GPT-2 small has 124M parameters and GPT-2's initialisation") {
  CHECK(gpt2::parameter_count(gpt2::Config::gpt2_124m()) == 124439808);  // HF's GPT2Model("gpt2")
  // 12 layers (the residual scale depends on n_layer only) at a width that builds in milliseconds.
  const gpt2::Config c{.vocab_size = 256, .context = 64, .n_layer = 12, .n_head = 4, .n_embd = 128};
  manual_seed(0);
  gpt2::GPT2Model m(c);
  CHECK(m->num_parameters() == gpt2::parameter_count(c));
  CHECK(gpt2::GPT2Model(tiny_config())->num_parameters() == gpt2::parameter_count(tiny_config()));
  // Relative: doctest::Approx alone compares small numbers with an absolute tolerance of about epsilon.
  auto stdev = [](const Tensor& t, double expected) { return t.to(kF64).std().item<double>() / expected; };
  CHECK(stdev(m->wte->weight, 0.02) == doctest::Approx(1.0).epsilon(0.03));
  CHECK(stdev(m->wpe->weight, 0.02) == doctest::Approx(1.0).epsilon(0.03));
  CHECK(stdev(m->blocks[3]->attn->c_attn->weight, 0.02) == doctest::Approx(1.0).epsilon(0.03));
  CHECK(stdev(m->blocks[5]->mlp->c_fc->weight, 0.02) == doctest::Approx(1.0).epsilon(0.03));
  const double proj = 0.02 / std::sqrt(24.0);  // residual projections: 1/sqrt(2 n_layer)
  CHECK(stdev(m->blocks[3]->attn->c_proj->weight, proj) == doctest::Approx(1.0).epsilon(0.03));
  CHECK(stdev(m->blocks[11]->mlp->c_proj->weight, proj) == doctest::Approx(1.0).epsilon(0.03));
  CHECK(m->blocks[0]->mlp->c_fc->bias.abs().max().item<float>() == 0.0f);
  CHECK(m->blocks[0]->attn->c_attn->bias.abs().max().item<float>() == 0.0f);
  CHECK(m->blocks[0]->ln_2->weight.min().item<float>() == 1.0f);
  CHECK(m->ln_f->bias.abs().max().item<float>() == 0.0f);
}

TEST_CASE("gpt2: the small configuration trains on Austen bytes to a falling validation loss") {
  gpt2::TrainConfig c = gpt2::TrainConfig::small();
  c.batch_size = 16;
  c.max_steps = 60;
  c.warmup_steps = 10;
  c.eval_every = 30;
  c.eval_batches = 4;
  c.precision = "32";
  c.verbose = false;
  c.accelerator = "cpu";
  const auto r = gpt2::train(c, ember::data::pride_and_prejudice().substr(0, 200000));
  REQUIRE(r.val_losses.size() == 2);
  CHECK(r.steps == 60);
  CHECK(r.first_train_loss > 5.0);  // about ln(256) = 5.55 at the start
  CHECK(r.val_losses[1].second < r.val_losses[0].second);
  CHECK(r.final_val_loss < 3.0);
  CHECK(r.tokens_per_second > 0);
  CHECK(r.parameters == 2 * (12 * 64 * 64 + 13 * 64) + 256 * 64 + 64 * 64 + 2 * 64);
}

TEST_CASE("gpt2: bf16-mixed, gradient accumulation and activation checkpointing train on the CPU") {
  gpt2::TrainConfig c = gpt2::TrainConfig::small();
  c.batch_size = 8;
  c.max_steps = 12;
  c.warmup_steps = 4;
  c.eval_every = 12;
  c.eval_batches = 2;
  c.accumulate_grad_batches = 2;
  c.precision = "bf16-mixed";
  c.model.activation_checkpointing = true;
  c.verbose = false;
  c.accelerator = "cpu";
  const auto r = gpt2::train(c, ember::data::pride_and_prejudice().substr(0, 50000));
  CHECK(r.steps == 12);
  CHECK(std::isfinite(r.final_val_loss));
  CHECK(r.final_val_loss < r.first_train_loss - 1.0);
}
