// DataLoader errors: worker exceptions keep their type and name the worker and batch, and a worker
// thread that cannot start is named (RLIMIT_NPROC in a child process).
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "data_fixtures.hpp"
#include "test_util.hpp"

using namespace ember;
using data_test::drain;
using data_test::has_text;
using data_test::ids;
using data_test::range_dataset;

namespace {

// Example 21 (in batch 2 of 8) runs `fail`; the others are plain.
struct FailingDataset : data::Dataset {
  std::function<void()> fail;
  explicit FailingDataset(std::function<void()> f) : fail(std::move(f)) {}
  int64_t size() const override { return 40; }
  data::Example get(int64_t i) const override {
    if (i == 21) fail();
    return {.input = full({2}, static_cast<double>(i)), .target = scalar_tensor(i, {.dtype = kI64})};
  }
};

// What the consumer catches as E when example 21 throws `error`: its message, "" when E does not catch it.
template <class E, class Thrown>
std::string caught_as(int64_t workers, Thrown error) {
  data::DataLoader loader(std::make_shared<FailingDataset>([error] { throw error; }),
                          {.batch_size = 8, .num_workers = workers});
  try {
    for (const data::Batch& b : loader) (void)b;
  } catch (const E& e) {
    return e.what();
  } catch (...) {
  }
  return "";
}

template <class... E>
void check_ember_classes_kept(int64_t workers) {
  const std::string where =
      workers == 0 ? "[DataLoader] main thread, batch 2 of epoch 0 (examples 16, 17, 18, " : "[DataLoader] worker ";
  (
      [&] {
        const std::string msg = caught_as<E>(workers, E("[read] example 21: bad bytes"));
        CAPTURE(msg);
        CHECK(msg.starts_with(where));
        CHECK(has_text(msg, "batch 2 of epoch 0 (examples 16, "));
        CHECK(msg.ends_with("): [read] example 21: bad bytes"));
      }(),
      ...);
}

}  // namespace

TEST_CASE("data: DataLoader worker exceptions keep their type, with the worker and batch in the message") {
  for (int64_t workers : {0, 1, 3}) {
    CAPTURE(workers);
    // Every class of core/error.hpp is caught as itself (they are siblings: catching E means it is an E).
    check_ember_classes_kept<ShapeError, DTypeError, DeviceError, IndexError, ValueError, OutOfMemoryError, FormatError,
                             IOError, AutogradError, DistError, Error>(workers);
    // A subclass of one of them: caught as that class, and itself through rethrow_if_nested.
    struct DiskGone : IOError {
      using IOError::IOError;
    };
    data::DataLoader loader(std::make_shared<FailingDataset>([] { throw DiskGone("disk gone"); }),
                            {.batch_size = 8, .num_workers = workers});
    bool inner = false;
    try {
      for (const data::Batch& b : loader) (void)b;
    } catch (const IOError& e) {
      CHECK(has_text(e.what(), "batch 2 of epoch 0"));
      try {
        std::rethrow_if_nested(e);
      } catch (const DiskGone& original) {
        inner = std::string(original.what()) == "disk gone";
      }
    }
    CHECK(inner);
    // Standard exceptions stay what they were.
    CHECK(caught_as<std::invalid_argument>(workers, std::invalid_argument("bad arg")).ends_with("): bad arg"));
    CHECK(caught_as<std::out_of_range>(workers, std::out_of_range("too far")).ends_with("): too far"));
    CHECK(caught_as<std::runtime_error>(workers, std::runtime_error("plain")).ends_with("): plain"));
    const std::error_code eio(EIO, std::generic_category());
    const std::system_error sys(eio, "pread");
    CHECK(caught_as<std::system_error>(workers, sys).ends_with(std::string("): ") + sys.what()));
    data::DataLoader sys_loader(std::make_shared<FailingDataset>([sys] { throw sys; }),
                                {.batch_size = 8, .num_workers = workers});
    bool code_kept = false;
    try {
      drain(sys_loader);
    } catch (const std::system_error& e) {
      code_kept = e.code() == eio;
    }
    CHECK(code_kept);
    CHECK(has_text(caught_as<std::bad_alloc>(workers, std::bad_alloc()), "batch 2 of epoch 0"));
    // Anything else: an ember::Error naming the batch.
    CHECK(has_text(caught_as<Error>(workers, 42), "batch 2 of epoch 0"));
  }
}

TEST_CASE("data: DataLoader names the worker it cannot start (RLIMIT_NPROC in a child process)") {
  auto dataset = range_dataset(64);
  const data::DataLoaderOptions options{.batch_size = 4, .shuffle = true, .seed = 1, .num_workers = 4};
  data::DataLoader reference(dataset, {.batch_size = 4, .shuffle = true, .seed = 1});
  const int64_t epoch0_first = ids((*reference.begin()).target)[0];
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {  // no doctest here: the outcome goes back through the pipe
    ::close(fds[0]);
    std::string report;
    rlimit lim{};
    ::getrlimit(RLIMIT_NPROC, &lim);
    // RLIMIT_NPROC binds only a user without CAP_SYS_RESOURCE: root first becomes nobody.
    if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) {
      report = "skip: cannot drop root";
    } else {
      rlimit one = lim;
      one.rlim_cur = 1;  // this user already runs a process (this one): no new thread
      if (::setrlimit(RLIMIT_NPROC, &one) != 0) report = "skip: setrlimit failed";
    }
    if (report.empty()) {
      data::DataLoader loader(dataset, options);
      try {
        for (const data::Batch& b : loader) (void)b;
        report = "no error";
      } catch (const Error& e) {
        report = e.what();
      } catch (const std::exception& e) {
        report = std::string("not an ember::Error: ") + e.what();
      }
      // With threads allowed again, the loader starts the same epoch from its beginning.
      ::setrlimit(RLIMIT_NPROC, &lim);
      int64_t batches = 0, first = -1;
      for (const data::Batch& b : loader) {
        if (batches++ == 0) first = b.target.to_vector<int64_t>()[0];
      }
      report += "|" + std::to_string(batches) + " " + std::to_string(first);
    }
    [[maybe_unused]] ssize_t w = ::write(fds[1], report.data(), report.size());
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string report;
  char buf[512];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) report.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  CHECK(WIFEXITED(status));
  if (report.starts_with("skip:")) {
    const std::string why = "RLIMIT_NPROC cannot be applied here (" + report + "); thread-start failure not exercised";
    MESSAGE(why);
    return;
  }
  CHECK(report == "[DataLoader] could not start worker 0 of 4: " + std::generic_category().message(EAGAIN) + "|16 " +
                      std::to_string(epoch0_first));
}
