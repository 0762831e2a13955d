// safetensors I/O: round trips of every dtype, the exact byte layout, a PyTorch-written fixture, one
// test per validation rule on damaged input, and atomic saves that fail cleanly.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/io/safetensors.hpp"
#include "test_dir.hpp"

using namespace ember;
namespace fs = std::filesystem;

#if defined(__SANITIZE_ADDRESS__)
#define EMBER_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EMBER_TEST_ASAN 1
#endif
#endif

namespace {

// Element i of a test tensor, exactly representable in every dtype (bool alternates).
template <class T>
T value_at(int64_t i) {
  if constexpr (std::is_same_v<T, bool>) {
    return i % 3 == 1;
  } else if constexpr (std::is_same_v<T, uint8_t>) {
    return static_cast<T>((i * 37 + 5) % 256);
  } else if constexpr (std::is_integral_v<T>) {
    return static_cast<T>(i * 1000 - 7);
  } else {
    return static_cast<T>(static_cast<float>(i) * 0.75f - 3.0f);
  }
}

template <class T>
Tensor filled(const Shape& shape) {
  Tensor t = make_tensor(shape, dtype_of<T>());
  T* p = t.data_ptr<T>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = value_at<T>(i);
  return t;
}

// Compares element by element through the raw bytes of a contiguous loaded tensor.
template <class T>
bool same_values(const Tensor& got, const std::vector<T>& want) {
  if (got.numel() != static_cast<int64_t>(want.size())) return false;
  if (got.numel() > 0 && !got.is_contiguous()) return false;
  const auto* p = static_cast<const unsigned char*>(got.raw_data());
  for (size_t i = 0; i < want.size(); ++i) {
    T w = want[i];  // vector<bool> hands out proxies: copy each element out
    if (std::memcmp(p + i * sizeof(T), &w, sizeof(T)) != 0) return false;
  }
  return true;
}

template <class T>
std::vector<T> values(int64_t n) {
  std::vector<T> v;
  for (int64_t i = 0; i < n; ++i) v.push_back(value_at<T>(i));
  return v;
}

std::string u64_le(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return s;
}

// A file image: the header text (padded to 8 bytes with spaces) and data bytes.
std::string image(std::string header, const std::string& data) {
  header.append((8 - header.size() % 8) % 8, ' ');
  return u64_le(header.size()) + header + data;
}

// One f32 tensor "x" of shape [2] at [0, 8] in an 8-byte data section, with `entry` replacing it.
std::string one_entry(const std::string& entry, size_t data_bytes = 8) {
  return image("{\"x\":" + entry + "}", std::string(data_bytes, '\0'));
}

std::string error_of(const std::string& bytes) {
  try {
    load_from_bytes(bytes);
  } catch (const FormatError& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("wrong exception type: ") + e.what();
  }
  return "no error";
}

// A damaged input must raise FormatError "[load] ..." whose message contains `needle`.
void check_rejects(const std::string& bytes, const std::string& needle) {
  std::string msg = error_of(bytes);
  INFO("message: ", msg, "  wanted: ", needle);
  CHECK(msg.rfind("[load] ", 0) == 0);
  CHECK(msg.find(needle) != std::string::npos);
}

std::string tensor_name(size_t k) {
  std::string s = "t";  // appended, not "t" + ...: GCC 12 gives a false -Wrestrict on that
  s += std::to_string(k);
  return s;
}

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("ember_test_io_" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::permissions(path, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void write_all(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f << bytes;
}

// Files in dir other than the given ones (leftover temporaries).
int stray_files(const fs::path& dir, const std::vector<std::string>& expected) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir))
    if (std::find(expected.begin(), expected.end(), e.path().filename().string()) == expected.end()) ++n;
  return n;
}

