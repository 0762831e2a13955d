// Tests of train::Cli (LightningCLI): parsing each option type, the order of overrides, YAML and JSON
// config files, --help and --print_config, the TrainerOptions drift check, errors that suggest the
// closest option, and config.yaml written beside the logs and read back to the same options.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "ember.hpp"
#include "train/cli.hpp"
#include "trainer_fixtures.hpp"

using namespace ember;
using namespace ember::train;
using trainer_test::TempDir;
using trainer_test::throws_with;

namespace {

struct DataOptions {
  int64_t batch_size = 32;
  double val_fraction = 0.2;
  std::string root = "data";
  bool shuffle = true;
  std::optional<uint64_t> seed = std::nullopt;
  std::vector<int64_t> sizes = {1, 2};
};

CliTable<DataOptions> data_table() {
  return {cli_field("batch_size", &DataOptions::batch_size, "samples per batch"),
          cli_field("val_fraction", &DataOptions::val_fraction, "held-out share"),
          cli_field("root", &DataOptions::root, "where the files are"),
          cli_field("shuffle", &DataOptions::shuffle),
          cli_field("seed", &DataOptions::seed),
          cli_field("sizes", &DataOptions::sizes)};
}

// A Cli over all three groups, as a program sets it up.
struct Setup {
  TrainerOptions trainer;
  DataOptions data;
  nlohmann::json model = {
      {"lr", 1e-3}, {"hidden", 64}, {"name", "mlp"}, {"dropout", false}, {"encoder", {{"layers", 2}}}};
  std::ostringstream out;
  Cli cli{"prog", "a test program"};
  Setup() {
    cli.trainer(trainer).add_options("data", data, data_table()).add_hparams("model", model).output(out);
    cli.alias("--device", "trainer.accelerator").positional("[epochs]");
  }
  Cli::Action parse(std::vector<std::string> args, std::vector<std::string>* pos = nullptr) {
    return cli.parse(args, pos);
  }
};

void write(const std::filesystem::path& p, const std::string& text) { std::ofstream(p) << text; }

}  // namespace

TEST_CASE("cli: every TrainerOptions field has a row, once, in declaration order (the drift check)") {
  const auto& table = trainer_cli_table();
  // A field added to TrainerOptions without a row in train/cli.cpp's trainer_cli_table() fails here.
  CHECK(table.size() == aggregate_field_count<TrainerOptions>());
  std::set<std::string> names;
  for (size_t i = 0; i < table.size(); ++i) {
    names.insert(table[i].name);
    if (i > 0) CHECK_MESSAGE(table[i].offset > table[i - 1].offset, table[i].name, " is out of declaration order");
  }
  CHECK(names.size() == table.size());
  // The counter itself counts: a struct of three fields has three.
  struct Three {
    int a;
    std::string b;
    std::optional<double> c;
  };
  CHECK(aggregate_field_count<Three>() == 3);
  CHECK(aggregate_field_count<DataOptions>() == 6);
}

