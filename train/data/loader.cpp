// DataLoader: a pass is a numbered sequence of batches; worker threads fetch batch numbers in order from
// a bounded window and the consumer takes them in order, so the result never depends on num_workers.
#include "train/data/loader.hpp"

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <limits>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <system_error>
#include <thread>
#include <vector>

#include "core/autograd.hpp"
#include "core/error_context.hpp"
#include "core/ops/random.hpp"
#include "core/stream.hpp"

namespace ember::data {

using json = nlohmann::json;

namespace detail {

// A worker makes a GPU-resident batch (a CUDA dataset's gather) on its own thread's current stream, and
// the consumer may run on another (a StreamGuard): the batch carries an event per CUDA device it uses.
struct DeviceReady {
  std::vector<Event> events;

  explicit DeviceReady(const Batch& b) {
    for_cuda_fields(b, [&](const Tensor& t) {
      for (const Event& e : events)
        if (e.device() == t.device()) return;
      events.emplace_back(t.device()).record();
    });
  }
  // The consumer's streams wait for the batch, and the fields' memory, when freed, for their work.
  void wait(const Batch& b) const {
    for (const Event& e : events) Stream::current(e.device()).wait(e);
    for_cuda_fields(b, [](const Tensor& t) { record_stream(t, Stream::current(t.device())); });
  }
  template <class F>
  static void for_cuda_fields(const Batch& b, F&& f) {
    auto visit = [&](const Tensor& t) {
      if (t.defined() && t.device().is_cuda()) f(t);
    };
    visit(b.input);
    visit(b.target);
    for (const auto& [name, t] : b.extra) visit(t);
  }
};

// One pass over the loader. fetch(k, worker) makes batch k (nullopt: the stream ended before it);
// worker is -1 on the consuming thread. Batches [begin, end) are made; end shrinks when a stream ends.
class Pass {
 public:
  using Fetch = std::function<std::optional<Batch>(int64_t k, int64_t worker)>;

  Pass(DataLoader::Impl* owner, Fetch fetch, int64_t begin, int64_t end, int64_t workers, int64_t capacity)
      : owner_(owner),
        fetch_(std::move(fetch)),
        next_yield_(begin),
        next_fetch_(begin),
        end_(end),
        capacity_(std::max<int64_t>(capacity, 1)) {
    threads_.reserve(static_cast<size_t>(workers));
    for (int64_t w = 0; w < workers; ++w) {
      try {
        threads_.emplace_back([this, w] { work(w); });
      } catch (const std::system_error& e) {  // EAGAIN: the thread or process limit (RLIMIT_NPROC) is reached
        stop();
        std::throw_with_nested(Error(ember::detail::cat_str("[DataLoader] could not start worker ", w, " of ", workers,
                                                            ": ", e.code().message())));
      } catch (...) {
        stop();
        throw;
      }
    }
  }
  ~Pass() { stop(); }
  Pass(const Pass&) = delete;
  Pass& operator=(const Pass&) = delete;

  // Ends the pass early: workers finish the batch in hand and are joined.
  void stop() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    work_cv_.notify_all();
    ready_cv_.notify_all();
    for (std::thread& t : threads_)
      if (t.joinable()) t.join();
    threads_.clear();
    done_ = true;
    results_.clear();
  }
  void detach_owner() { owner_ = nullptr; }
  bool done() const { return done_; }
  const Batch& current() const {
    EMBER_CHECK(!done_, ValueError, "[DataLoader] dereferenced an iterator past the end of its pass");
    return current_;
  }

  // Makes the next batch current; false at the end. A failed batch ends the pass and rethrows.
  bool advance();

 private:
  struct Slot {
    std::optional<Batch> batch;
    std::exception_ptr error;
    std::optional<DeviceReady> ready;  // made by a worker thread
  };
  void work(int64_t worker);
  void finish(bool natural);

  DataLoader::Impl* owner_;
  Fetch fetch_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable work_cv_, ready_cv_;
  std::map<int64_t, Slot> results_;
  int64_t next_yield_, next_fetch_, end_, capacity_;
  bool stop_ = false;
  bool done_ = false;
  Batch current_;
};

}  // namespace detail