// Runs fn in a forked child (for process-wide limits and calls that might block or kill) and returns
// its wait status and the string fn returned; alarm() turns a hang into a failed test. No doctest
// checks run in the child: it reports through the string.
struct ChildResult {
  int status = 0;
  std::string out;
};
ChildResult in_child(const std::function<std::string()>& fn, unsigned timeout_s = 20) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    ::alarm(timeout_s);
    std::string msg;
    try {
      msg = fn();
    } catch (const std::exception& e) {
      msg = std::string("unexpected exception: ") + e.what();
    }
    for (size_t done = 0; done < msg.size();) {
      ssize_t w = ::write(fds[1], msg.data() + done, msg.size() - done);
      if (w <= 0) break;
      done += static_cast<size_t>(w);
    }
    ::_exit(0);
  }
  ::close(fds[1]);
  ChildResult r;
  char buf[512];
  for (;;) {
    ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    r.out.append(buf, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  ::waitpid(pid, &r.status, 0);
  return r;
}

bool exited_cleanly(const ChildResult& r) {
  if (WIFSIGNALED(r.status))
    MESSAGE("child killed by signal " << WTERMSIG(r.status) << " (" << strsignal(WTERMSIG(r.status)) << ")");
  return WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0;
}

}  // namespace

TEST_CASE_TEMPLATE("safetensors round trip of every dtype and shape", T, float, double, half, bfloat16, int32_t,
                   int64_t, uint8_t, bool) {
  const std::vector<Shape> shapes = {{2, 3}, {}, {0}, {3, 0, 2}, {1, 1, 5}, {7}};
  TensorMap m;
  for (size_t k = 0; k < shapes.size(); ++k) m[tensor_name(k)] = filled<T>(shapes[k]);
  TempDir dir;
  for (int via_file = 0; via_file < 2; ++via_file) {
    TensorMap back;
    if (via_file) {
      save(dir.file("a.safetensors"), m);
      back = load(dir.file("a.safetensors"));
    } else {
      back = load_from_bytes(save_to_bytes(m));
    }
    REQUIRE(back.size() == shapes.size());
    for (size_t k = 0; k < shapes.size(); ++k) {
      const Tensor& t = back.at(tensor_name(k));
      CAPTURE(shapes[k]);
      CHECK(t.dtype() == dtype_of<T>());
      CHECK(t.shape() == shapes[k]);
      CHECK(same_values<T>(t, values<T>(shape_numel(shapes[k]))));
    }
  }
}

TEST_CASE("safetensors writes non-contiguous tensors as their logical values") {
  Tensor base = filled<float>({2, 3});  // base[r][c] = value_at(3r + c)
  Tensor col = filled<int64_t>({4, 3});
  TensorMap m{
      {"transposed", base.transpose(0, 1)},              // [3, 2]: t[r][c] = base[c][r]
      {"stepped", col.slice(0, 0, 4, 2)},                // rows 0 and 2
      {"column", col.select(1, 2)},                      // col[:, 2], stride 3, offset 2
      {"expanded", filled<double>({3}).expand({2, 3})},  // stride 0
  };
  TensorMap back = load_from_bytes(save_to_bytes(m));
  std::vector<float> tr;
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 2; ++c) tr.push_back(value_at<float>(3 * c + r));
  CHECK(back.at("transposed").shape() == Shape{3, 2});
  CHECK(same_values<float>(back.at("transposed"), tr));
  std::vector<int64_t> st;
  for (int r : {0, 2})
    for (int c = 0; c < 3; ++c) st.push_back(value_at<int64_t>(3 * r + c));
  CHECK(same_values<int64_t>(back.at("stepped"), st));
  std::vector<int64_t> cl;
  for (int r = 0; r < 4; ++r) cl.push_back(value_at<int64_t>(3 * r + 2));
  CHECK(back.at("column").shape() == Shape{4});
  CHECK(same_values<int64_t>(back.at("column"), cl));
  std::vector<double> ex;
  for (int r = 0; r < 2; ++r)
    for (int c = 0; c < 3; ++c) ex.push_back(value_at<double>(c));
  CHECK(same_values<double>(back.at("expanded"), ex));
}

TEST_CASE("safetensors file round trip of a multi-megabyte tensor") {
  const int64_t n = int64_t{1} << 20;
  Tensor big = make_tensor({n}, kI32);
  for (int64_t i = 0; i < n; ++i) big.data_ptr<int32_t>()[i] = static_cast<int32_t>(i * 2654435761u);
  TempDir dir;
  save(dir.file("big.safetensors"), {{"big", big}, {"tail", filled<half>({3})}});
  TensorMap back = load(dir.file("big.safetensors"));
  std::vector<int32_t> want;
  for (int64_t i = 0; i < n; ++i) want.push_back(static_cast<int32_t>(i * 2654435761u));
  CHECK(same_values<int32_t>(back.at("big"), want));
  CHECK(same_values<half>(back.at("tail"), values<half>(3)));
}

