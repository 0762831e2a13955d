// Classification metrics with torchmetrics' names, options and values: Accuracy, Precision, Recall,
// F1Score, ConfusionMatrix (binary and multiclass tasks) and AUROC (binary, multiclass one-vs-rest).
//
// Inputs, as torchmetrics takes them:
//  - binary: preds of any shape, probabilities or logits (a sigmoid is applied when a value lies
//    outside [0, 1]) thresholded at `threshold`, or 0/1 labels; target 0/1 of the same shape.
//  - multiclass: preds [N, C] (or [N, C, d...]) scores, arg-maxed (with top_k > 1, the
//    target counts as predicted when among the top_k best, else the best class does, as torchmetrics), or
//    labels [N] (or [N, d...]); target labels [N] (or [N, d...]) in [0, num_classes).
// Targets equal to `ignore_index` are left out. `average`: "micro" (counts over all classes), "macro"
// (the mean of per-class scores; classes that never occur in preds nor target are left out, as in
// torchmetrics), "weighted" (weighted by each class's support), "none" (the per-class scores).
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "train/metrics/metric.hpp"

namespace ember::metrics {

// Fields in torchmetrics' argument order: `{.task = "multiclass", .num_classes = 10}`.
struct ClassificationOptions {
  std::string task = "binary";                        // "binary" or "multiclass"
  double threshold = 0.5;                             // binary: a probability above it is class 1
  std::optional<int64_t> num_classes = std::nullopt;  // multiclass: required
  std::string average = "micro";                      // multiclass: "micro", "macro", "weighted", "none"
  int64_t top_k = 1;                                  // multiclass: a hit when the target is among the k best
  std::optional<int64_t> ignore_index = std::nullopt;
};
nlohmann::json to_json(const ClassificationOptions& o);
ClassificationOptions classification_options_from_json(const nlohmann::json& j);

// True/false positives/negatives per class (binary: one count each): the state of Accuracy,
// Precision, Recall and F1Score, whose compute() differ only in the formula.
class StatScores : public Metric {
 public:
  explicit StatScores(ClassificationOptions options, const char* metric_name);
  nlohmann::json config() const override { return to_json(options_); }
  const ClassificationOptions& options() const { return options_; }
  Tensor compute() const override;

 protected:
  void update_state(const Tensor& preds, const Tensor& target) override;
  // The score per class (or of the binary task) from f64 counts.
  virtual Tensor score(const Tensor& tp, const Tensor& fp, const Tensor& tn, const Tensor& fn) const = 0;
  // "micro": the score of the summed counts (Accuracy: tp / (tp + fn)).
  virtual Tensor micro(const Tensor& tp, const Tensor& fp, const Tensor& tn, const Tensor& fn) const {
    return score(tp, fp, tn, fn);
  }
  ClassificationOptions options_;
};

class Accuracy : public StatScores {
 public:
  explicit Accuracy(ClassificationOptions options = {}) : StatScores(std::move(options), "Accuracy") {}
  std::string name() const override { return "Accuracy"; }

 protected:
  Tensor score(const Tensor& tp, const Tensor& fp, const Tensor& tn, const Tensor& fn) const override;
  Tensor micro(const Tensor& tp, const Tensor& fp, const Tensor& tn, const Tensor& fn) const override;
};

class Precision : public StatScores {
 public:
  explicit Precision(ClassificationOptions options = {}) : StatScores(std::move(options), "Precision") {}
  std::string name() const override { return "Precision"; }

 protected:
  Tensor score(const Tensor& tp, const Tensor& fp, const Tensor& tn, const Tensor& fn) const override;
};

class Recall : public StatScores {
 public:
  explicit Recall(ClassificationOptions options = {}) : StatScores(std::move(options), "Recall") {}
  std::string name() const override { return "Recall"; }

 protected:
  Tensor score(const Tensor& tp, const Tensor& fp, const Tensor& tn, const Tensor& fn) const override;
};

class F1Score : public StatScores {
 public:
  explicit F1Score(ClassificationOptions options = {}) : StatScores(std::move(options), "F1Score") {}
  std::string name() const override { return "F1Score"; }

 protected:
  Tensor score(const Tensor& tp, const Tensor& fp, const Tensor& tn, const Tensor& fn) const override;
};

struct ConfusionMatrixOptions {
  std::string task = "binary";
  double threshold = 0.5;
  std::optional<int64_t> num_classes = std::nullopt;
  std::string normalize = "none";  // "none" (counts, int64), "true" (rows sum to 1), "pred" (columns), "all"
  std::optional<int64_t> ignore_index = std::nullopt;
};

// Rows are targets, columns predictions ([2, 2] for the binary task).
class ConfusionMatrix : public Metric {
 public:
  explicit ConfusionMatrix(ConfusionMatrixOptions options = {});
  std::string name() const override { return "ConfusionMatrix"; }
  nlohmann::json config() const override;
  Tensor compute() const override;

 protected:
  void update_state(const Tensor& preds, const Tensor& target) override;

 private:
  ConfusionMatrixOptions options_;
  int64_t classes_;
};

struct AUROCOptions {
  std::string task = "binary";
  std::optional<int64_t> num_classes = std::nullopt;
  std::string average = "macro";  // multiclass: "macro", "weighted" (by support) or "none"
  std::optional<int64_t> ignore_index = std::nullopt;
};

// Area under the ROC curve, exact (every distinct score is a threshold; ties count half). It needs the
// predictions themselves: its state is every (score, target) seen, gathered across DDP ranks. A class
// without positive or without negative examples scores 0, as in torchmetrics.
class AUROC : public Metric {
 public:
  explicit AUROC(AUROCOptions options = {});
  std::string name() const override { return "AUROC"; }
  nlohmann::json config() const override;
  Tensor compute() const override;

 protected:
  void update_state(const Tensor& preds, const Tensor& target) override;

 private:
  AUROCOptions options_;
};

}  // namespace ember::metrics