struct DataLoader::Impl {
  DataLoaderOptions opts;
  DatasetPtr dataset;
  std::shared_ptr<IterableDataset> stream;
  std::shared_ptr<Sampler> sampler;  // map-style only
  uint64_t seed = 0;
  // Position: the next pass runs next_epoch from batch skip; the current (or last) pass is cur_epoch,
  // having yielded `yielded` batches (counting skipped ones), finished when it reached its end.
  int64_t next_epoch = 0, skip = 0;
  int64_t cur_epoch = -1, yielded = 0;
  bool cur_finished = false;
  std::weak_ptr<detail::Pass> active;

  bool pin_batches() const { return opts.pin_memory && cuda_is_available(); }

  ~Impl() { stop_active(); }

  void stop_active() {
    if (auto p = active.lock()) {
      p->stop();
      p->detach_owner();
    }
    active.reset();
  }
  std::optional<int64_t> dataset_size() const {
    if (dataset) return sampler->size();
    return stream->size();
  }
  std::optional<int64_t> num_batches() const {
    auto n = dataset_size();
    if (!n) return std::nullopt;
    const int64_t bs = opts.batch_size;
    return opts.drop_last ? *n / bs : (*n + bs - 1) / bs;
  }
  std::shared_ptr<detail::Pass> start();
  detail::Pass::Fetch map_fetch(int64_t epoch);
  detail::Pass::Fetch stream_fetch(int64_t epoch, int64_t skip_batches);
};

namespace detail {

bool Pass::advance() {
  if (done_) return false;
  Slot slot;
  if (threads_.empty()) {
    if (next_yield_ >= end_) {
      finish(true);
      return false;
    }
    try {
      slot.batch = fetch_(next_yield_, -1);
    } catch (...) {
      slot.error = std::current_exception();
    }
  } else {
    std::unique_lock lock(mu_);
    ready_cv_.wait(lock, [&] { return stop_ || next_yield_ >= end_ || results_.contains(next_yield_); });
    auto it = results_.find(next_yield_);
    if (it == results_.end()) {  // the end, or stopped from outside
      const bool natural = !stop_;
      lock.unlock();
      finish(natural);
      return false;
    }
    slot = std::move(it->second);
    results_.erase(it);
  }
  if (slot.ready) slot.ready->wait(*slot.batch);
  if (slot.error) {
    finish(false);
    std::rethrow_exception(slot.error);
  }
  if (!slot.batch) {
    finish(true);
    return false;
  }
  current_ = std::move(*slot.batch);
  {
    std::lock_guard lock(mu_);
    ++next_yield_;
  }
  work_cv_.notify_all();  // the window moved: a worker may start another batch
  if (owner_) ++owner_->yielded;
  return true;
}

void Pass::finish(bool natural) {
  stop();
  current_ = Batch{};
  if (natural && owner_) owner_->cur_finished = true;
}

void Pass::work(int64_t worker) {
  autograd::NoGradGuard no_grad;  // grad mode is per thread; loading never records a graph
  std::unique_lock lock(mu_);
  while (true) {
    work_cv_.wait(lock, [&] { return stop_ || next_fetch_ >= end_ || next_fetch_ < next_yield_ + capacity_; });
    if (stop_ || next_fetch_ >= end_) return;
    const int64_t k = next_fetch_++;
    lock.unlock();
    Slot slot;
    try {
      slot.batch = fetch_(k, worker);
      if (slot.batch) slot.ready.emplace(*slot.batch);
    } catch (...) {
      slot.error = std::current_exception();
    }
    lock.lock();
    if (slot.error || !slot.batch) end_ = std::min(end_, k + 1);  // nothing after a failure or the stream's end
    results_.emplace(k, std::move(slot));
    ready_cv_.notify_all();
    work_cv_.notify_all();
  }
}

}  // namespace detail

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// The transform's generator for batch k of epoch e: a Philox key hashed from (seed, e, k).
Generator batch_generator(uint64_t seed, int64_t epoch, int64_t k) {
  return Generator(splitmix64(seed ^ splitmix64(static_cast<uint64_t>(epoch) ^ splitmix64(static_cast<uint64_t>(k)))));
}