TEST_CASE("safetensors metadata round trip") {
  Metadata meta{{"epoch", "3"}, {"json", "{\"a\": [1, 2]}"}, {"unicode", "gr\xc3\xbc\xc3\x9f"}, {"", "empty key"}};
  TempDir dir;
  save(dir.file("m.safetensors"), {{"w", filled<float>({2})}}, meta);
  Metadata got{{"stale", "entry"}};
  TensorMap back = load(dir.file("m.safetensors"), &got);
  CHECK(got == meta);
  CHECK(back.size() == 1);
  // No metadata and no tensors are valid too.
  Metadata none{{"stale", "entry"}};
  CHECK(load_from_bytes(save_to_bytes({}), &none).empty());
  CHECK(none.empty());
}

TEST_CASE("safetensors byte layout matches the format") {
  Tensor a = filled<half>({3});
  Tensor b = filled<double>({2});
  Tensor c = filled<int32_t>({1});
  std::string bytes = save_to_bytes({{"a", a}, {"b", b}, {"c", c}}, {{"k", "v"}});
  REQUIRE(bytes.size() >= 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  CHECK(n % 8 == 0);
  REQUIRE(bytes.size() == 8 + n + 6 + 16 + 4);
  std::string header = bytes.substr(8, n);
  CHECK(header.find_last_not_of(' ') + 1 <= header.size());
  auto j = nlohmann::json::parse(header);
  // Widest dtype first, as the Python writer lays them out: b (8 bytes), c (4), a (2).
  CHECK(j["b"]["dtype"] == "F64");
  CHECK(j["b"]["data_offsets"] == nlohmann::json::array({0, 16}));
  CHECK(j["c"]["dtype"] == "I32");
  CHECK(j["c"]["data_offsets"] == nlohmann::json::array({16, 20}));
  CHECK(j["a"]["dtype"] == "F16");
  CHECK(j["a"]["shape"] == nlohmann::json::array({3}));
  CHECK(j["a"]["data_offsets"] == nlohmann::json::array({20, 26}));
  CHECK(j["__metadata__"] == nlohmann::json::object({{"k", "v"}}));
  const char* data = bytes.data() + 8 + n;
  CHECK(std::memcmp(data, b.raw_data(), 16) == 0);
  CHECK(std::memcmp(data + 16, c.raw_data(), 4) == 0);
  CHECK(std::memcmp(data + 20, a.raw_data(), 6) == 0);
  // Little-endian: 1.0 as f32 is 00 00 80 3f.
  std::string one = save_to_bytes({{"x", filled<float>({}).fill_(1.0)}});
  CHECK(one.substr(one.size() - 4) == std::string("\x00\x00\x80\x3f", 4));
}

TEST_CASE("safetensors reads a file written by PyTorch") {
  Metadata meta;
  TensorMap m = load(std::string(EMBER_TEST_DIR) + "/reference/io.safetensors", &meta);
  CHECK(meta == Metadata{{"format", "pt"}, {"source", "fixtures_io.py"}});
  // fixtures_io.py stores arange(n) in each dtype, shaped as named below.
  auto check_arange = [&]<class T>(const std::string& name, const Shape& shape) {
    CAPTURE(name);
    REQUIRE(m.count(name) == 1);
    const Tensor& t = m.at(name);
    CHECK(t.dtype() == dtype_of<T>());
    CHECK(t.shape() == shape);
    std::vector<T> want;
    for (int64_t i = 0; i < shape_numel(shape); ++i) want.push_back(static_cast<T>(static_cast<float>(i)));
    CHECK(same_values<T>(t, want));
  };
  check_arange.operator()<float>("f32", {2, 3});
  check_arange.operator()<double>("f64", {4});
  check_arange.operator()<half>("f16", {3, 1});
  check_arange.operator()<bfloat16>("bf16", {2, 2});
  check_arange.operator()<int32_t>("i32", {5});
  check_arange.operator()<int64_t>("i64", {2, 1, 2});
  check_arange.operator()<uint8_t>("u8", {3});
  check_arange.operator()<float>("scalar", {});
  check_arange.operator()<float>("empty", {0, 4});
  REQUIRE(m.count("bool") == 1);
  CHECK(same_values<bool>(m.at("bool"), std::vector<bool>{true, false, true}));
  CHECK(m.at("bool").to_vector<bool>() == std::vector<bool>{true, false, true});
  CHECK(m.size() == 10);
}

TEST_CASE("safetensors rejects truncated and oversized headers") {
  check_rejects("", "too short");
  check_rejects(std::string(7, '\0'), "too short");
  check_rejects(u64_le(100) + "{}", "runs past the end");
  check_rejects(u64_le(~uint64_t{0}) + "{}", "exceeds");
  check_rejects(u64_le(100'000'008) + "{}      ", "exceeds");
  // A header of length 0 is empty, not JSON.
  check_rejects(u64_le(0), "JSON object");
}

TEST_CASE("safetensors rejects headers that are not UTF-8 JSON objects") {
  check_rejects(image("{\"x\xff\":1}", ""), "UTF-8");
  check_rejects(image("{\"\xc0\x80\":1}", ""), "UTF-8");  // overlong encoding
  check_rejects(image("{\"x\": ", ""), "not valid JSON");
  check_rejects(image("{} {}", ""), "not valid JSON");
  check_rejects(image("[1, 2]", ""), "JSON object");
  check_rejects(image("\"str\"", ""), "JSON object");
  check_rejects(image("{\"x\": 5}", ""), "must be a JSON object");
  check_rejects(image("{\"x\": [1]}", ""), "must be a JSON object");
  check_rejects(image("{\"x\": {\"shape\": [[[[1]]]]}}", ""), "nests deeper");
}

TEST_CASE("safetensors rejects unknown and unsupported dtypes by name") {
  check_rejects(one_entry(R"({"dtype":"Q7","shape":[2],"data_offsets":[0,8]})"), "unknown dtype 'Q7'");
  for (const char* dt : {"I8", "I16", "U16", "U32", "U64", "F8_E4M3", "F8_E5M2"}) {
    CAPTURE(dt);
    check_rejects(one_entry(std::string(R"({"dtype":")") + dt + R"(","shape":[8],"data_offsets":[0,8]})"),
                  std::string("dtype ") + dt + ", which Ember does not support");
  }
  check_rejects(one_entry(R"({"dtype":4,"shape":[2],"data_offsets":[0,8]})"), "dtype must be a string");
  check_rejects(one_entry(R"({"dtype":"f32","shape":[2],"data_offsets":[0,8]})"), "unknown dtype");
}

TEST_CASE("safetensors rejects bad shapes") {
  check_rejects(one_entry(R"({"dtype":"F32","shape":[-2],"data_offsets":[0,8]})"), "negative");
  check_rejects(one_entry(R"({"dtype":"F32","shape":[2.0],"data_offsets":[0,8]})"), "non-negative integer");
  check_rejects(one_entry(R"({"dtype":"F32","shape":["2"],"data_offsets":[0,8]})"), "non-negative integer");
  check_rejects(one_entry(R"({"dtype":"F32","shape":2,"data_offsets":[0,8]})"), "shape must be an array");
  std::string dims65 = "[2";
  for (int i = 1; i < 65; ++i) dims65 += ",1";
  check_rejects(one_entry(R"({"dtype":"F32","shape":)" + dims65 + R"(],"data_offsets":[0,8]})"), "65 dimensions");
  check_rejects(one_entry(R"({"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,8]})"), "too large");
  check_rejects(one_entry(R"({"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]})"),
                "too many elements");
  // Even with a zero size the other sizes must multiply within int64 (they make the strides).
  check_rejects(one_entry(R"({"dtype":"F32","shape":[0,4294967296,4294967296],"data_offsets":[0,0]})", 0),
                "too many elements");
  check_rejects(one_entry(R"({"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,8]})"),
                "too large in bytes");
  // A zero dimension makes the product 0 even beside huge sizes: valid, no allocation.
  TensorMap ok =
      load_from_bytes(one_entry(R"({"dtype":"F32","shape":[0,9223372036854775807],"data_offsets":[0,0]})", 0));
  CHECK(ok.at("x").numel() == 0);
}

