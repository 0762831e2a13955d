// ember::profiler: op recording (names, shapes, dtypes, forward and backward), nesting and self time, the
// Chrome trace, the schedule, nothing recorded when off; the Trainer's "simple" and "ops" profilers.
#include <doctest/doctest.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "core/profiler.hpp"
#include "trainer_fixtures.hpp"

namespace {

using namespace trainer_test;
namespace prof = ember::profiler;

std::vector<prof::Event> named(const std::vector<prof::Event>& evs, const std::string& name) {
  std::vector<prof::Event> out;
  for (const auto& e : evs)
    if (e.name == name) out.push_back(e);
  return out;
}

// Every two events of one thread are disjoint or one contains the other.
bool properly_nested(const std::vector<prof::Event>& evs) {
  for (size_t i = 0; i < evs.size(); ++i)
    for (size_t j = i + 1; j < evs.size(); ++j) {
      const auto &a = evs[i], &b = evs[j];
      if (a.tid != b.tid) continue;
      const bool disjoint = a.end_ns <= b.start_ns || b.end_ns <= a.start_ns;
      const bool a_in_b = b.start_ns <= a.start_ns && a.end_ns <= b.end_ns;
      const bool b_in_a = a.start_ns <= b.start_ns && b.end_ns <= a.end_ns;
      if (!(disjoint || a_in_b || b_in_a)) return false;
    }
  return true;
}

bool encloses(const prof::Event& outer, const prof::Event& inner) {
  return outer.tid == inner.tid && outer.start_ns <= inner.start_ns && inner.end_ns <= outer.end_ns;
}

std::string read_file(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Rows of Lightning's report: action -> (calls, percent).
std::map<std::string, std::pair<int64_t, double>> report_rows(const std::string& text) {
  std::map<std::string, std::pair<int64_t, double>> rows;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("|", 0) != 0) continue;
    std::vector<std::string> cells;
    std::stringstream ls(line.substr(1));
    std::string cell;
    while (std::getline(ls, cell, '|')) {
      const auto b = cell.find_first_not_of(' '), e = cell.find_last_not_of(' ');
      cells.push_back(b == std::string::npos ? "" : cell.substr(b, e - b + 1));
    }
    if (cells.size() < 5 || cells[0] == "Action") continue;
    rows[cells[0]] = {std::stoll(cells[2]), std::stod(cells[4])};
  }
  return rows;
}

struct CountingCallback : train::Callback {
  std::string state_key() const override { return "Counting"; }
  void on_train_batch_end(train::Trainer&, train::TrainModule&, const Tensor&, const data::Batch&, int64_t) override {}
};

struct SlowTiny : Tiny {
  Tensor training_step(const data::Batch& b, int64_t i) override {
    std::this_thread::sleep_for(std::chrono::milliseconds(6));
    return Tiny::training_step(b, i);
  }
};

}  // namespace