std::string describe_indices(std::span<const int64_t> idx) {
  std::string s;
  for (size_t i = 0; i < idx.size() && i < 8; ++i) s += (i ? ", " : "") + std::to_string(idx[i]);
  if (idx.size() > 8) s += ", ... (" + std::to_string(idx.size()) + " in all)";
  return s;
}

std::string who(int64_t worker) { return worker < 0 ? std::string("main thread") : "worker " + std::to_string(worker); }

}  // namespace

detail::Pass::Fetch DataLoader::Impl::map_fetch(int64_t epoch) {
  sampler->set_epoch(epoch);
  auto order = std::make_shared<const std::vector<int64_t>>(sampler->indices());
  const int64_t n = static_cast<int64_t>(order->size()), size = dataset->size();
  EMBER_CHECK(n == sampler->size(), ValueError, "[DataLoader] ", sampler->name(), " returned ", n,
              " indices but its size() is ", sampler->size());
  for (int64_t i : *order)
    EMBER_CHECK(i >= 0 && i < size, IndexError, "[DataLoader] ", sampler->name(), " produced index ", i,
                " for a dataset of ", size, " examples");
  return [ds = dataset, order, n, bs = opts.batch_size, collate = opts.collate, transform = opts.transform, seed = seed,
          epoch, pin = pin_batches()](int64_t k, int64_t worker) -> std::optional<Batch> {
    autograd::NoGradGuard no_grad;
    const int64_t first = k * bs;
    std::span<const int64_t> idx(order->data() + first, static_cast<size_t>(std::min(bs, n - first)));
    try {
      Batch b;
      if (collate) {
        std::vector<Example> examples;
        examples.reserve(idx.size());
        for (int64_t i : idx) examples.push_back(ds->get(i));
        b = collate(examples);
      } else {
        b = ds->get_batch(idx);
      }
      if (transform) {
        Generator gen = batch_generator(seed, epoch, k);
        b = transform(std::move(b), gen);
      }
      return pin ? b.pin_memory() : b;
    } catch (...) {  // the same exception class, with where it happened in front of its message
      rethrow_with_context(std::current_exception(),
                           ember::detail::cat_str("[DataLoader] ", who(worker), ", batch ", k, " of epoch ", epoch,
                                                  " (examples ", describe_indices(idx), "): "));
    }
  };
}

detail::Pass::Fetch DataLoader::Impl::stream_fetch(int64_t epoch, int64_t skip_batches) {
  stream->reset(epoch);
  struct State {
    std::shared_ptr<IterableDataset> ds;
    int64_t to_skip;
  };
  auto st = std::make_shared<State>(State{stream, skip_batches * opts.batch_size});
  return [st, bs = opts.batch_size, drop_last = opts.drop_last, collate = opts.collate, transform = opts.transform,
          seed = seed, epoch, pin = pin_batches()](int64_t k, int64_t worker) -> std::optional<Batch> {
    autograd::NoGradGuard no_grad;
    try {
      for (; st->to_skip > 0; --st->to_skip)  // a resumed pass replays the stream up to its position
        if (!st->ds->next()) return std::nullopt;
      std::vector<Example> examples;
      while (static_cast<int64_t>(examples.size()) < bs) {
        std::optional<Example> e = st->ds->next();
        if (!e) break;
        examples.push_back(std::move(*e));
      }
      if (examples.empty() || (drop_last && static_cast<int64_t>(examples.size()) < bs)) return std::nullopt;
      Batch b = collate ? collate(examples) : default_collate(examples);
      if (transform) {
        Generator gen = batch_generator(seed, epoch, k);
        b = transform(std::move(b), gen);
      }
      return pin ? b.pin_memory() : b;
    } catch (...) {
      rethrow_with_context(std::current_exception(), ember::detail::cat_str("[DataLoader] ", who(worker), ", batch ", k,
                                                                            " of epoch ", epoch, " of the stream: "));
    }
  };
}