TEST_CASE("safetensors rejects bad data offsets") {
  check_rejects(one_entry(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})", 4), "run past");
  check_rejects(one_entry(R"({"dtype":"F32","shape":[2],"data_offsets":[0,12]})", 12), "needs 8");
  check_rejects(one_entry(R"({"dtype":"F32","shape":[2],"data_offsets":[8,0]})"), "end before");
  check_rejects(one_entry(R"({"dtype":"F32","shape":[2],"data_offsets":[0]})"), "[begin, end]");
  check_rejects(one_entry(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8,16]})"), "[begin, end]");
  check_rejects(one_entry(R"({"dtype":"F32","shape":[2],"data_offsets":[-1,8]})"), "negative");
  check_rejects(one_entry(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8.5]})"), "non-negative integer");
  check_rejects(one_entry(R"({"dtype":"F32","shape":[2],"data_offsets":[4,12]})", 12), "hole");
  check_rejects(one_entry(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})", 9), "trailing");
  check_rejects(one_entry(R"({"dtype":"F32","shape":[2],"data_offsets":[0,18446744073709551615]})"), "too large");
  const std::string two = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                          R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
  check_rejects(image(two, std::string(12, '\0')), "overlaps");
  const std::string gap = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                          R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})";
  check_rejects(image(gap, std::string(12, '\0')), "hole");
  // Out of order in the header is fine: only the layout in the data section matters.
  const std::string swapped = R"({"a":{"dtype":"I32","shape":[1],"data_offsets":[4,8]},)"
                              R"("b":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}})";
  TensorMap m = load_from_bytes(image(swapped, std::string("\x01\0\0\0\x02\0\0\0", 8)));
  CHECK(m.at("a").item<int32_t>() == 2);
  CHECK(m.at("b").item<int32_t>() == 1);
}

