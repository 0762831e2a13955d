// rethrow_with_context: the original rebuilt as the same class with a longer message, the original nested.
#include "core/error_context.hpp"

#include <filesystem>
#include <future>
#include <ios>
#include <new>
#include <stdexcept>
#include <system_error>

#include "core/error.hpp"

namespace ember {
namespace {

// A standard class whose constructor cannot take the message as is (system_error appends the code's text,
// filesystem_error its paths): built from the original's parts, reporting the given what().
template <class Base>
class WithMessage : public Base {
 public:
  template <class... Args>
  explicit WithMessage(std::string message, Args&&... args)
      : Base(std::forward<Args>(args)...), message_(std::move(message)) {}
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  std::string message_;
};

template <class E>
[[noreturn]] void again(const std::string& message) {
  std::throw_with_nested(E(message));
}

}  // namespace

void rethrow_with_context(std::exception_ptr error, const std::string& context) {
  try {
    std::rethrow_exception(error);
  }
  // core/error.hpp: each class derives from Error directly, so the order among them does not matter.
  catch (const ShapeError& e) {
    again<ShapeError>(context + e.what());
  } catch (const DTypeError& e) {
    again<DTypeError>(context + e.what());
  } catch (const DeviceError& e) {
    again<DeviceError>(context + e.what());
  } catch (const IndexError& e) {
    again<IndexError>(context + e.what());
  } catch (const ValueError& e) {
    again<ValueError>(context + e.what());
  } catch (const OutOfMemoryError& e) {
    again<OutOfMemoryError>(context + e.what());
  } catch (const FormatError& e) {
    again<FormatError>(context + e.what());
  } catch (const IOError& e) {
    again<IOError>(context + e.what());
  } catch (const AutogradError& e) {
    again<AutogradError>(context + e.what());
  } catch (const DistError& e) {
    again<DistError>(context + e.what());
  } catch (const Error& e) {
    again<Error>(context + e.what());
  }
  // The standard library's: the most derived first.
  catch (const std::filesystem::filesystem_error& e) {
    std::throw_with_nested(
        WithMessage<std::filesystem::filesystem_error>(context + e.what(), e.what(), e.path1(), e.path2(), e.code()));
  } catch (const std::ios_base::failure& e) {
    std::throw_with_nested(WithMessage<std::ios_base::failure>(context + e.what(), e.what(), e.code()));
  } catch (const std::future_error& e) {
    std::throw_with_nested(WithMessage<std::future_error>(context + e.what(), std::future_errc(e.code().value())));
  } catch (const std::system_error& e) {
    std::throw_with_nested(WithMessage<std::system_error>(context + e.what(), e.code()));
  } catch (const std::invalid_argument& e) {
    again<std::invalid_argument>(context + e.what());
  } catch (const std::domain_error& e) {
    again<std::domain_error>(context + e.what());
  } catch (const std::length_error& e) {
    again<std::length_error>(context + e.what());
  } catch (const std::out_of_range& e) {
    again<std::out_of_range>(context + e.what());
  } catch (const std::logic_error& e) {
    again<std::logic_error>(context + e.what());
  } catch (const std::range_error& e) {
    again<std::range_error>(context + e.what());
  } catch (const std::overflow_error& e) {
    again<std::overflow_error>(context + e.what());
  } catch (const std::underflow_error& e) {
    again<std::underflow_error>(context + e.what());
  } catch (const std::runtime_error& e) {
    again<std::runtime_error>(context + e.what());
  } catch (const std::bad_array_new_length& e) {
    std::throw_with_nested(WithMessage<std::bad_array_new_length>(context + e.what()));
  } catch (const std::bad_alloc& e) {
    std::throw_with_nested(WithMessage<std::bad_alloc>(context + e.what()));
  } catch (const std::exception& e) {
    again<Error>(context + e.what());
  } catch (...) {
    again<Error>(context + "an exception that is not a std::exception");
  }
}

}  // namespace ember