std::shared_ptr<detail::Pass> DataLoader::Impl::start() {
  stop_active();
  const int64_t epoch = next_epoch, k0 = skip;
  const int64_t workers = opts.num_workers, capacity = opts.num_workers * opts.prefetch_factor;
  // The position moves once the pass exists: a pass that could not start (no threads) is retried as it was.
  std::shared_ptr<detail::Pass> pass;
  if (dataset) {
    pass = std::make_shared<detail::Pass>(this, map_fetch(epoch), k0, *num_batches(), workers, capacity);
  } else {
    pass = std::make_shared<detail::Pass>(this, stream_fetch(epoch, k0), k0, std::numeric_limits<int64_t>::max(),
                                          std::min<int64_t>(workers, 1), capacity);
  }
  next_epoch = epoch + 1;
  skip = 0;
  cur_epoch = epoch;
  yielded = k0;
  cur_finished = false;
  active = pass;
  return pass;
}

// ---- DataLoader ----

namespace {
void check_options(const DataLoaderOptions& o) {
  EMBER_CHECK(o.batch_size >= 1, ValueError, "[DataLoader] batch_size must be >= 1, got ", o.batch_size);
  EMBER_CHECK(o.num_workers >= 0, ValueError, "[DataLoader] num_workers must be >= 0, got ", o.num_workers);
  EMBER_CHECK(o.prefetch_factor >= 1, ValueError, "[DataLoader] prefetch_factor must be >= 1, got ", o.prefetch_factor);
}

uint64_t resolve_seed(const DataLoaderOptions& o) {
  if (o.seed) return *o.seed;
  return static_cast<uint64_t>(randint(0, std::numeric_limits<int64_t>::max(), {1}, {.dtype = kI64}).item<int64_t>());
}
}  // namespace

DataLoader::DataLoader(DatasetPtr dataset, DataLoaderOptions options) : impl_(std::make_unique<Impl>()) {
  EMBER_CHECK(dataset != nullptr, ValueError, "[DataLoader] needs a dataset");
  check_options(options);
  EMBER_CHECK(!(options.shuffle && options.sampler), ValueError,
              "[DataLoader] sampler and shuffle are mutually exclusive (shuffle inside the sampler)");
  impl_->seed = resolve_seed(options);
  impl_->dataset = std::move(dataset);
  if (options.sampler)
    impl_->sampler = options.sampler;
  else if (options.shuffle)
    impl_->sampler = std::make_shared<RandomSampler>(impl_->dataset->size(), impl_->seed);
  else
    impl_->sampler = std::make_shared<SequentialSampler>(impl_->dataset->size());
  impl_->opts = std::move(options);
}

DataLoader::DataLoader(std::shared_ptr<IterableDataset> dataset, DataLoaderOptions options)
    : impl_(std::make_unique<Impl>()) {
  EMBER_CHECK(dataset != nullptr, ValueError, "[DataLoader] needs a dataset");
  check_options(options);
  EMBER_CHECK(!options.shuffle && !options.sampler, ValueError,
              "[DataLoader] an IterableDataset is read in its own order: shuffle and sampler do not apply");
  impl_->seed = resolve_seed(options);
  impl_->stream = std::move(dataset);
  impl_->opts = std::move(options);
}

DataLoader::~DataLoader() = default;
DataLoader::DataLoader(DataLoader&&) noexcept = default;
DataLoader& DataLoader::operator=(DataLoader&&) noexcept = default;

DataLoader::Iterator DataLoader::begin() {
  EMBER_CHECK(impl_ != nullptr, ValueError, "[DataLoader] used after being moved from");
  return Iterator(impl_->start());
}

int64_t DataLoader::size() const {
  auto n = impl_->num_batches();
  EMBER_CHECK(n.has_value(), ValueError,
              "[DataLoader] size() is unknown: the IterableDataset does not report a size()");
  return *n;
}

int64_t DataLoader::epoch() const {
  return impl_->cur_epoch >= 0 && !impl_->cur_finished ? impl_->cur_epoch : impl_->next_epoch;
}

void DataLoader::set_epoch(int64_t epoch) {
  EMBER_CHECK(epoch >= 0, ValueError, "[DataLoader] epoch must be non-negative, got ", epoch);
  impl_->next_epoch = epoch;
  impl_->skip = 0;
  impl_->cur_epoch = -1;
}