TEST_CASE("safetensors rejects duplicate, missing and unexpected keys") {
  const std::string dup = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                          R"("x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  check_rejects(image(dup, std::string(8, '\0')), "duplicate key 'x'");
  check_rejects(one_entry(R"({"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]})"),
                "duplicate key 'dtype'");
  check_rejects(one_entry(R"({"dtype":"F32","data_offsets":[0,8]})"), "missing field 'shape'");
  check_rejects(one_entry(R"({"dtype":"F32","shape":[2]})"), "missing field 'data_offsets'");
  check_rejects(one_entry(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":1})"), "unexpected field");
}

TEST_CASE("safetensors rejects malformed metadata") {
  const std::string entry = R"("x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  check_rejects(image(R"({"__metadata__":{"k":1},)" + entry + "}", std::string(8, '\0')), "must be a string");
  check_rejects(image(R"({"__metadata__":{"k":null},)" + entry + "}", std::string(8, '\0')), "must be a string");
  check_rejects(image(R"({"__metadata__":["k"],)" + entry + "}", std::string(8, '\0')), "object of strings");
  check_rejects(image(R"({"__metadata__":{"k":"a","k":"b"},)" + entry + "}", std::string(8, '\0')),
                "duplicate key 'k'");
  Metadata meta;
  load_from_bytes(image(R"({"__metadata__":{"k":"v\u00e9"},)" + entry + "}", std::string(8, '\0')), &meta);
  CHECK(meta == Metadata{{"k", "v\xc3\xa9"}});
}

TEST_CASE("safetensors load normalises bool bytes and names the file in errors") {
  TensorMap m = load_from_bytes(
      image(R"({"b":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}})", std::string("\x00\x02\x01", 3)));
  CHECK(m.at("b").to_vector<uint8_t>() == std::vector<uint8_t>{0, 1, 1});

  TempDir dir;
  const std::string bad = dir.file("damaged.safetensors");
  std::string good = save_to_bytes({{"w", filled<float>({4})}});
  write_all(bad, good.substr(0, good.size() - 1));  // truncated data section
  try {
    load(bad);
    FAIL("no error");
  } catch (const FormatError& e) {
    std::string msg = e.what();
    CHECK(msg.rfind("[load] " + bad + ": ", 0) == 0);
    CHECK(msg.find("run past") != std::string::npos);
  }
  write_all(bad, "abc");
  CHECK_THROWS_AS(load(bad), FormatError);
  CHECK_THROWS_WITH_AS(load(dir.file("missing.safetensors")), doctest::Contains("missing.safetensors"), IOError);
  CHECK_THROWS_WITH_AS(load(dir.path.string()), doctest::Contains("not a regular file"), IOError);
}