TEST_CASE("cli: each type parses from --name=value and --name value") {
  Setup s;
  std::vector<std::string> pos;
  REQUIRE(s.parse({"--trainer.max_epochs=5",
                   "--trainer.devices",
                   "2",
                   "--trainer.max_time=90.5",
                   "--trainer.precision",
                   "bf16-mixed",
                   "--trainer.deterministic",
                   "--trainer.logger=false",
                   "--trainer.seed=42",
                   "--trainer.val_check_interval=0.25",
                   "--trainer.limit_val_batches",
                   "10",
                   "--trainer.check_val_every_n_epoch=null",
                   "--trainer.gradient_clip_val=1",
                   "12",
                   "--data.sizes=[3, 4, 5]",
                   "--data.seed",
                   "7",
                   "--model.lr=3e-3",
                   "--model.hidden",
                   "128",
                   "--model.name=cnn",
                   "--model.dropout",
                   "true",
                   "--model.encoder.layers=4",
                   "--device=cpu"},
                  &pos) == Cli::Action::kRun);
  CHECK(pos == std::vector<std::string>{"12"});
  const TrainerOptions& t = s.trainer;
  CHECK(t.max_epochs == 5);
  CHECK(t.devices == 2);
  CHECK(t.max_time == 90.5);
  CHECK(t.precision == "bf16-mixed");
  CHECK(t.deterministic);
  CHECK_FALSE(t.logger);
  CHECK(t.seed == uint64_t{42});
  CHECK(t.val_check_interval.is_fraction());
  CHECK(t.val_check_interval.fraction() == 0.25);
  CHECK(t.limit_val_batches.batches() == 10);
  CHECK_FALSE(t.check_val_every_n_epoch.has_value());
  CHECK(t.gradient_clip_val == 1.0);  // an int where a float is expected
  CHECK(t.accelerator == "cpu");      // the --device alias
  CHECK(s.data.sizes == std::vector<int64_t>{3, 4, 5});
  CHECK(s.data.seed == uint64_t{7});
  CHECK(s.model["lr"].get<double>() == 3e-3);
  CHECK(s.model["hidden"].get<int64_t>() == 128);
  CHECK(s.model["name"] == "cnn");
  CHECK(s.model["dropout"] == true);
  CHECK(s.model["encoder"]["layers"] == 4);
  // Comma lists, and a bool followed by a non-bool stays a flag.
  REQUIRE(s.parse({"--data.sizes=8,9", "--data.shuffle", "--trainer.max_epochs", "null"}, &pos) == Cli::Action::kRun);
  CHECK(s.data.sizes == std::vector<int64_t>{8, 9});
  CHECK(s.data.shuffle);
  CHECK_FALSE(s.trainer.max_epochs.has_value());
}

TEST_CASE("cli: argv keeps the program name and positional arguments in order") {
  Setup s;
  std::vector<std::string> storage = {"prog", "a", "--trainer.max_steps", "7", "b", "--", "--c"};
  std::vector<char*> argv;
  for (auto& a : storage) argv.push_back(a.data());
  int argc = static_cast<int>(argv.size());
  REQUIRE(s.cli.parse(argc, argv.data()) == Cli::Action::kRun);
  REQUIRE(argc == 4);
  CHECK(std::string(argv[1]) == "a");
  CHECK(std::string(argv[2]) == "b");
  CHECK(std::string(argv[3]) == "--c");
  CHECK(s.trainer.max_steps == 7);
}

TEST_CASE("cli: config files (YAML and JSON) and overrides in argument order") {
  TempDir dir("cli_config");
  write(dir.path / "run.yaml",
        "# a LightningCLI-style config\n"
        "trainer:\n  max_epochs: 4\n  precision: 16-mixed\n  limit_train_batches: 1.0\n  seed: 3\n"
        "  check_val_every_n_epoch: null\n"
        "data:\n  batch_size: 16\n  root: \"123\"\n"
        "model:\n  lr: 0.01\n  encoder:\n    layers: 3\n");
  write(dir.path / "run.json", R"({"trainer": {"max_epochs": 6, "precision": 32}, "model": {"hidden": 8}})");
  Setup s;
  REQUIRE(s.parse({"--trainer.max_epochs=9", "--config", (dir.path / "run.yaml").string(), "--data.batch_size=8"}) ==
          Cli::Action::kRun);
  CHECK(s.trainer.max_epochs == 4);  // the file overrides what came before it
  CHECK(s.trainer.precision == "16-mixed");
  CHECK(s.trainer.limit_train_batches.is_fraction());  // 1.0 is a fraction, not one batch
  CHECK(s.trainer.seed == uint64_t{3});
  CHECK_FALSE(s.trainer.check_val_every_n_epoch.has_value());
  CHECK(s.data.batch_size == 8);  // what comes after the file overrides it
  CHECK(s.data.root == "123");    // quoted in YAML: a string
  CHECK(s.model["lr"].get<double>() == 0.01);
  CHECK(s.model["encoder"]["layers"] == 3);
  REQUIRE(s.parse({"--config=" + (dir.path / "run.json").string()}) == Cli::Action::kRun);
  CHECK(s.trainer.max_epochs == 6);
  CHECK(s.trainer.precision == "32");  // a number where a string is expected reads as its text
  CHECK(s.model["hidden"] == 8);

  write(dir.path / "typo.yaml", "trainer:\n  max_epoch: 3\n");
  CHECK(throws_with<ValueError>(
      [&] {
        s.parse({"--config", (dir.path / "typo.yaml").string()});
      },
      "unknown key trainer.max_epoch; did you mean trainer.max_epochs?"));
  write(dir.path / "bad.yaml", "trainer:\n  max_epochs: [1, 2\n");
  CHECK(throws_with<FormatError>([&] { s.parse({"--config", (dir.path / "bad.yaml").string()}); }, "line"));
  write(dir.path / "bad.json", "{\"trainer\": ");
  CHECK(throws_with<FormatError>([&] { s.parse({"--config", (dir.path / "bad.json").string()}); }, "not valid JSON"));
  CHECK(throws_with<IOError>([&] { s.parse({"--config", (dir.path / "missing.yaml").string()}); }, "missing.yaml"));
  write(dir.path / "badvalue.yaml", "trainer:\n  devices: two\n");
  CHECK(throws_with<ValueError>(
      [&] {
        s.parse({"--config", (dir.path / "badvalue.yaml").string()});
      },
      "--trainer.devices expects int, got \"two\""));
}

