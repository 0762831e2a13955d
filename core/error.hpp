// Ember's exceptions. Messages start with the op in brackets and name the operands' shapes,
// dtypes and devices; user-facing checks use EMBER_CHECK, internal invariants use assert.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace ember {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
class ShapeError : public Error { using Error::Error; };
class DTypeError : public Error { using Error::Error; };
class DeviceError : public Error { using Error::Error; };
class IndexError : public Error { using Error::Error; };
class ValueError : public Error { using Error::Error; };
class OutOfMemoryError : public Error { using Error::Error; };
class FormatError : public Error { using Error::Error; };
class IOError : public Error { using Error::Error; };
class AutogradError : public Error { using Error::Error; };
class DistError : public Error { using Error::Error; };  // a collective or the process group failed

namespace detail {
template <class... Args>
std::string cat_str(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace ember

// EMBER_CHECK(cond, ErrorType, "[op] ", parts...) throws ErrorType with the concatenated message.
#define EMBER_CHECK(cond, ErrType, ...)                              \
  do {                                                               \
    if (!(cond)) [[unlikely]]                                        \
      throw ErrType(::ember::detail::cat_str(__VA_ARGS__));          \
  } while (0)