TEST_CASE("safetensors save rejects invalid names and tensors") {
  CHECK_THROWS_AS(save_to_bytes({{"__metadata__", filled<float>({1})}}), ValueError);
  CHECK_THROWS_AS(save_to_bytes({{"bad\xff", filled<float>({1})}}), ValueError);
  CHECK_THROWS_AS(save_to_bytes({{"u", Tensor()}}), ValueError);
  CHECK_THROWS_AS(save_to_bytes({{"ok", filled<float>({1})}}, {{"k", "\xc3"}}), ValueError);
}

TEST_CASE("safetensors save is atomic and leaves no temporary file") {
  TempDir dir;
  const std::string path = dir.file("ckpt.safetensors");
  save(path, {{"w", filled<float>({3})}});
  save(path, {{"w", filled<double>({5})}});  // replaces
  CHECK(load(path).at("w").dtype() == kF64);
  CHECK(stray_files(dir.path, {"ckpt.safetensors"}) == 0);

  SUBCASE("missing directory") {
    const std::string missing = dir.file("no/such/dir/x.safetensors");
    try {
      save(missing, {{"w", filled<float>({3})}});
      FAIL("no error");
    } catch (const IOError& e) {
      std::string msg = e.what();
      CHECK(msg.rfind("[save] " + missing, 0) == 0);
      CHECK(msg.find(std::strerror(ENOENT)) != std::string::npos);
    }
  }
  SUBCASE("target is a directory: rename fails, temp removed") {
    fs::create_directories(dir.path / "sub" / "keep");
    CHECK_THROWS_AS(save(dir.file("sub"), {{"w", filled<float>({3})}}), IOError);
    CHECK(fs::is_directory(dir.path / "sub" / "keep"));
    CHECK(stray_files(dir.path, {"ckpt.safetensors", "sub"}) == 0);
  }
  SUBCASE("disk full mid-write keeps the old file") {
    const std::string before = read_all(path);
    // RLIMIT_FSIZE makes write() fail with EFBIG, as a full disk fails it with ENOSPC.
    struct rlimit old_limit {};
    getrlimit(RLIMIT_FSIZE, &old_limit);
    auto old_handler = signal(SIGXFSZ, SIG_IGN);
    struct rlimit small = old_limit;
    small.rlim_cur = 4096;
    REQUIRE(setrlimit(RLIMIT_FSIZE, &small) == 0);
    bool threw = false;
    try {
      save(path, {{"big", filled<float>({10000})}});
    } catch (const IOError& e) {
      threw = std::string(e.what()).rfind("[save] " + path, 0) == 0;
    }
    setrlimit(RLIMIT_FSIZE, &old_limit);
    signal(SIGXFSZ, old_handler);
    CHECK(threw);
    CHECK(read_all(path) == before);
    CHECK(stray_files(dir.path, {"ckpt.safetensors"}) == 0);
  }
  SUBCASE("read-only directory") {
    if (::geteuid() == 0) {
      MESSAGE("running as root: directory permissions do not apply, skipped");
    } else {
      fs::permissions(dir.path, fs::perms::owner_read | fs::perms::owner_exec);
      CHECK_THROWS_WITH_AS(save(path, {{"w", filled<float>({3})}}), doctest::Contains(std::strerror(EACCES)), IOError);
      fs::permissions(dir.path, fs::perms::owner_all);
      CHECK(load(path).at("w").dtype() == kF64);
      CHECK(stray_files(dir.path, {"ckpt.safetensors"}) == 0);
    }
  }
}

