// LambdaCallback (Lightning's LambdaCallback): a callback made of std::functions, one per hook, for
// quick checks and small additions without a class. Unset hooks do nothing.
#pragma once
#include <exception>
#include <functional>
#include <string>

#include "train/callback.hpp"

namespace ember::train {

// Every hook of Callback once, in its order: X(name, (parameters), (arguments)).
#define EMBER_CALLBACK_HOOKS(X)                                                                               \
  X(setup, (Trainer & t, TrainModule & m, const std::string& stage), (t, m, stage))                           \
  X(teardown, (Trainer & t, TrainModule & m, const std::string& stage), (t, m, stage))                        \
  X(on_fit_start, (Trainer & t, TrainModule & m), (t, m))                                                     \
  X(on_fit_end, (Trainer & t, TrainModule & m), (t, m))                                                       \
  X(on_sanity_check_start, (Trainer & t, TrainModule & m), (t, m))                                            \
  X(on_sanity_check_end, (Trainer & t, TrainModule & m), (t, m))                                              \
  X(on_train_start, (Trainer & t, TrainModule & m), (t, m))                                                   \
  X(on_train_end, (Trainer & t, TrainModule & m), (t, m))                                                     \
  X(on_train_epoch_start, (Trainer & t, TrainModule & m), (t, m))                                             \
  X(on_train_epoch_end, (Trainer & t, TrainModule & m), (t, m))                                               \
  X(on_train_batch_start, (Trainer & t, TrainModule & m, const data::Batch& b, int64_t i), (t, m, b, i))      \
  X(on_train_batch_end, (Trainer & t, TrainModule & m, const Tensor& loss, const data::Batch& b, int64_t i),  \
    (t, m, loss, b, i))                                                                                       \
  X(on_validation_start, (Trainer & t, TrainModule & m), (t, m))                                              \
  X(on_validation_end, (Trainer & t, TrainModule & m), (t, m))                                                \
  X(on_validation_epoch_start, (Trainer & t, TrainModule & m), (t, m))                                        \
  X(on_validation_epoch_end, (Trainer & t, TrainModule & m), (t, m))                                          \
  X(on_validation_batch_start, (Trainer & t, TrainModule & m, const data::Batch& b, int64_t i), (t, m, b, i)) \
  X(on_validation_batch_end, (Trainer & t, TrainModule & m, const data::Batch& b, int64_t i), (t, m, b, i))   \
  X(on_test_start, (Trainer & t, TrainModule & m), (t, m))                                                    \
  X(on_test_end, (Trainer & t, TrainModule & m), (t, m))                                                      \
  X(on_test_epoch_start, (Trainer & t, TrainModule & m), (t, m))                                              \
  X(on_test_epoch_end, (Trainer & t, TrainModule & m), (t, m))                                                \
  X(on_test_batch_start, (Trainer & t, TrainModule & m, const data::Batch& b, int64_t i), (t, m, b, i))       \
  X(on_test_batch_end, (Trainer & t, TrainModule & m, const data::Batch& b, int64_t i), (t, m, b, i))         \
  X(on_predict_start, (Trainer & t, TrainModule & m), (t, m))                                                 \
  X(on_predict_end, (Trainer & t, TrainModule & m), (t, m))                                                   \
  X(on_predict_epoch_start, (Trainer & t, TrainModule & m), (t, m))                                           \
  X(on_predict_epoch_end, (Trainer & t, TrainModule & m), (t, m))                                             \
  X(on_predict_batch_start, (Trainer & t, TrainModule & m, const data::Batch& b, int64_t i), (t, m, b, i))    \
  X(on_predict_batch_end, (Trainer & t, TrainModule & m, const Tensor& out, const data::Batch& b, int64_t i), \
    (t, m, out, b, i))                                                                                        \
  X(on_exception, (Trainer & t, TrainModule & m, const std::exception& e), (t, m, e))                         \
  X(on_before_backward, (Trainer & t, TrainModule & m, const Tensor& loss), (t, m, loss))                     \
  X(on_after_backward, (Trainer & t, TrainModule & m), (t, m))                                                \
  X(on_before_optimizer_step, (Trainer & t, TrainModule & m, optim::Optimizer & o), (t, m, o))                \
  X(on_before_zero_grad, (Trainer & t, TrainModule & m, optim::Optimizer & o), (t, m, o))                     \
  X(on_save_checkpoint, (Trainer & t, TrainModule & m, Checkpoint & c), (t, m, c))                            \
  X(on_load_checkpoint, (Trainer & t, TrainModule & m, const Checkpoint& c), (t, m, c))

// The hooks, named as Callback's: LambdaHooks{.on_train_epoch_end = [](Trainer& t, TrainModule& m) {...}}
// (designated initialisers go in this declaration order, which is Callback's).
struct LambdaHooks {
#define EMBER_LAMBDA_HOOK_MEMBER(name, params, args) std::function<void params> name = nullptr;
  EMBER_CALLBACK_HOOKS(EMBER_LAMBDA_HOOK_MEMBER)
#undef EMBER_LAMBDA_HOOK_MEMBER
};

class LambdaCallback : public Callback {
 public:
  explicit LambdaCallback(LambdaHooks hooks = {}) : hooks_(std::move(hooks)) {}
  // Set or replace hooks after construction: cb.hooks().on_fit_start = ...;
  LambdaHooks& hooks() { return hooks_; }
  const LambdaHooks& hooks() const { return hooks_; }

#define EMBER_LAMBDA_HOOK_OVERRIDE(name, params, args) \
  void name params override {                          \
    if (hooks_.name) hooks_.name args;                 \
  }
  EMBER_CALLBACK_HOOKS(EMBER_LAMBDA_HOOK_OVERRIDE)
#undef EMBER_LAMBDA_HOOK_OVERRIDE

 private:
  LambdaHooks hooks_;
};

}  // namespace ember::train
