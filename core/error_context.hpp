// Rethrowing an exception with context in front of its message while keeping its type, so that an error
// crossing a thread (a DataLoader worker's) is still caught as what it was.
#pragma once
#include <exception>
#include <string>

namespace ember {

// Throws an exception of the same kind as `error` whose what() is `context` + the original's what():
// every class of core/error.hpp as itself; the standard exception classes as themselves (runtime_error
// and logic_error families, system_error with its code, ios_base::failure, filesystem_error with its
// paths, bad_alloc); any other std::exception as ember::Error, anything else as ember::Error naming no
// message. The original stays reachable, unchanged, through std::rethrow_if_nested.
[[noreturn]] void rethrow_with_context(std::exception_ptr error, const std::string& context);

}  // namespace ember
