// FlopCounter and FlopScope: thread-local state (the innermost live counter and the open scopes), so
// counting costs one thread-local read per op or layer call when nothing is counted.
#include "core/flop_counter.hpp"

#include <algorithm>
#include <vector>

namespace ember {
namespace {

thread_local FlopCounter* t_innermost = nullptr;
// Keys of the open FlopScopes, outermost first; only pushed while a counter is live.
thread_local std::vector<const void*> t_scopes;

}  // namespace

FlopCounter::FlopCounter() : outer_(t_innermost) { t_innermost = this; }

FlopCounter::~FlopCounter() {
  // Unlink even when counters end out of order (one held in an optional, say).
  for (FlopCounter** link = &t_innermost; *link != nullptr; link = &(*link)->outer_) {
    if (*link == this) {
      *link = outer_;
      break;
    }
  }
}

int64_t FlopCounter::flops_of(const void* key) const {
  auto it = by_scope_.find(key);
  return it == by_scope_.end() ? 0 : it->second;
}

void FlopCounter::reset() {
  total_ = 0;
  by_op_.clear();
  by_scope_.clear();
}

bool FlopCounter::active() { return t_innermost != nullptr; }

void count_flops(const char* op, int64_t flops) {
  for (FlopCounter* c = t_innermost; c != nullptr; c = c->outer_) {
    c->total_ += flops;
    c->by_op_[op] += flops;
    for (const void* key : t_scopes) c->by_scope_[key] += flops;  // scopes are unique (see FlopScope)
  }
}

FlopScope::FlopScope(const void* key) {
  if (t_innermost == nullptr) return;
  // A module re-entered through itself (its own holder around its forward) counts once.
  if (std::find(t_scopes.begin(), t_scopes.end(), key) != t_scopes.end()) return;
  t_scopes.push_back(key);
  pushed_ = true;
}

FlopScope::~FlopScope() {
  if (pushed_) t_scopes.pop_back();
}

}  // namespace ember