TEST_CASE("cli: unknown options and bad values are errors that say what would be right") {
  Setup s;
  CHECK(throws_with<ValueError>([&] { s.parse({"--trainer.max_epoch=3"}); },
                                "[cli] unknown option --trainer.max_epoch; did you mean --trainer.max_epochs?"));
  CHECK(throws_with<ValueError>([&] { s.parse({"--max_steps", "3"}); }, "did you mean --trainer.max_steps?"));
  CHECK(throws_with<ValueError>([&] { s.parse({"--model.lrr=1"}); }, "did you mean --model.lr?"));
  CHECK(throws_with<ValueError>([&] { s.parse({"--data.batchsize=1"}); }, "did you mean --data.batch_size?"));
  CHECK(throws_with<ValueError>([&] { s.parse({"--trainer.max_epochs=five"}); },
                                "[cli] --trainer.max_epochs expects int64 | null, got \"five\""));
  CHECK(throws_with<ValueError>([&] { s.parse({"--trainer.max_epochs=2.5"}); }, "expects int64 | null"));
  CHECK(throws_with<ValueError>([&] { s.parse({"--trainer.devices=99999999999"}); }, "expects int, got"));
  CHECK(throws_with<ValueError>([&] { s.parse({"--trainer.seed=-1"}); }, "expects uint | null"));
  CHECK(throws_with<ValueError>([&] { s.parse({"--trainer.deterministic=maybe"}); }, "expects bool"));
  CHECK(throws_with<ValueError>([&] { s.parse({"--trainer.limit_val_batches=all"}); }, "expects int | float"));
  CHECK(throws_with<ValueError>([&] { s.parse({"--model.hidden=1.5"}); }, "--model.hidden expects int, got \"1.5\""));
  CHECK(throws_with<ValueError>([&] { s.parse({"--trainer.callbacks=x"}); }, "set in code"));
  CHECK(throws_with<ValueError>([&] { s.parse({"--trainer.max_epochs"}); }, "needs a value"));
  CHECK(s.trainer.max_epochs == std::nullopt);  // nothing applied by the failed calls
}

TEST_CASE("cli: --help lists every field with its type and default, grouped") {
  Setup s;
  REQUIRE(s.parse({"--help"}) == Cli::Action::kExit);
  const std::string help = s.out.str();
  for (const auto& f : trainer_cli_table()) CHECK_MESSAGE(help.find(f.name) != std::string::npos, f.name);
  CHECK(help.find("--trainer.max_epochs  int64 | null  (default: null)") != std::string::npos);
  CHECK(help.find("--trainer.val_check_interval  int | float  (default: 1.0)") != std::string::npos);
  CHECK(help.find("--trainer.accelerator  str  (default: auto)") != std::string::npos);
  CHECK(help.find("trainer.callbacks  list[Callback]  (not a command-line option)") != std::string::npos);
  CHECK(help.find("--data.batch_size  int64  (default: 32)") != std::string::npos);
  CHECK(help.find("--model.lr  float  (default: 0.001)") != std::string::npos);
  CHECK(help.find("--model.encoder.layers  int  (default: 2)") != std::string::npos);
  CHECK(help.find("--device VALUE") != std::string::npos);
  CHECK(help.find("usage: prog") != std::string::npos);
  CHECK(help.find("[epochs]") != std::string::npos);
  CHECK(help.find("trainer (TrainerOptions") < help.find("\ndata:"));
  CHECK(help.find("\ndata:") < help.find("model (hyperparameters)"));
}