uint64_t DataLoader::seed() const { return impl_->seed; }
const DataLoaderOptions& DataLoader::options() const { return impl_->opts; }
DatasetPtr DataLoader::dataset() const { return impl_->dataset; }
std::shared_ptr<IterableDataset> DataLoader::iterable_dataset() const { return impl_->stream; }
std::shared_ptr<Sampler> DataLoader::sampler() const { return impl_->sampler; }

json DataLoader::state_dict() const {
  const Impl& m = *impl_;
  const bool in_pass = m.cur_epoch >= 0 && !m.cur_finished;
  json s;
  s["epoch"] = in_pass ? m.cur_epoch : m.next_epoch;
  s["batches_yielded"] = in_pass ? m.yielded : m.skip;
  s["seed"] = m.seed;
  s["batch_size"] = m.opts.batch_size;
  s["drop_last"] = m.opts.drop_last;
  auto n = m.dataset_size();
  s["examples_per_epoch"] = n ? json(*n) : json(nullptr);
  s["sampler"] = m.sampler ? m.sampler->state_dict() : json(nullptr);
  return s;
}

void DataLoader::load_state_dict(const json& state) {
  Impl& m = *impl_;
  auto bad = [](const std::string& what) { return ValueError("[DataLoader::load_state_dict] " + what); };
  if (!state.is_object()) throw bad("expected a JSON object, got " + state.dump());
  auto integer = [&](const char* key) -> int64_t {
    if (!state.contains(key)) throw bad(std::string("missing field '") + key + "'");
    const json& v = state.at(key);
    if (!v.is_number_integer()) throw bad(std::string("field '") + key + "' must be an integer, got " + v.dump());
    return v.get<int64_t>();
  };
  const int64_t epoch = integer("epoch"), k = integer("batches_yielded");
  if (epoch < 0 || k < 0) throw bad("epoch and batches_yielded must be non-negative");
  if (state.contains("batch_size") && integer("batch_size") != m.opts.batch_size)
    throw bad("the state was saved with batch_size " + state.at("batch_size").dump() + " but this loader has " +
              std::to_string(m.opts.batch_size));
  if (state.contains("drop_last") && state.at("drop_last") != json(m.opts.drop_last))
    throw bad("the state was saved with drop_last " + state.at("drop_last").dump());
  auto n = m.dataset_size();
  if (state.contains("examples_per_epoch") && !state.at("examples_per_epoch").is_null() && n &&
      state.at("examples_per_epoch") != json(*n))
    throw bad("the state was saved for " + state.at("examples_per_epoch").dump() +
              " examples per epoch but this loader has " + std::to_string(*n));
  if (auto nb = m.num_batches(); nb && k > *nb)
    throw bad("batches_yielded " + std::to_string(k) + " exceeds the " + std::to_string(*nb) + " batches of an epoch");
  uint64_t seed = m.seed;
  if (state.contains("seed")) {
    const json& v = state.at("seed");
    if (!v.is_number_integer()) throw bad("field 'seed' must be an integer, got " + v.dump());
    seed = v.get<uint64_t>();
  }
  if (m.sampler && state.contains("sampler") && !state.at("sampler").is_null())
    m.sampler->load_state_dict(state.at("sampler"));
  m.stop_active();
  m.seed = seed;
  m.next_epoch = epoch;
  m.skip = k;
  m.cur_epoch = -1;
  m.cur_finished = false;
}

// ---- Iterator ----

DataLoader::Iterator::Iterator(std::shared_ptr<detail::Pass> pass) : pass_(std::move(pass)) { pass_->advance(); }
DataLoader::Iterator::Iterator(Iterator&&) noexcept = default;
DataLoader::Iterator& DataLoader::Iterator::operator=(Iterator&&) noexcept = default;
DataLoader::Iterator::~Iterator() = default;

const Batch& DataLoader::Iterator::operator*() const {
  EMBER_CHECK(pass_ != nullptr, ValueError, "[DataLoader] dereferenced an empty iterator");
  return pass_->current();
}

DataLoader::Iterator& DataLoader::Iterator::operator++() {
  if (pass_) pass_->advance();
  return *this;
}

bool DataLoader::Iterator::operator==(std::default_sentinel_t) const { return !pass_ || pass_->done(); }

}  // namespace ember::data
