// safetensors reader and writer. The reader parses and validates the whole header before it
// allocates anything, so every allocation is bounded by the input's size; data is read once.
#include "core/io/safetensors.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <functional>
#include <limits>
#include <new>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>
#include <utility>
#include <vector>

#include "core/io/temp_files.hpp"

namespace ember {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; Ember's reader and writer copy raw bytes");

namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the Python package's limit
constexpr const char* kMetadataKey = "__metadata__";
constexpr size_t kMaxDims = 64;  // as NumPy; bounds the work per entry

// ---------------------------------------------------------------- dtype names

struct DTypeName {
  DType dtype;
  const char* name;
};
constexpr DTypeName kDTypeNames[] = {
    {kF32, "F32"}, {kF64, "F64"}, {kF16, "F16"}, {kBF16, "BF16"},
    {kI32, "I32"}, {kI64, "I64"}, {kU8, "U8"},   {kBool, "BOOL"},
};
// Valid safetensors dtypes that Ember has no type for: named in the error instead of "unknown".
constexpr const char* kForeignDTypes[] = {"I8",      "I16",     "U16",     "U32",         "U64",
                                          "F8_E5M2", "F8_E4M3", "F8_E8M0", "F6_E2M3",     "F6_E3M2",
                                          "F4",      "C64",     "C128",    "F8_E4M3FNUZ", "F8_E5M2FNUZ"};

const char* safetensors_name(DType dt) {
  for (const auto& d : kDTypeNames)
    if (d.dtype == dt) return d.name;
  throw_unsupported_dtype(dt, "[save]");
}

// ---------------------------------------------------------------- errors

std::string printable(std::string_view s) {
  // Names come from untrusted input: keep messages printable and short.
  std::string out = "'";
  size_t n = 0;
  for (unsigned char c : s) {
    if (++n > 80) {
      out += "...";
      break;
    }
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out + "'";
}

// A JSON value from the input, cut short for an error message.
std::string brief(const nlohmann::json& v) {
  std::string d = v.dump();
  return d.size() > 60 ? d.substr(0, 60) + "..." : d;
}

template <class... Args>
[[noreturn]] void format_error(const std::string& source, const Args&... parts) {
  throw FormatError(detail::cat_str("[load] ", source, ": ", parts...));
}

std::string os_error(int err) { return std::strerror(err); }

// ---------------------------------------------------------------- header parsing

struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin = 0;
  uint64_t end = 0;
};

struct Header {
  std::vector<Entry> entries;
  Metadata metadata;
};

uint64_t read_u64_le(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// A non-negative integer that fits in int64 (shapes and offsets), else a FormatError.
uint64_t json_index(const json& v, const std::string& source, const std::string& what) {
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    if (u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return u;
    format_error(source, what, " value ", u, " is too large");
  }
  if (v.is_number_integer()) format_error(source, what, " value ", v.get<int64_t>(), " is negative");
  format_error(source, what, " must be a non-negative integer, got ", brief(v));
}

DType parse_dtype(const json& v, const std::string& source, const std::string& name) {
  if (!v.is_string()) format_error(source, "tensor ", printable(name), ": dtype must be a string, got ", brief(v));
  const auto& s = v.get_ref<const std::string&>();
  for (const auto& d : kDTypeNames)
    if (s == d.name) return d.dtype;
  for (const char* f : kForeignDTypes)
    if (s == f)
      format_error(source, "tensor ", printable(name), " has dtype ", s,
                   ", which Ember does not support (supported: F32, F64, F16, BF16, I32, I64, U8, BOOL)");
  format_error(source, "tensor ", printable(name), " has unknown dtype ", printable(s));
}

Entry parse_entry(const std::string& name, const json& v, const std::string& source) {
  const std::string tn = "tensor " + printable(name);
  if (!v.is_object()) format_error(source, tn, ": entry must be a JSON object, got ", v.type_name());
  for (const auto& [key, _] : v.items())
    if (key != "dtype" && key != "shape" && key != "data_offsets")
      format_error(source, tn, ": unexpected field ", printable(key));
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!v.contains(key)) format_error(source, tn, ": missing field '", key, "'");

  Entry e;
  e.name = name;
  e.dtype = parse_dtype(v["dtype"], source, name);

  const json& shape = v["shape"];
  if (!shape.is_array()) format_error(source, tn, ": shape must be an array, got ", brief(shape));
  if (shape.size() > kMaxDims)
    format_error(source, tn, ": shape has ", shape.size(), " dimensions, more than the ", kMaxDims, " supported");
  // The product of the sizes (zeros counted as 1) must fit in int64 even when numel is 0: Ember's
  // contiguous strides are that product, as in PyTorch.
  uint64_t span = 1, numel = 1;
  for (const json& d : shape) {
    uint64_t n = json_index(d, source, tn + " shape entry");
    e.shape.push_back(static_cast<int64_t>(n));
    uint64_t m = std::max<uint64_t>(n, 1);
    if (span > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / m)
      format_error(source, tn, ": shape has too many elements (over 2^63)");
    span *= m;
    numel *= n;
  }
  const uint64_t item = itemsize(e.dtype);
  if (numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / item)
    format_error(source, tn, ": shape ", e.shape, " is too large in bytes");

  const json& off = v["data_offsets"];
  if (!off.is_array() || off.size() != 2)
    format_error(source, tn, ": data_offsets must be an array [begin, end], got ", brief(off));
  e.begin = json_index(off[0], source, tn + " data_offsets begin");
  e.end = json_index(off[1], source, tn + " data_offsets end");
  if (e.end < e.begin) format_error(source, tn, ": data_offsets [", e.begin, ", ", e.end, "] end before they begin");
  if (e.end - e.begin != numel * item)
    format_error(source, tn, ": data_offsets [", e.begin, ", ", e.end, "] span ", e.end - e.begin, " bytes but ",
                 safetensors_name(e.dtype), " shape ", e.shape, " needs ", numel * item);
  return e;
}

// Strict UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF), as Rust's from_utf8.
bool valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size(), i = 0;
  while (i < n) {
    unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    int len;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (n - i < static_cast<size_t>(len)) return false;
    for (int k = 1; k < len; ++k) {
      if ((p[i + k] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3f);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += len;
  }
  return true;
}

// Parses the JSON header, rejecting duplicate keys and nesting deeper than a valid header has
// (root -> entry -> shape), then validates every entry against a data region of data_size bytes.
Header parse_header(std::string_view text, uint64_t data_size, const std::string& source) {
  if (!valid_utf8(text)) format_error(source, "header is not valid UTF-8");
  size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos || text[first] != '{')
    format_error(source, "header must be a JSON object starting with '{'");

  std::vector<std::set<std::string>> keys;  // keys seen in each open object
  auto callback = [&](int depth, json::parse_event_t event, json& parsed) -> bool {
    if (depth > 3) format_error(source, "header JSON nests deeper than a safetensors header can");
    if (event == json::parse_event_t::object_start) {
      keys.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      if (!keys.empty()) keys.pop_back();
    } else if (event == json::parse_event_t::key && !keys.empty()) {
      const auto& k = parsed.get_ref<const std::string&>();
      if (!keys.back().insert(k).second) format_error(source, "header has duplicate key ", printable(k));
    }
    return true;
  };
  json root;
  try {
    root = json::parse(text.begin(), text.end(), callback);
  } catch (const json::exception& e) {
    format_error(source, "header is not valid JSON: ", e.what());
  }
  if (!root.is_object()) format_error(source, "header must be a JSON object, got ", root.type_name());

  Header h;
  for (const auto& [name, value] : root.items()) {
    if (name == kMetadataKey) {
      if (!value.is_object())
        format_error(source, "__metadata__ must be an object of strings, got ", value.type_name());
      for (const auto& [k, v] : value.items()) {
        if (!v.is_string())
          format_error(source, "__metadata__ value for ", printable(k), " must be a string, got ", v.type_name());
        h.metadata.emplace(k, v.get<std::string>());
      }
      continue;
    }
    h.entries.push_back(parse_entry(name, value, source));
  }

  for (const Entry& e : h.entries)
    if (e.end > data_size)
      format_error(source, "tensor ", printable(e.name), ": data_offsets [", e.begin, ", ", e.end, "] run past the ",
                   data_size, "-byte data section");
  // Sorted by position, the tensors must tile the data section exactly: no overlaps, no holes.
  std::vector<const Entry*> order;
  for (const Entry& e : h.entries) order.push_back(&e);
  std::sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t cursor = 0;
  const Entry* prev = nullptr;
  for (const Entry* e : order) {
    if (e->begin < cursor)
      format_error(source, "tensor ", printable(e->name), " (bytes ", e->begin, "..", e->end, ") overlaps tensor ",
                   printable(prev->name), " (bytes ", prev->begin, "..", prev->end, ")");
    if (e->begin > cursor)
      format_error(source, "data section has a hole: bytes ", cursor, "..", e->begin,
                   " belong to no tensor (before tensor ", printable(e->name), ")");
    cursor = e->end;
    prev = e;
  }
  if (cursor != data_size)
    format_error(source, "data section is ", data_size, " bytes but the tensors cover only ", cursor,
                 " (trailing bytes)");
  return h;
}

// Bytes of a stored bool must be 0 or 1 to be a valid C++ bool; any nonzero byte means true.
void normalize_bools(const Tensor& t) {
  if (t.dtype() != kBool) return;
  auto* p = static_cast<unsigned char*>(t.raw_data());
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = p[i] != 0;
}

// Allocates each tensor and lets fill(dst, offset, nbytes) copy its bytes in from the data section.
// Running out of memory names the source and the tensor, not only the bytes the allocator missed.
TensorMap make_tensors(const Header& h, const std::string& source,
                       const std::function<void(void*, uint64_t, size_t)>& fill) {
  TensorMap out;
  for (const Entry& e : h.entries) {
    Tensor t;
    auto oom = [&](const char* why) {
      return OutOfMemoryError(detail::cat_str("[load] ", source, ": out of memory allocating ", e.end - e.begin,
                                              " bytes for tensor ", printable(e.name), " (", safetensors_name(e.dtype),
                                              " ", e.shape, "): ", why));
    };
    try {
      t = make_tensor(e.shape, e.dtype);
    } catch (const OutOfMemoryError& err) {
      throw oom(err.what());
    } catch (const std::bad_alloc& err) {
      throw oom(err.what());
    }
    if (e.end > e.begin) fill(t.raw_data(), e.begin, static_cast<size_t>(e.end - e.begin));
    normalize_bools(t);
    out.emplace(e.name, std::move(t));
  }
  return out;
}

// ---------------------------------------------------------------- writing

struct Item {
  const std::string* name;
  const Tensor* tensor;
  uint64_t nbytes;
};

// Validates the inputs and builds the padded header; items come back in data order.
std::string build_header(const TensorMap& tensors, const Metadata& metadata, std::vector<Item>& items) {
  for (const auto& [name, t] : tensors) {
    EMBER_CHECK(t.defined(), ValueError, "[save] tensor ", printable(name), " is undefined");
    EMBER_CHECK(name != kMetadataKey, ValueError, "[save] '__metadata__' is reserved and cannot name a tensor");
    EMBER_CHECK(valid_utf8(name), ValueError, "[save] tensor name ", printable(name), " is not valid UTF-8");
    safetensors_name(t.dtype());
    items.push_back({&name, &t, t.nbytes()});
  }
  for (const auto& [k, v] : metadata) {
    EMBER_CHECK(valid_utf8(k), ValueError, "[save] metadata key ", printable(k), " is not valid UTF-8");
    EMBER_CHECK(valid_utf8(v), ValueError, "[save] metadata value for ", printable(k), " is not valid UTF-8");
  }
  // As the Python writer: widest dtypes first, then by name, so every tensor stays aligned.
  std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    size_t ia = itemsize(a.tensor->dtype()), ib = itemsize(b.tensor->dtype());
    return ia != ib ? ia > ib : *a.name < *b.name;
  });

  nlohmann::ordered_json root = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    root[kMetadataKey] = std::move(m);
  }
  uint64_t offset = 0;
  for (const Item& it : items) {
    nlohmann::ordered_json shape = nlohmann::ordered_json::array();
    for (int64_t d : it.tensor->shape()) shape.push_back(d);
    root[*it.name] = {{"dtype", safetensors_name(it.tensor->dtype())},
                      {"shape", std::move(shape)},
                      {"data_offsets", {offset, offset + it.nbytes}}};
    offset += it.nbytes;
  }
  std::string header = root.dump();
  header.append((8 - header.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header;
}

// A CPU, contiguous version of t whose bytes can be written as they are.
Tensor dense(const Tensor& t) { return t.to(kCPU).contiguous(); }

// Blocks SIGXFSZ in this thread while a file is written. Past the file-size limit (ulimit -f) the
// signal's default action kills the process with no message; blocked, write() fails with EFBIG and
// the save raises IOError instead. The SIGXFSZ that write left pending is taken back before the old
// mask returns. Per thread, so the process's own disposition and other threads are untouched.
class FileSizeSignalBlock {
 public:
  FileSizeSignalBlock() {
    sigemptyset(&xfsz_);
    sigaddset(&xfsz_, SIGXFSZ);
    pthread_sigmask(SIG_BLOCK, &xfsz_, &old_);
  }
  ~FileSizeSignalBlock() {
    if (sigismember(&old_, SIGXFSZ) == 1) return;  // the caller had it blocked: leave it to them
    if (hit_limit_) {
      timespec now{};
      while (::sigtimedwait(&xfsz_, nullptr, &now) < 0 && errno == EINTR) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  FileSizeSignalBlock(const FileSizeSignalBlock&) = delete;
  FileSizeSignalBlock& operator=(const FileSizeSignalBlock&) = delete;
  void hit_limit() { hit_limit_ = true; }

 private:
  sigset_t xfsz_{}, old_{};
  bool hit_limit_ = false;
};

// The file-size limit, for an EFBIG error.
std::string file_size_limit() {
  struct rlimit r {};
  if (::getrlimit(RLIMIT_FSIZE, &r) != 0 || r.rlim_cur == RLIM_INFINITY) return "";
  return detail::cat_str(" (past the file-size limit RLIMIT_FSIZE of ", static_cast<uint64_t>(r.rlim_cur),
                         " bytes; see ulimit -f)");
}

// The temporary file of an atomic save: removed unless committed.
class TempFile {
 public:
  TempFile(std::string path, std::string target) : path_(std::move(path)), target_(std::move(target)) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) fail("cannot create temporary file " + path_, errno);
  }
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(path_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  void write(const void* data, size_t n) {
    const char* p = static_cast<const char*>(data);
    FileSizeSignalBlock block;
    while (n > 0) {
      ssize_t w = ::write(fd_, p, std::min<size_t>(n, size_t{1} << 30));
      if (w < 0) {
        int err = errno;
        if (err == EINTR) continue;
        if (err == EFBIG) {
          block.hit_limit();
          fail("write failed" + file_size_limit(), err);
        }
        fail("write failed", err);
      }
      p += w;
      n -= static_cast<size_t>(w);
    }
  }
  // fsync, close, rename over the target, fsync the directory so the rename itself is durable.
  void commit() {
    if (::fsync(fd_) != 0) fail("fsync failed", errno);
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail("close failed", errno);
    if (::rename(path_.c_str(), target_.c_str()) != 0) fail("cannot rename " + path_ + " over it", errno);
    committed_ = true;
    if (const int err = fsync_parent_dir(target_)) fail("fsync of its directory failed", err);
  }

 private:
  [[noreturn]] void fail(const std::string& what, int err) {
    throw IOError(detail::cat_str("[save] ", target_, ": ", what, ": ", os_error(err)));
  }
  std::string path_, target_;
  int fd_ = -1;
  bool committed_ = false;
};

// What a path that is not a regular file is, for the error.
const char* file_kind(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO (named pipe)";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  return "of an unknown kind";
}

// An open file to read: closed on scope exit.
struct ReadFile {
  int fd = -1;
  ~ReadFile() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

// ---------------------------------------------------------------- public API

std::string save_to_bytes(const TensorMap& tensors, const Metadata& metadata) {
  std::vector<Item> items;
  std::string out = build_header(tensors, metadata, items);
  uint64_t total = out.size();
  for (const Item& it : items) total += it.nbytes;
  size_t pos = out.size();
  out.resize(static_cast<size_t>(total));
  for (const Item& it : items) {
    if (it.nbytes == 0) continue;
    Tensor c = dense(*it.tensor);
    std::memcpy(out.data() + pos, c.raw_data(), static_cast<size_t>(it.nbytes));
    pos += static_cast<size_t>(it.nbytes);
  }
  return out;
}

void save(const std::string& path, const TensorMap& tensors, const Metadata& metadata) {
  EMBER_CHECK(!path.empty(), IOError, "[save] empty path");
  std::vector<Item> items;
  std::string header = build_header(tensors, metadata, items);
  TempFile tmp(detail::cat_str(path, ".tmp.", ::getpid()), path);
  tmp.write(header.data(), header.size());
  for (const Item& it : items) {
    if (it.nbytes == 0) continue;
    Tensor c = dense(*it.tensor);
    tmp.write(c.raw_data(), static_cast<size_t>(it.nbytes));
  }
  tmp.commit();
}

TensorMap load_from_bytes(const std::string& bytes, Metadata* metadata) {
  const std::string source = "<bytes>";
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const uint64_t size = bytes.size();
  if (size < 8) format_error(source, "input is ", size, " bytes, too short for the 8-byte header length");
  const uint64_t n = read_u64_le(p);
  if (n > kMaxHeaderBytes) format_error(source, "header length ", n, " exceeds the ", kMaxHeaderBytes, "-byte limit");
  if (n > size - 8) format_error(source, "header length ", n, " runs past the end of the ", size, "-byte input");
  Header h = parse_header(std::string_view(bytes.data() + 8, n), size - 8 - n, source);
  const unsigned char* data = p + 8 + n;
  TensorMap out =
      make_tensors(h, source, [&](void* dst, uint64_t off, size_t len) { std::memcpy(dst, data + off, len); });
  if (metadata) *metadata = std::move(h.metadata);
  return out;
}

TensorMap load(const std::string& path, Metadata* metadata) {
  // stat() before open(): opening a FIFO blocks until a writer comes and a device never ends, so only
  // a regular file is opened; O_NONBLOCK and the fstat() after cover a path swapped in between.
  struct stat st {};
  EMBER_CHECK(::stat(path.c_str(), &st) == 0, IOError, "[load] ", path, ": cannot open: ", os_error(errno));
  EMBER_CHECK(S_ISREG(st.st_mode), IOError, "[load] ", path, ": is ", file_kind(st.st_mode), ", not a regular file");
  ReadFile f;
  f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  EMBER_CHECK(f.fd >= 0, IOError, "[load] ", path, ": cannot open: ", os_error(errno));
  EMBER_CHECK(::fstat(f.fd, &st) == 0, IOError, "[load] ", path, ": fstat failed: ", os_error(errno));
  EMBER_CHECK(S_ISREG(st.st_mode), IOError, "[load] ", path, ": is ", file_kind(st.st_mode), ", not a regular file");
  const uint64_t size = static_cast<uint64_t>(st.st_size);

  // Reads exactly len bytes at off; a short read means the file shrank under us.
  auto read_at = [&](void* dst, uint64_t off, size_t len) {
    char* q = static_cast<char*>(dst);
    while (len > 0) {
      ssize_t r = ::pread(f.fd, q, std::min<size_t>(len, size_t{1} << 30), static_cast<off_t>(off));
      if (r < 0) {
        if (errno == EINTR) continue;
        throw IOError(detail::cat_str("[load] ", path, ": read failed: ", os_error(errno)));
      }
      if (r == 0) format_error(path, "unexpected end of file at byte ", off, " (file changed while reading?)");
      q += r;
      off += static_cast<uint64_t>(r);
      len -= static_cast<size_t>(r);
    }
  };

  if (size < 8) format_error(path, "file is ", size, " bytes, too short for the 8-byte header length");
  unsigned char len_bytes[8];
  read_at(len_bytes, 0, 8);
  const uint64_t n = read_u64_le(len_bytes);
  if (n > kMaxHeaderBytes) format_error(path, "header length ", n, " exceeds the ", kMaxHeaderBytes, "-byte limit");
  if (n > size - 8) format_error(path, "header length ", n, " runs past the end of the ", size, "-byte file");
  Header h;
  try {
    std::string text(static_cast<size_t>(n), '\0');
    read_at(text.data(), 8, text.size());
    h = parse_header(text, size - 8 - n, path);
  } catch (const std::bad_alloc&) {
    throw OutOfMemoryError(detail::cat_str("[load] ", path, ": out of memory reading its ", n, "-byte header"));
  }
  const uint64_t base = 8 + n;
  TensorMap out = make_tensors(h, path, [&](void* dst, uint64_t off, size_t len) { read_at(dst, base + off, len); });
  if (metadata) *metadata = std::move(h.metadata);
  return out;
}

}  // namespace ember