TEST_CASE("safetensors load refuses FIFOs, devices and directories without opening them") {
  TempDir dir;
  const std::string fifo = dir.file("pipe.safetensors");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  // Opening a FIFO for reading blocks until a writer comes: in a child, so a hang fails the test.
  ChildResult r = in_child(
      [&] {
        try {
          load(fifo);
          return std::string("no error");
        } catch (const IOError& e) {
          return std::string(e.what());
        }
      },
      10);
  REQUIRE(exited_cleanly(r));
  INFO(r.out);
  CHECK(r.out == "[load] " + fifo + ": is a FIFO (named pipe), not a regular file");
  CHECK_THROWS_WITH_AS(load("/dev/zero"), "[load] /dev/zero: is a character device, not a regular file", IOError);
  CHECK_THROWS_WITH_AS(load(dir.path.string()), doctest::Contains(": is a directory, not a regular file"), IOError);
  CHECK_THROWS_WITH_AS(load(dir.file("missing.safetensors")), doctest::Contains(std::strerror(ENOENT)), IOError);
}

TEST_CASE("safetensors load out of memory names the file, the tensor and the size") {
#if defined(EMBER_TEST_ASAN)
  MESSAGE("AddressSanitizer reserves terabytes of address space: RLIMIT_AS cannot apply, skipped");
  return;
#endif
  TempDir dir;
  const std::string path = dir.file("huge.safetensors");
  const uint64_t nbytes = uint64_t{1} << 30;  // 1 GiB of F32 data: a sparse file, no disk used
  const std::string head =
      image(R"({"w":{"dtype":"F32","shape":[268435456],"data_offsets":[0,1073741824]}})", std::string());
  write_all(path, head);
  fs::resize_file(path, head.size() + nbytes);
  ChildResult r = in_child([&] {
    // Room for what the process maps now plus 64 MiB: the header fits, the tensor cannot.
    long pages = 0;
    std::ifstream("/proc/self/statm") >> pages;
    struct rlimit lim {};
    ::getrlimit(RLIMIT_AS, &lim);
    lim.rlim_cur = static_cast<rlim_t>(pages) * static_cast<rlim_t>(::sysconf(_SC_PAGESIZE)) + (rlim_t{64} << 20);
    if (pages <= 0 || ::setrlimit(RLIMIT_AS, &lim) != 0) return std::string("cannot set RLIMIT_AS");
    try {
      load(path);
      return std::string("no error");
    } catch (const OutOfMemoryError& e) {
      return std::string(e.what());
    }
  });
  REQUIRE(exited_cleanly(r));
  INFO(r.out);
  CHECK(r.out.rfind("[load] " + path + ": out of memory allocating 1073741824 bytes for tensor 'w' (F32 [268435456]): ",
                    0) == 0);
}

TEST_CASE("safetensors save past the file-size limit raises IOError instead of dying of SIGXFSZ") {
  TempDir dir;
  const std::string path = dir.file("ckpt.safetensors");
  save(path, {{"w", filled<float>({3})}});
  const std::string before = read_all(path);
  ChildResult r = in_child([&] {
    ::signal(SIGXFSZ, SIG_DFL);  // the default action, as in a fresh process: death without a word
    struct rlimit lim {};
    ::getrlimit(RLIMIT_FSIZE, &lim);
    lim.rlim_cur = 4096;
    if (::setrlimit(RLIMIT_FSIZE, &lim) != 0) return std::string("cannot set RLIMIT_FSIZE");
    std::string msg = "no error";
    try {
      save(path, {{"big", filled<float>({10000})}});
    } catch (const IOError& e) {
      msg = e.what();
    }
    // The thread's signal mask is back as it was and no SIGXFSZ waits to be delivered.
    sigset_t mask, pending;
    pthread_sigmask(SIG_BLOCK, nullptr, &mask);
    sigpending(&pending);
    if (sigismember(&mask, SIGXFSZ) == 1) msg += " | SIGXFSZ left blocked";
    if (sigismember(&pending, SIGXFSZ) == 1) msg += " | SIGXFSZ left pending";
    return msg;
  });
  REQUIRE(exited_cleanly(r));
  INFO(r.out);
  CHECK(r.out.rfind("[save] " + path +
                        ": write failed (past the file-size limit RLIMIT_FSIZE of 4096 bytes; see "
                        "ulimit -f): ",
                    0) == 0);
  CHECK(r.out.find(std::strerror(EFBIG)) != std::string::npos);
  CHECK(r.out.find(" | ") == std::string::npos);
  CHECK(read_all(path) == before);                          // the old file is intact
  CHECK(stray_files(dir.path, {"ckpt.safetensors"}) == 0);  // and the temporary file is gone
}
