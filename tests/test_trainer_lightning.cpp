// What a Lightning user expects of the Trainer (issue 16): callback state keys, checkpoints that do not
// change the run, unregistered submodules, hyperparameters and load_from_checkpoint, predict_step's
// default, and the messages, tables and files of Lightning's Trainer.
#include <doctest/doctest.h>

#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include "trainer_fixtures.hpp"

using namespace ember;
using namespace trainer_test;

namespace {

// Redirects a stream (std::cerr, std::cout) into a string for the scope.
struct Capture {
  std::ostream& stream;
  std::stringstream buf;
  std::streambuf* old;
  explicit Capture(std::ostream& s) : stream(s), old(s.rdbuf(buf.rdbuf())) {}
  ~Capture() { stream.rdbuf(old); }
  std::string str() const { return buf.str(); }
};

train::TrainerOptions lightning_options(const std::string& root, std::vector<train::CallbackPtr> callbacks,
                                        int64_t epochs = 2) {
  train::TrainerOptions o;
  o.max_epochs = epochs;
  o.enable_checkpointing = false;
  o.enable_progress_bar = false;
  o.enable_model_summary = false;
  o.callbacks = std::move(callbacks);
  o.logger = false;
  o.default_root_dir = root;
  return o;
}

std::shared_ptr<train::ModelCheckpoint> every_step(const std::string& dir) {
  return std::make_shared<train::ModelCheckpoint>(
      train::ModelCheckpointOptions{.dirpath = dir, .save_last = true, .save_top_k = 0, .every_n_train_steps = 1});
}

// Builds a fresh loader on every call, without a seed (as Lightning users write them), and counts calls.
struct FreshData : data::DataModule {
  int train_calls = 0, val_calls = 0, test_calls = 0;
  uint64_t data_seed = 1;
  std::shared_ptr<data::DataLoader> train_dataloader() override {
    ++train_calls;
    return std::make_shared<data::DataLoader>(problem(24, data_seed),
                                              data::DataLoaderOptions{.batch_size = 4, .shuffle = true});
  }
  std::shared_ptr<data::DataLoader> val_dataloader() override {
    ++val_calls;
    return std::make_shared<data::DataLoader>(problem(8, 2), data::DataLoaderOptions{.batch_size = 4});
  }
  std::shared_ptr<data::DataLoader> test_dataloader() override {
    ++test_calls;
    return std::make_shared<data::DataLoader>(problem(8, 3), data::DataLoaderOptions{.batch_size = 4});
  }
};

struct NetConfig {
  int64_t hidden = 5;
  double lr = 0.1;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(NetConfig, hidden, lr)

// Hyperparameters through a config struct (load_from_checkpoint's first convention).
struct ConfigNet : train::TrainModule {
  using Hparams = NetConfig;
  nn::Linear a, b;
  NetConfig config;
  explicit ConfigNet(NetConfig c = {}) : a(4, c.hidden), b(c.hidden, 3), config(c) {
    save_hyperparameters(c);
    register_module("a", a);
    register_module("b", b);
  }
  Tensor forward(const Tensor& x) override { return b(a(x).relu()); }
  Tensor training_step(const data::Batch& batch, int64_t) override {
    return nn::functional::cross_entropy(forward(batch.input), batch.target);
  }
  train::OptimizerConfig configure_optimizers() override {
    return {std::make_shared<optim::SGD>(parameters(), optim::SGDOptions{.lr = config.lr})};
  }
};

// ... through the JSON itself (the second convention).
struct JsonNet : train::TrainModule {
  nn::Linear a;
  explicit JsonNet(const nlohmann::json& h) : a(4, h.at("out").get<int64_t>()) {
    save_hyperparameters(h);
    register_module("a", a);
  }
  Tensor training_step(const data::Batch& batch, int64_t) override {
    Tensor y = a(batch.input);
    return (y * y).mean();
  }
  train::OptimizerConfig configure_optimizers() override {
    return {std::make_shared<optim::SGD>(parameters(), optim::SGDOptions{.lr = 0.1})};
  }
};

}  // namespace

TEST_SUITE("trainer_lightning") {
  TEST_CASE("trainer_lightning: two LambdaCallbacks checkpoint and resume") {
    TempDir dir("lambdas");
    int ends = 0;
    auto counting = [&] {
      return std::make_shared<train::LambdaCallback>(
          train::LambdaHooks{.on_train_batch_end = [&](train::Trainer&, train::TrainModule&, const Tensor&,
                                                       const data::Batch&, int64_t) { ++ends; }});
    };
    manual_seed(3);
    Tiny model;
    train::Trainer first(lightning_options(dir.str(), {counting(), counting(), every_step(dir.str())}, 1));
    REQUIRE_NOTHROW(first.fit(model, loader(16, 4, true), loader(8, 4, false)));
    CHECK(ends == 8);  // 4 batches, two callbacks
    Tiny resumed;
    train::Trainer second(lightning_options(dir.str(), {counting(), counting(), every_step(dir.str())}, 2));
    REQUIRE_NOTHROW(second.fit(resumed, loader(16, 4, true), loader(8, 4, false),
                               {.ckpt_path = (dir.path / "last.safetensors").string()}));
    CHECK(second.global_step() == 8);
    CHECK(ends == 16);
  }

  TEST_CASE("trainer_lightning: stateful callbacks of one class keep their own states, or clash by name") {
    TempDir dir("two_mc");
    auto make = [&] {
      return std::vector<train::CallbackPtr>{
          std::make_shared<train::ModelCheckpoint>(train::ModelCheckpointOptions{
              .dirpath = (dir.path / "loss").string(), .monitor = "val_loss", .save_last = true, .mode = "min"}),
          std::make_shared<train::ModelCheckpoint>(train::ModelCheckpointOptions{
              .dirpath = (dir.path / "acc").string(), .monitor = "val_acc", .mode = "max"})};
    };
    manual_seed(4);
    Tiny model;
    auto cbs = make();
    train::Trainer first(lightning_options(dir.str(), cbs, 3));
    first.fit(model, loader(16, 4, true), loader(8, 4, false));
    auto* loss_mc = dynamic_cast<train::ModelCheckpoint*>(cbs[0].get());
    auto* acc_mc = dynamic_cast<train::ModelCheckpoint*>(cbs[1].get());
    REQUIRE(loss_mc->best_model_score());
    REQUIRE(acc_mc->best_model_score());

    auto cbs2 = make();
    Tiny resumed;
    train::Trainer second(lightning_options(dir.str(), cbs2, 3));
    Capture quiet(std::cerr);  // "past max_epochs: nothing left to train"
    second.fit(resumed, loader(16, 4, true), loader(8, 4, false), {.ckpt_path = loss_mc->last_model_path()});
    auto* loss2 = dynamic_cast<train::ModelCheckpoint*>(cbs2[0].get());
    auto* acc2 = dynamic_cast<train::ModelCheckpoint*>(cbs2[1].get());
    CHECK(loss2->best_model_path() == loss_mc->best_model_path());
    CHECK(*loss2->best_model_score() == *loss_mc->best_model_score());
    CHECK(acc2->best_model_path() == acc_mc->best_model_path());
    CHECK(*acc2->best_model_score() == *acc_mc->best_model_score());

    // Two EarlyStoppings watching the same metric have state under one key: the error names both.
    auto stop = [] {
      return std::make_shared<train::EarlyStopping>(train::EarlyStoppingOptions{.monitor = "val_loss"});
    };
    Tiny clash;
    train::Trainer third(lightning_options(dir.str(), {stop(), stop(), every_step((dir.path / "c").string())}, 1));
    CHECK(throws_with<ValueError>([&] { third.fit(clash, loader(16, 4, true), loader(8, 4, false)); },
                                  "callbacks[0] and callbacks[1] both have state under the key 'EarlyStopping"));
  }

  TEST_CASE("trainer_lightning: saving checkpoints calls no dataloader factory and changes nothing") {
    TempDir dir("no_factory");
    auto run = [&](bool checkpoints, FreshData& data) {
      manual_seed(5);
      Tiny model;
      std::vector<train::CallbackPtr> cbs;
      if (checkpoints) cbs.push_back(every_step(dir.str()));
      train::Trainer trainer(lightning_options(dir.str(), cbs, 2));
      trainer.fit(model, data);
      return flat_params(model);
    };
    FreshData with, without;
    const std::vector<double> a = run(true, with), b = run(false, without);
    CHECK(a == b);  // bit for bit: dropout masks and shuffles are those of the run without saves
    CHECK(with.train_calls == 1);
    CHECK(with.val_calls == 1);
    CHECK(with.test_calls == 0);
    CHECK(fs::exists(dir.path / "last.safetensors"));
  }

  TEST_CASE("trainer_lightning: unseeded fresh loaders resume exactly; changed data are reported") {
    TempDir dir("fresh_resume");
    FreshData full_data;
    manual_seed(6);
    Tiny full;
    train::Trainer(lightning_options(dir.str(), {}, 2)).fit(full, full_data);

    FreshData part_data;
    manual_seed(6);
    Tiny part;
    auto crash = std::make_shared<train::LambdaCallback>(train::LambdaHooks{
        .on_train_batch_end = [](train::Trainer& t, train::TrainModule&, const Tensor&, const data::Batch&, int64_t) {
          if (t.global_step() == 8) throw std::runtime_error("simulated crash");
        }});
    train::Trainer first(lightning_options(dir.str(), {crash, every_step(dir.str())}, 2));
    CHECK_THROWS_AS(first.fit(part, part_data), std::runtime_error);

    // A new process: its loaders draw other seeds, the checkpoint's are adopted.
    manual_seed(999);
    FreshData again;
    Tiny resumed;
    train::Trainer second(lightning_options(dir.str(), {}, 2));
    {
      Capture err(std::cerr);
      second.fit(resumed, again, {.ckpt_path = (dir.path / "last.safetensors").string()});
      CHECK(err.str().find("training data differ") == std::string::npos);
    }
    CHECK(flat_params(resumed) == flat_params(full));

    // A factory whose data differ in the new process cannot resume exactly: a warning says so.
    FreshData other;
    other.data_seed = 77;
    Tiny changed;
    train::Trainer third(lightning_options(dir.str(), {}, 2));
    Capture err(std::cerr);
    third.fit(changed, other, {.ckpt_path = (dir.path / "last.safetensors").string()});
    CHECK(err.str().find("the training data differ from those of the run that wrote") != std::string::npos);
  }

  TEST_CASE("trainer_lightning: a submodule that was not registered is an error after the first backward") {
    struct Forgetful : Tiny {
      nn::Linear extra{4, 4};  // used, never registered
      Tensor training_step(const data::Batch& b, int64_t) override {
        return nn::functional::cross_entropy(fc(extra(b.input)), b.target);
      }
    };
    TempDir dir("unregistered");
    Forgetful model;
    train::TrainerOptions o = lightning_options(dir.str(), {}, 1);
    o.accelerator = "cpu";  // the unregistered layer is never moved: on a GPU the step itself would fail
    train::Trainer trainer(o);
    CHECK(throws_with<ValueError>([&] { trainer.fit(model, loader(16, 4, true)); },
                                  "2 tensors that require grad but are not parameters of"));
    CHECK(throws_with<ValueError>([&] { trainer.fit(model, loader(16, 4, true)); }, "[4, 4] float32"));
    CHECK(throws_with<ValueError>([&] { trainer.fit(model, loader(16, 4, true)); }, "register_module"));

    // Intended: opted out, or stepped by the optimizer without being a parameter.
    Forgetful allowed;
    allowed.allow_unregistered_tensors = true;
    CHECK_NOTHROW(trainer.fit(allowed, loader(16, 4, true)));
    Forgetful stepped;
    stepped.configure = [](Tiny& t) -> train::OptimizerConfig {
      auto& f = static_cast<Forgetful&>(t);
      std::vector<Tensor> params = f.parameters();
      for (const Tensor& p : f.extra->parameters()) params.push_back(p);
      return {std::make_shared<optim::SGD>(params, optim::SGDOptions{.lr = 0.1})};
    };
    CHECK_NOTHROW(trainer.fit(stepped, loader(16, 4, true)));
    Tiny registered;
    CHECK_NOTHROW(trainer.fit(registered, loader(16, 4, true)));
  }

  TEST_CASE("trainer_lightning: save_hyperparameters, hparams.yaml and load_from_checkpoint") {
    TempDir dir("hparams");
    manual_seed(7);
    ConfigNet model(NetConfig{.hidden = 7, .lr = 0.05});
    CHECK(model.hparams() == nlohmann::json{{"hidden", 7}, {"lr", 0.05}});
    train::TrainerOptions o = lightning_options(dir.str(), {every_step(dir.str())}, 1);
    auto csv = std::make_shared<train::CSVLogger>(train::CSVLoggerOptions{.save_dir = dir.str()});
    o.logger = true;
    o.loggers = {csv};
    train::Trainer trainer(o);
    trainer.fit(model, loader(16, 4, true));
    std::ifstream yaml(fs::path(csv->log_dir()) / "hparams.yaml");
    std::stringstream text;
    text << yaml.rdbuf();
    CHECK(text.str().find("hidden: 7") != std::string::npos);

    auto back = train::load_from_checkpoint<ConfigNet>((dir.path / "last.safetensors").string());
    CHECK(back->config.hidden == 7);
    CHECK(back->config.lr == 0.05);
    CHECK(back->hparams() == model.hparams());
    CHECK(flat_params(*back) == flat_params(model));
    auto wider = train::load_from_checkpoint<ConfigNet>(
        (dir.path / "last.safetensors").string(), {.strict = false, .hparams_overrides = nlohmann::json{{"lr", 0.5}}});
    CHECK(wider->config.lr == 0.5);

    TempDir dir2("hparams_json");
    JsonNet jnet(nlohmann::json{{"out", 2}});
    train::Trainer(lightning_options(dir2.str(), {every_step(dir2.str())}, 1)).fit(jnet, loader(8, 4, false));
    auto jback = train::load_from_checkpoint<JsonNet>((dir2.path / "last.safetensors").string());
    CHECK(flat_params(*jback) == flat_params(jnet));

    // A module without hyperparameters writes no hparams.yaml (rather than "{}").
    TempDir dir3("no_hparams");
    auto csv3 = std::make_shared<train::CSVLogger>(train::CSVLoggerOptions{.save_dir = dir3.str()});
    train::TrainerOptions o3 = lightning_options(dir3.str(), {}, 1);
    o3.logger = true;
    auto recording = std::make_shared<RecordingLogger>();
    o3.loggers = {csv3, recording};
    Tiny plain;
    train::Trainer(o3).fit(plain, loader(8, 4, false));
    CHECK(recording->hparams.is_null());  // log_hyperparams was not called
    CHECK_FALSE(fs::exists(fs::path(csv3->log_dir()) / "hparams.yaml"));
  }

  TEST_CASE("trainer_lightning: predict_step defaults to forward(batch.input)") {
    struct NoPredict : ConfigNet {};
    TempDir dir("predict");
    manual_seed(8);
    NoPredict model;
    train::Trainer trainer(lightning_options(dir.str(), {}, 1));
    auto out = trainer.predict(model, loader(8, 4, false));
    REQUIRE(out.size() == 2);
    Tensor x = problem(8, 1).input().narrow(0, 0, 4).to(model.parameters()[0].device());  // where predict left it
    CHECK(out[0].to_vector<float>() == model.forward(x).to_vector<float>());

    struct NoForward : train::TrainModule {
      nn::Linear a{4, 3};
      NoForward() { register_module("a", a); }
      Tensor training_step(const data::Batch& b, int64_t) override { return a(b.input).sum(); }
      train::OptimizerConfig configure_optimizers() override {
        return {std::make_shared<optim::SGD>(parameters(), optim::SGDOptions{.lr = 0.1})};
      }
    };
    NoForward bare;
    CHECK(throws_with<ValueError>([&] { trainer.predict(bare, loader(8, 4, false)); },
                                  "NoForward overrides neither predict_step nor forward"));
  }

  TEST_CASE("trainer_lightning: a validation loader without validation_step is skipped with a warning") {
    TempDir dir("no_val_step");
    JsonNet model(nlohmann::json{{"out", 3}});
    train::Trainer trainer(lightning_options(dir.str(), {}, 2));
    Capture err(std::cerr);
    REQUIRE_NOTHROW(trainer.fit(model, loader(16, 4, true), loader(8, 4, false)));
    CHECK(err.str().find("has no validation_step: skipping the validation loop") != std::string::npos);
    CHECK(trainer.global_step() == 8);
    CHECK(trainer.num_val_batches() == 0);
    CHECK_THROWS_AS(trainer.validate(model, loader(8, 4, false)), train::StepNotOverridden);
  }

  TEST_CASE("trainer_lightning: ckpt_path = \"last\" without a last checkpoint starts fresh with a warning") {
    TempDir dir("last_missing");
    Tiny model;
    train::TrainerOptions o = lightning_options(dir.str(), {}, 1);
    o.enable_checkpointing = true;  // the default ModelCheckpoint, which writes no last.safetensors
    train::Trainer trainer(o);
    Capture err(std::cerr);
    REQUIRE_NOTHROW(trainer.fit(model, loader(16, 4, true), nullptr, {.ckpt_path = "last"}));
    CHECK(err.str().find("ckpt_path = \"last\" is set, but there is no last checkpoint available") !=
          std::string::npos);
    CHECK(trainer.global_step() == 4);
    // The default checkpoint is what the header says: the latest epoch's, no last.safetensors.
    auto mc = trainer.find_callback<train::ModelCheckpoint>();
    REQUIRE(mc);
    CHECK(fs::path(mc->best_model_path()).filename() == "epoch=0-step=4.safetensors");
    CHECK(fs::exists(mc->best_model_path()));
    CHECK_FALSE(fs::exists(fs::path(mc->dirpath()) / "last.safetensors"));
  }

  TEST_CASE("trainer_lightning: test and validate print Lightning's results table unless verbose = false") {
    TempDir dir("table");
    Tiny model;
    train::Trainer trainer(lightning_options(dir.str(), {}, 1));
    std::string printed;
    {
      Capture out(std::cout);
      auto results = trainer.test(model, loader(8, 4, false));
      printed = out.str();
      REQUIRE(results.size() == 1);
    }
    CHECK(printed.find("┃        Test metric        ┃       DataLoader 0        ┃") != std::string::npos);
    CHECK(printed.find("│         test_acc          │") != std::string::npos);
    CHECK(printed.rfind("┏━━━━━━━━━━━━━━━━━━━━━━━━━━━┳", 0) == 0);
    {
      Capture out(std::cout);
      trainer.validate(model, loader(8, 4, false));
      CHECK(out.str().find("Validate metric") != std::string::npos);
    }
    Capture out(std::cout);
    trainer.test(model, loader(8, 4, false), {.verbose = false});
    CHECK(out.str().empty());
  }

  TEST_CASE("trainer_lightning: fast_dev_run says so; log_dir exists or is empty") {
    {
      Capture err(std::cerr);
      train::TrainerOptions o;
      o.fast_dev_run = 2;
      train::Trainer trainer(o);
      CHECK(err.str().find("Running in `fast_dev_run` mode: will run the requested loop using 2 batch(es). Logging "
                           "and checkpointing is suppressed.") != std::string::npos);
    }
    TempDir dir("log_dir");
    train::TrainerOptions o;
    o.default_root_dir = dir.str();
    o.enable_progress_bar = false;
    train::Trainer trainer(o);  // a CSVLogger under lightning_logs/version_0
    const std::string log_dir = trainer.log_dir();
    CHECK(log_dir == (dir.path / "lightning_logs" / "version_0").string());
    CHECK(fs::is_directory(log_dir));
  }

  TEST_CASE("trainer_lightning: LearningRateMonitor rows join the loss rows on step") {
    TempDir dir("lr_join");
    auto log = std::make_shared<RecordingLogger>();
    train::TrainerOptions o = lightning_options(dir.str(), {std::make_shared<train::LearningRateMonitor>()}, 2);
    o.logger = true;
    o.loggers = {log};
    o.log_every_n_steps = 2;
    Tiny model;
    model.use_adam = true;
    train::Trainer trainer(o);
    trainer.fit(model, loader(16, 4, true));
    const auto lr = log->series("lr-Adam"), loss = log->series("train_loss");
    REQUIRE(loss.size() == 4);  // steps 2, 4, 6, 8
    std::set<int64_t> lr_steps;
    for (const auto& [step, v] : lr) lr_steps.insert(step);
    for (const auto& [step, v] : loss) CHECK(lr_steps.contains(step));
    for (int64_t odd : {1, 3, 5, 7}) CHECK_FALSE(lr_steps.contains(odd));
  }
}