TEST_CASE("cli: --print_config prints the resolved config, which reads back to the same options") {
  Setup s;
  REQUIRE(s.parse({"--trainer.max_epochs=3", "--trainer.limit_val_batches=1", "--model.name=true story",
                   "--print_config"}) == Cli::Action::kExit);
  const std::string yaml = s.out.str();
  CHECK(yaml.find("trainer:\n  max_epochs: 3\n  min_epochs: 0\n") == 0);  // declaration order
  CHECK(yaml.find("  val_check_interval: 1.0\n") != std::string::npos);
  CHECK(yaml.find("  limit_val_batches: 1\n") != std::string::npos);
  CHECK(yaml.find("  accelerator: auto\n") != std::string::npos);
  CHECK(yaml.find("  precision: \"32\"\n") != std::string::npos);  // quoted: it would read back as a number
  CHECK(yaml.find("callbacks") == std::string::npos);

  TempDir dir("cli_print");
  write(dir.path / "printed.yaml", yaml);
  Setup back;
  REQUIRE(back.parse({"--config", (dir.path / "printed.yaml").string()}) == Cli::Action::kRun);
  CHECK(back.cli.config() == s.cli.config());
  CHECK(back.trainer.limit_val_batches.batches() == 1);
  CHECK(back.trainer.val_check_interval.is_fraction());
}

TEST_CASE("cli: the resolved config is written beside the logs at fit start and round-trips") {
  TempDir dir("cli_fit");
  for (const std::string name : {"config.yaml", "config.json"}) {
    Setup s;
    REQUIRE(s.parse({"--trainer.max_epochs=1", "--trainer.default_root_dir=" + dir.str(),
                     "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
                     "--trainer.enable_checkpointing=false", "--trainer.gradient_clip_val=0.5", "--model.hidden=7",
                     "--trainer.limit_train_batches=2", "--trainer.num_sanity_val_steps=0"}) == Cli::Action::kRun);
    s.trainer.callbacks.push_back(s.cli.save_config_callback(name));
    Trainer trainer(s.trainer);
    trainer_test::Tiny model;
    trainer.fit(model, trainer_test::loader(16, 4, false));
    const std::filesystem::path written = std::filesystem::path(trainer.log_dir()) / name;
    REQUIRE(std::filesystem::exists(written));
    CHECK(read_config_file(written.string()) == s.cli.config());
    Setup back;
    REQUIRE(back.parse({"--config", written.string()}) == Cli::Action::kRun);
    CHECK(back.cli.config() == s.cli.config());
    CHECK(back.trainer.gradient_clip_val == 0.5);
    CHECK(back.trainer.limit_train_batches.batches() == 2);
    CHECK(back.model["hidden"] == 7);
  }
}

TEST_CASE("cli: YAML text out and the closest match") {
  CliJson v = {{"a", 1.0},
               {"b", "yes: no"},
               {"c", nlohmann::ordered_json::array({1, "x", 2.5})},
               {"d", ""},
               {"e", "-x"},
               {"f", 1e300},
               {"g", CliJson::object()}};
  CHECK(cli_to_yaml(v) == "a: 1.0\nb: \"yes: no\"\nc: [1, x, 2.5]\nd: \"\"\ne: \"-x\"\nf: 1e+300\ng: {}\n");
  CHECK(closest_match("trainer.max_epoch", {"trainer.min_epochs", "trainer.max_epochs"}) == "trainer.max_epochs");
  CHECK(closest_match("x", {}).empty());
}