TEST_SUITE("profiler") {
  TEST_CASE("profiler: records each op's forward and backward with its shapes, dtypes and device") {
    Tensor a = randn({2, 3}, {.requires_grad = true});
    Tensor b = randn({3, 4}, {.requires_grad = true});
    prof::Profiler p;
    p.start();
    Tensor c = matmul(a, b);
    Tensor d = c + randn({4});
    Tensor loss = d.sum();
    loss.backward();
    p.stop();
    const auto evs = p.events();
    const auto mm = named(evs, "matmul");
    REQUIRE(mm.size() == 3);  // the forward, and the two products of its backward
    CHECK(mm[0].category == prof::Category::kOp);
    CHECK(mm[0].shapes == std::vector<std::vector<int64_t>>{{2, 3}, {3, 4}});
    CHECK(mm[0].dtypes == std::vector<std::string>{"float32", "float32"});
    CHECK(mm[0].device == "cpu");
    CHECK(mm[0].end_ns >= mm[0].start_ns);
    const auto add = named(evs, "add");
    REQUIRE(!add.empty());
    CHECK(add[0].shapes == std::vector<std::vector<int64_t>>{{2, 4}, {4}});
    CHECK(named(evs, "sum").size() == 1);
    // Backward nodes, over the gradient each receives.
    const auto sum_bw = named(evs, "sum_backward");
    REQUIRE(sum_bw.size() == 1);
    CHECK(sum_bw[0].category == prof::Category::kBackward);
    CHECK(sum_bw[0].shapes == std::vector<std::vector<int64_t>>{{}});
    const auto mm_bw = named(evs, "matmul_backward");
    REQUIRE(mm_bw.size() == 1);
    CHECK(mm_bw[0].shapes == std::vector<std::vector<int64_t>>{{2, 4}});  // the product's gradient
    CHECK(mm_bw[0].start_ns >= sum_bw[0].end_ns);                         // backward runs in reverse
    CHECK(encloses(mm_bw[0], mm[1]));
    CHECK(encloses(mm_bw[0], mm[2]));
    CHECK(mm[1].shapes == std::vector<std::vector<int64_t>>{{2, 4}, {4, 3}});  // grad @ b^T
    CHECK(properly_nested(evs));
    // Nothing more is recorded once stopped.
    Tensor e = matmul(a, b);
    CHECK(p.events().size() == evs.size());
  }

  TEST_CASE("profiler: views, creation ops and the fused optimizer updates are recorded too") {
    Tensor w = randn({4, 3}, {.requires_grad = true});
    auto opt = std::make_shared<optim::AdamW>(std::vector<Tensor>{w}, optim::AdamWOptions{.lr = 1e-2});
    prof::Profiler p;
    p.start();
    Tensor x = zeros({2, 4}) + arange(8).to(kF32).reshape({2, 4});
    Tensor y = matmul(x, w).transpose(0, 1).sum();
    y.backward();
    opt->step();
    p.stop();
    const auto evs = p.events();
    REQUIRE_FALSE(named(evs, "reshape").empty());
    CHECK(named(evs, "reshape")[0].shapes == std::vector<std::vector<int64_t>>{{8}});
    CHECK(named(evs, "transpose").size() >= 1);
    CHECK(named(evs, "full").size() >= 1);  // zeros
    CHECK(named(evs, "arange").size() == 1);
    const auto step = named(evs, "adam_step_");
    REQUIRE(step.size() == 1);
    CHECK(step[0].shapes.front() == std::vector<int64_t>{4, 3});
    CHECK(properly_nested(evs));
  }

  TEST_CASE("profiler: record_function ranges nest ops; self time is total minus the children") {
    Tensor a = randn({64, 64}), b = randn({64, 64});
    prof::Profiler p;
    p.start();
    {
      prof::record_function outer("outer");
      Tensor c = matmul(a, b);
      {
        prof::RecordFunction inner("inner");
        c = c.relu() * 2.0;
      }
    }
    p.stop();
    const auto evs = p.events();
    CHECK(properly_nested(evs));
    const auto outer = named(evs, "outer"), inner = named(evs, "inner");
    REQUIRE(outer.size() == 1);
    REQUIRE(inner.size() == 1);
    CHECK(encloses(outer[0], inner[0]));
    CHECK(encloses(outer[0], named(evs, "matmul").at(0)));
    CHECK(encloses(inner[0], named(evs, "relu").at(0)));
    CHECK(encloses(inner[0], named(evs, "mul").at(0)));
    CHECK_FALSE(encloses(inner[0], named(evs, "matmul").at(0)));
    for (const prof::Stat& s : p.key_averages()) {
      CHECK(s.self_us <= s.total_us + 1e-9);
      if (s.name == "outer") {
        const double children = named(evs, "matmul")[0].dur_us() + inner[0].dur_us();
        CHECK(s.self_us == doctest::Approx(s.total_us - children).epsilon(1e-6));
      }
    }
    const std::string table = p.table("total", 5);
    CHECK(table.find("Self CPU %") != std::string::npos);
    CHECK(table.find("outer") != std::string::npos);
    CHECK(table.find("matmul") != std::string::npos);
    CHECK(throws_with<ValueError>([&] { (void)p.table("flops"); }, "[profiler]"));
    CHECK(p.table("cuda", 5).find("CUDA total") != std::string::npos);  // sorted by device time (none here)
  }

  TEST_CASE("profiler: the Chrome trace parses and has the fields chrome://tracing needs") {
    Tensor a = randn({2, 3}), b = randn({3, 5});
    prof::Profiler p;
    p.start();
    {
      prof::RecordFunction r("phase \"quoted\"");
      (void)matmul(a, b);
    }
    p.stop();
    TempDir dir("profiler_trace");
    p.export_chrome_trace((dir.path / "trace.json").string());
    const nlohmann::json doc = nlohmann::json::parse(read_file(dir.path / "trace.json"));
    REQUIRE(doc.contains("traceEvents"));
    int complete = 0, ops = 0;
    for (const auto& e : doc["traceEvents"]) {
      REQUIRE(e.contains("ph"));
      REQUIRE(e.contains("pid"));
      REQUIRE(e.contains("tid"));
      if (e["ph"] != "X") continue;
      ++complete;
      CHECK(e["ts"].is_number());
      CHECK(e["dur"].is_number());
      CHECK(e["dur"].get<double>() >= 0);
      CHECK(e["name"].is_string());
      if (e["name"] == "matmul") {
        ++ops;
        CHECK(e["cat"] == "cpu_op");
        CHECK(e["args"]["Input Dims"] == nlohmann::json::parse("[[2, 3], [3, 5]]"));
        CHECK(e["args"]["Input type"] == nlohmann::json::parse(R"(["float32", "float32"])"));
        CHECK(e["args"]["Device"] == "cpu");
      }
      if (e["name"] == "phase \"quoted\"") CHECK(e["cat"] == "user_annotation");
    }
    CHECK(ops == 1);
    CHECK(complete >= 2);
  }

  TEST_CASE("profiler: the schedule records only the active steps (torch.profiler.schedule)") {
    using A = prof::Schedule::Action;
    // torch.profiler.schedule(wait=1, warmup=1, active=2, repeat=1, skip_first=1), steps 0..7.
    const prof::Schedule s{.wait = 1, .warmup = 1, .active = 2, .repeat = 1, .skip_first = 1};
    const std::vector<A> want{A::kNone, A::kNone, A::kWarmup, A::kRecord, A::kRecord, A::kNone, A::kNone, A::kNone};
    for (int64_t i = 0; i < 8; ++i) CHECK(s.action(i) == want[i]);
    const prof::Schedule forever{.wait = 2, .warmup = 1, .active = 2, .repeat = 0};
    CHECK(forever.action(7) == A::kWarmup);
    CHECK(forever.action(9) == A::kRecord);
    CHECK(forever.action(10) == A::kNone);

    prof::Profiler p({.use_schedule = true, .schedule = {.wait = 2, .warmup = 1, .active = 2, .repeat = 1}});
    p.start();
    for (int64_t step = 0; step < 8; ++step) {
      (void)matmul(ones({1, step + 1}), ones({step + 1, 1}));  // the inner size tells the step
      p.step();
    }
    p.stop();
    std::vector<int64_t> steps;
    for (const auto& e : named(p.events(), "matmul")) steps.push_back(e.shapes.at(0).at(1) - 1);
    CHECK(steps == std::vector<int64_t>{3, 4});
  }

  TEST_CASE("profiler: nothing is recorded without a running profiler; one profiler at a time") {
    CHECK_FALSE(prof::ops_on());
    CHECK_FALSE(prof::ranges_on());
    prof::Profiler idle;
    (void)matmul(ones({2, 2}), ones({2, 2}));
    CHECK(idle.events().empty());
    {
      prof::Profiler p({.record_ops = false});
      p.start();
      CHECK(prof::ranges_on());
      CHECK_FALSE(prof::ops_on());
      {
        prof::RecordFunction r("only ranges");
        (void)matmul(ones({2, 2}), ones({2, 2}));
      }
      prof::Profiler other;
      CHECK(throws_with<ValueError>([&] { other.start(); }, "[profiler] another profiler is already running"));
      p.stop();
      const auto evs = p.events();
      REQUIRE(evs.size() == 1);
      CHECK(evs[0].name == "only ranges");
    }
    CHECK_FALSE(prof::ranges_on());
  }

  TEST_CASE("profiler: Trainer profiler=\"simple\" reports each phase and hook with its calls") {
    TempDir dir("profiler_simple");
    Tiny model;
    auto cb = std::make_shared<CountingCallback>();
    train::TrainerOptions o = quiet({.max_epochs = 2, .num_sanity_val_steps = 0});
    o.callbacks = {cb};
    o.default_root_dir = dir.str();
    o.profiler = "simple";
    train::Trainer trainer(o);
    trainer.fit(model, loader(32, 8, true), loader(16, 8, false));  // 4 training and 2 validation batches
    CHECK_FALSE(prof::ranges_on());
    const fs::path file = dir.path / "fit-profiler.txt";
    REQUIRE(fs::exists(file));
    const std::string text = read_file(file);
    CHECK(text.find("FIT Profiler Report") != std::string::npos);
    const auto rows = report_rows(text);
    auto calls = [&](const std::string& name) { return rows.count(name) ? rows.at(name).first : -1; };
    CHECK(calls("run_training_epoch") == 2);
    CHECK(calls("run_training_batch") == 8);
    CHECK(calls("[Loop] train_dataloader_next") == 8);
    CHECK(calls("[Trainer] batch_to_device") == 8 + 4);  // training and validation batches
    CHECK(calls("[TrainModule] training_step") == 8);
    CHECK(calls("[Trainer] backward") == 8);
    CHECK(calls("[Trainer] optimizer_step") == 8);
    CHECK(calls("[TrainModule] validation_step") == 4);
    CHECK(calls("[Trainer] run_validation") == 2);
    CHECK(calls("[Callback]Counting.on_train_batch_end") == 8);
    CHECK(calls("[Callback]Counting.on_fit_start") == 1);
    CHECK(calls("[Callback]Counting.on_train_epoch_end") == 2);
    CHECK(rows.at("Total").second == doctest::Approx(100));
    for (const auto& [name, row] : rows) {
      CHECK(row.second >= 0);
      CHECK(row.second <= 100.0 + 1e-9);
    }
    // Phases inside a batch take no more than the batch.
    CHECK(rows.at("[TrainModule] training_step").second + rows.at("[Trainer] backward").second +
              rows.at("[Trainer] optimizer_step").second <=
          rows.at("run_training_batch").second + 1e-6);
  }

  TEST_CASE("profiler: validate, test and predict write their own reports; ops are scheduled by their batches") {
    TempDir dir("profiler_eval");
    Tiny model;
    train::TrainerOptions o = quiet({.max_epochs = 1, .num_sanity_val_steps = 0});
    o.default_root_dir = dir.str();
    o.profiler = "simple";
    train::Trainer trainer(o);
    trainer.validate(model, loader(24, 8, false), {.verbose = false});  // 3 batches
    trainer.test(model, loader(32, 8, false), {.verbose = false});      // 4
    trainer.predict(model, loader(40, 8, false));                       // 5
    auto rows_of = [&](const char* stage) {
      const fs::path file = dir.path / (std::string(stage) + "-profiler.txt");
      REQUIRE(fs::exists(file));
      return read_file(file);
    };
    const std::string validate = rows_of("validate"), test = rows_of("test"), predict = rows_of("predict");
    CHECK(validate.find("VALIDATE Profiler Report") != std::string::npos);
    CHECK(report_rows(validate).at("[TrainModule] validation_step").first == 3);
    CHECK(report_rows(test).at("[TrainModule] test_step").first == 4);
    CHECK(report_rows(predict).at("[TrainModule] predict_step").first == 5);
    CHECK(report_rows(predict).at("[Trainer] batch_to_device").first == 5);
    CHECK_FALSE(fs::exists(dir.path / "fit-profiler.txt"));

    // "ops": the schedule (wait 1, warmup 1, active 3) counts the loop's batches: predict batches 2-4.
    TempDir ops_dir("profiler_eval_ops");
    o.default_root_dir = ops_dir.str();
    o.profiler = "ops";
    train::Trainer ops(o);
    ops.predict(model, loader(48, 8, false));  // 6 batches
    const nlohmann::json doc = nlohmann::json::parse(read_file(ops_dir.path / "predict-trace.json"));
    int steps = 0, addmm = 0;
    for (const auto& e : doc["traceEvents"]) {
      if (e.value("cat", "") == "kernel") continue;  // on a GPU each op also has its device time on a GPU track
      steps += e["name"] == "[TrainModule] predict_step";
      addmm += e["name"] == "addmm";
    }
    CHECK(steps == 3);
    CHECK(addmm == 3);
  }

  TEST_CASE("profiler: the Trainer's top-level phases add up to the run's wall time") {
    SlowTiny model;  // 6 ms per training step: the phases dominate the fixed set-up
    auto user = std::make_shared<prof::Profiler>(prof::ProfilerOptions{.record_ops = false});
    TempDir dir("profiler_wall");
    train::TrainerOptions o = quiet({.max_epochs = 2, .num_sanity_val_steps = 0});
    o.default_root_dir = dir.str();
    o.profiler_instance = user;
    train::Trainer trainer(o);
    trainer.fit(model, loader(32, 8, true));
    const auto evs = user->events();
    CHECK(properly_nested(evs));
    double top = 0;  // ranges not inside another range of their thread
    for (size_t i = 0; i < evs.size(); ++i) {
      bool nested = false;
      for (size_t j = 0; j < evs.size() && !nested; ++j)
        nested = j != i && encloses(evs[j], evs[i]) && !(encloses(evs[i], evs[j]) && j > i);
      if (!nested) top += evs[i].dur_us();
    }
    const double wall = user->wall_us();
    CHECK(top <= wall * 1.001);
    CHECK(top >= wall * 0.9);
    CHECK(named(evs, "run_training_batch").size() == 8);
  }

  TEST_CASE("profiler: Trainer profiler=\"ops\" writes a trace with ops nested in the phases of 3 steps") {
    TempDir dir("profiler_ops");
    Tiny model;
    train::TrainerOptions o = quiet({.max_epochs = 2, .num_sanity_val_steps = 0});
    o.default_root_dir = dir.str();
    o.profiler = "ops";
    train::Trainer trainer(o);
    trainer.fit(model, loader(32, 8, true));
    REQUIRE(fs::exists(dir.path / "fit-trace.json"));
    const nlohmann::json doc = nlohmann::json::parse(read_file(dir.path / "fit-trace.json"));
    std::vector<prof::Event> evs;
    for (const auto& e : doc["traceEvents"]) {
      if (e["ph"] != "X" || e.value("cat", "") == "kernel") continue;  // host events only (no GPU track)
      prof::Event ev;
      ev.name = e["name"];
      ev.tid = e["tid"];
      ev.start_ns = static_cast<int64_t>(e["ts"].get<double>() * 1e3);
      ev.end_ns = ev.start_ns + static_cast<int64_t>(e["dur"].get<double>() * 1e3);
      evs.push_back(ev);
    }
    // Schedule wait 1, warmup 1, active 3: batches 2, 3 and 4 of the 8.
    const auto batches = named(evs, "run_training_batch");
    CHECK(batches.size() == 3);
    const auto addmm = named(evs, "addmm");  // the Linear's forward
    CHECK(addmm.size() == 3);
    for (const auto& op : addmm) {
      bool inside = false;
      for (const auto& b : batches)  // 2 ns of slack for the trace's microsecond floats
        inside = inside || (b.start_ns <= op.start_ns + 2 && op.end_ns <= b.end_ns + 2);
      CHECK(inside);
    }
    const std::string report = read_file(dir.path / "fit-profiler.txt");
    CHECK(report.find("Self CPU %") != std::string::npos);
    CHECK(report.find("addmm") != std::string::npos);
  }

  TEST_CASE("profiler: a bad Trainer profiler name is an error naming the choices") {
    Tiny model;
    train::TrainerOptions o = quiet({.max_epochs = 1});
    o.profiler = "advanced";
    train::Trainer trainer(o);
    CHECK(throws_with<ValueError>([&] { trainer.fit(model, loader(8, 4, false)); }, "[Trainer] profiler must be"));
    CHECK_FALSE(prof::ranges_on());
  }
}
