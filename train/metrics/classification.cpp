// Classification metrics: torchmetrics' input formatting (sigmoid/threshold, argmax/top-k, ignore_index),
// per-class stat scores as tensor ops on the inputs' device, and their reductions (micro, macro,
// weighted, none); the confusion matrix; exact AUROC from the gathered scores on the host.
#include "train/metrics/classification.hpp"

#include <algorithm>
#include <numeric>
#include <vector>

#include "core/error.hpp"
#include "core/ops/creation.hpp"
#include "core/ops/elementwise.hpp"
#include "core/ops/index.hpp"
#include "core/ops/linalg.hpp"
#include "core/ops/reduce.hpp"

namespace ember::metrics {
namespace {

Tensor safe_div(const Tensor& a, const Tensor& b) { return where(b == 0.0, Scalar(0.0), a / b); }

bool any_true(const Tensor& t) { return t.numel() > 0 && t.any().item<bool>(); }

void check_task(const std::string& metric, const std::string& task, std::optional<int64_t> num_classes) {
  EMBER_CHECK(task == "binary" || task == "multiclass", ValueError, "[", metric,
              "] task must be \"binary\" or \"multiclass\" (multilabel is not supported), got \"", task, "\"");
  if (task == "multiclass")
    EMBER_CHECK(num_classes && *num_classes >= 2, ValueError, "[", metric,
                "] the multiclass task needs num_classes >= 2, got ",
                num_classes ? std::to_string(*num_classes) : std::string("none"));
}

void check_target_dtype(const std::string& metric, const Tensor& target) {
  EMBER_CHECK(target.defined(), ValueError, "[", metric, ".update] needs a target");
  EMBER_CHECK(!target.is_floating_point(), DTypeError, "[", metric,
              ".update] the target must hold integer labels, got ", describe(target));
}

// Binary inputs flattened to bool predictions, targets and the mask of targets that count.
std::tuple<Tensor, Tensor, Tensor> binary_format(const std::string& metric, const Tensor& preds, const Tensor& target,
                                                 double threshold, std::optional<int64_t> ignore_index) {
  check_target_dtype(metric, target);
  EMBER_CHECK(preds.shape() == target.shape(), ShapeError, "[", metric, ".update] preds ", describe(preds),
              " and target ", describe(target), " must have the same shape in the binary task");
  Tensor t = target.reshape({-1}).to(kI64);
  Tensor v = ignore_index ? t != *ignore_index : ones({t.numel()}, {.dtype = kBool, .device = t.device()});
  EMBER_CHECK(!any_true(v & (t != 0) & (t != 1)), ValueError, "[", metric,
              ".update] the binary task's target holds values other than 0 and 1",
              ignore_index ? " (and ignore_index)" : "");
  Tensor p = preds.reshape({-1});
  if (p.is_floating_point()) {
    if (p.numel() > 0 && !((p >= 0.0) & (p <= 1.0)).all().item<bool>()) p = p.sigmoid();  // logits
    p = p > threshold;
  } else {
    p = p.to(kI64);
    EMBER_CHECK(!any_true((p != 0) & (p != 1)), ValueError, "[", metric,
                ".update] integer predictions of the binary task must be 0 or 1");
    p = p == 1;
  }
  return {p, t == 1, v};
}

// Multiclass scores [N, C, d...] as rows [M, C] and targets [N, d...] as [M].
std::pair<Tensor, Tensor> multiclass_rows(const std::string& metric, const Tensor& preds, const Tensor& target,
                                          int64_t classes) {
  check_target_dtype(metric, target);
  Tensor p = preds;
  if (p.is_floating_point()) {
    bool ok = p.dim() == target.dim() + 1 && p.dim() >= 2 && p.size(1) == classes;
    for (int64_t d = 2; ok && d < p.dim(); ++d) ok = p.size(d) == target.size(d - 1);
    EMBER_CHECK(ok && p.size(0) == target.size(0), ShapeError, "[", metric, ".update] scores ", describe(preds),
                " must be [N, ", classes, ", d...] for a target ", describe(target));
    if (p.dim() > 2) {  // classes last, then one row per position
      Shape perm{0};
      for (int64_t d = 2; d < p.dim(); ++d) perm.push_back(d);
      perm.push_back(1);
      p = p.permute(perm);
    }
    p = p.reshape({-1, classes});
  } else {
    EMBER_CHECK(p.shape() == target.shape(), ShapeError, "[", metric, ".update] label predictions ", describe(preds),
                " and target ", describe(target), " must have the same shape");
    p = p.reshape({-1}).to(kI64);
  }
  return {p, target.reshape({-1}).to(kI64)};
}

Tensor valid_targets(const std::string& metric, const Tensor& t, int64_t classes, std::optional<int64_t> ignore_index) {
  Tensor v = ignore_index ? t != *ignore_index : ones({t.numel()}, {.dtype = kBool, .device = t.device()});
  EMBER_CHECK(!any_true(v & ((t < 0) | (t >= classes))), ValueError, "[", metric,
              ".update] a target label lies outside [0, ", classes, ")",
              ignore_index ? " and is not ignore_index" : "");
  return v;
}

// One-hot predictions (top-k hits) and targets [M, C] and the row mask [M, 1].
struct OneHot {
  Tensor preds, target, valid;
};

OneHot multiclass_one_hot(const std::string& metric, const Tensor& preds, const Tensor& target, int64_t classes,
                          int64_t top_k, std::optional<int64_t> ignore_index) {
  auto [p, t] = multiclass_rows(metric, preds, target, classes);
  Tensor v = valid_targets(metric, t, classes, ignore_index);
  const Tensor cls = arange(classes, kI64, t.device()).unsqueeze(0);
  Tensor hits;
  if (!p.is_floating_point()) {
    EMBER_CHECK(top_k == 1, ValueError, "[", metric, ".update] top_k = ", top_k, " needs scores, got labels ",
                describe(preds));
    EMBER_CHECK(!any_true((p < 0) | (p >= classes)), ValueError, "[", metric,
                ".update] a predicted label lies outside [0, ", classes, ")");
    hits = p.unsqueeze(1) == cls;
  } else if (top_k == 1) {
    hits = p.argmax(1).unsqueeze(1) == cls;
  } else {
    // torchmetrics (1.6+) counts one prediction per sample: the target when it is among the top k,
    // else the best class. So precision's false positives are the misses, not k - 1 per sample.
    const Tensor idx = p.topk(top_k, 1).indices;
    const Tensor in_top = (idx == t.unsqueeze(1)).any(1);
    hits = where(in_top, t, p.argmax(1)).unsqueeze(1) == cls;
  }
  return {hits, t.unsqueeze(1) == cls, v.unsqueeze(1)};
}

}  // namespace

// ---- options ----

nlohmann::json to_json(const ClassificationOptions& o) {
  return {{"task", o.task},
          {"threshold", o.threshold},
          {"num_classes", o.num_classes ? nlohmann::json(*o.num_classes) : nlohmann::json()},
          {"average", o.average},
          {"top_k", o.top_k},
          {"ignore_index", o.ignore_index ? nlohmann::json(*o.ignore_index) : nlohmann::json()}};
}

ClassificationOptions classification_options_from_json(const nlohmann::json& j) {
  ClassificationOptions o;
  o.task = j.at("task").get<std::string>();
  o.threshold = j.at("threshold").get<double>();
  if (!j.at("num_classes").is_null()) o.num_classes = j.at("num_classes").get<int64_t>();
  o.average = j.at("average").get<std::string>();
  o.top_k = j.at("top_k").get<int64_t>();
  if (!j.at("ignore_index").is_null()) o.ignore_index = j.at("ignore_index").get<int64_t>();
  return o;
}

// ---- StatScores and its four scores ----

StatScores::StatScores(ClassificationOptions options, const char* metric_name) : options_(std::move(options)) {
  const ClassificationOptions& o = options_;
  check_task(metric_name, o.task, o.num_classes);
  EMBER_CHECK(o.threshold >= 0 && o.threshold <= 1, ValueError, "[", metric_name,
              "] threshold must lie in [0, 1], got ", o.threshold);
  EMBER_CHECK(o.average == "micro" || o.average == "macro" || o.average == "weighted" || o.average == "none",
              ValueError, "[", metric_name, "] average must be \"micro\", \"macro\", \"weighted\" or \"none\", got \"",
              o.average, "\"");
  const bool multiclass = o.task == "multiclass";
  EMBER_CHECK(o.top_k >= 1 && (!multiclass || o.top_k <= *o.num_classes) && (multiclass || o.top_k == 1), ValueError,
              "[", metric_name, "] top_k must lie in [1, num_classes] (1 for the binary task), got ", o.top_k);
  const Shape shape = multiclass ? Shape{*o.num_classes} : Shape{};
  for (const char* s : {"tp", "fp", "tn", "fn"}) add_state(s, zeros(shape, {.dtype = kI64}), Reduce::kSum);
}

void StatScores::update_state(const Tensor& preds, const Tensor& target) {
  const ClassificationOptions& o = options_;
  if (o.task == "binary") {
    auto [p, t, v] = binary_format(name(), preds, target, o.threshold, o.ignore_index);
    accumulate("tp", (p & t & v).sum());
    accumulate("fp", (p & ~t & v).sum());
    accumulate("tn", (~p & ~t & v).sum());
    accumulate("fn", (~p & t & v).sum());
    return;
  }
  const OneHot h = multiclass_one_hot(name(), preds, target, *o.num_classes, o.top_k, o.ignore_index);
  accumulate("tp", (h.preds & h.target & h.valid).sum(Shape{0}));
  accumulate("fp", (h.preds & ~h.target & h.valid).sum(Shape{0}));
  accumulate("tn", (~h.preds & ~h.target & h.valid).sum(Shape{0}));
  accumulate("fn", (~h.preds & h.target & h.valid).sum(Shape{0}));
}

Tensor StatScores::compute() const {
  const Tensor tp = state("tp").to(kF64), fp = state("fp").to(kF64), tn = state("tn").to(kF64),
               fn = state("fn").to(kF64);
  if (options_.task == "binary") return score(tp, fp, tn, fn).to(kF32);
  if (options_.average == "micro") return micro(tp.sum(), fp.sum(), tn.sum(), fn.sum()).to(kF32);
  const Tensor per_class = score(tp, fp, tn, fn);
  if (options_.average == "none") return per_class.to(kF32);
  // torchmetrics leaves out of "macro" the classes absent from preds and target (top_k > 1: from target).
  const Tensor absent = options_.top_k == 1 ? tp + fp + fn == 0.0 : tp + fn == 0.0;
  const Tensor w = options_.average == "weighted" ? tp + fn : absent.logical_not().to(kF64);
  return safe_div((w * per_class).sum(), w.sum()).to(kF32);
}

Tensor Accuracy::score(const Tensor& tp, const Tensor& fp, const Tensor& tn, const Tensor& fn) const {
  if (options_.task == "binary") return safe_div(tp + tn, tp + tn + fp + fn);
  return safe_div(tp, tp + fn);  // per class: the class's recall
}
Tensor Accuracy::micro(const Tensor& tp, const Tensor&, const Tensor&, const Tensor& fn) const {
  return safe_div(tp, tp + fn);
}
Tensor Precision::score(const Tensor& tp, const Tensor& fp, const Tensor&, const Tensor&) const {
  return safe_div(tp, tp + fp);
}
Tensor Recall::score(const Tensor& tp, const Tensor&, const Tensor&, const Tensor& fn) const {
  return safe_div(tp, tp + fn);
}
Tensor F1Score::score(const Tensor& tp, const Tensor& fp, const Tensor&, const Tensor& fn) const {
  return safe_div(2.0 * tp, 2.0 * tp + fp + fn);
}

// ---- ConfusionMatrix ----

ConfusionMatrix::ConfusionMatrix(ConfusionMatrixOptions options) : options_(std::move(options)) {
  check_task("ConfusionMatrix", options_.task, options_.num_classes);
  const std::string& n = options_.normalize;
  EMBER_CHECK(n == "none" || n == "true" || n == "pred" || n == "all", ValueError,
              "[ConfusionMatrix] normalize must be \"none\", \"true\", \"pred\" or \"all\", got \"", n, "\"");
  classes_ = options_.task == "binary" ? 2 : *options_.num_classes;
  add_state("confmat", zeros({classes_, classes_}, {.dtype = kI64}), Reduce::kSum);
}

nlohmann::json ConfusionMatrix::config() const {
  return {{"task", options_.task},
          {"threshold", options_.threshold},
          {"num_classes", options_.num_classes ? nlohmann::json(*options_.num_classes) : nlohmann::json()},
          {"normalize", options_.normalize},
          {"ignore_index", options_.ignore_index ? nlohmann::json(*options_.ignore_index) : nlohmann::json()}};
}

void ConfusionMatrix::update_state(const Tensor& preds, const Tensor& target) {
  OneHot h;
  if (options_.task == "binary") {
    auto [p, t, v] = binary_format(name(), preds, target, options_.threshold, options_.ignore_index);
    const Tensor cls = arange(2, kI64, p.device()).unsqueeze(0);
    h = {p.to(kI64).unsqueeze(1) == cls, t.to(kI64).unsqueeze(1) == cls, v.unsqueeze(1)};
  } else {
    h = multiclass_one_hot(name(), preds, target, classes_, 1, options_.ignore_index);
  }
  // counts[target][pred]: a product of one-hot matrices (exact in f64 far beyond any batch).
  Tensor counts = matmul((h.target & h.valid).to(kF64).t(), h.preds.to(kF64));
  accumulate("confmat", counts.round().to(kI64));
}

Tensor ConfusionMatrix::compute() const {
  const Tensor& cm = state("confmat");
  if (options_.normalize == "none") return cm;
  const Tensor c = cm.to(kF64);
  const Tensor total = options_.normalize == "true"   ? c.sum(Shape{1}, /*keepdim=*/true)
                       : options_.normalize == "pred" ? c.sum(Shape{0}, /*keepdim=*/true)
                                                      : c.sum();
  return safe_div(c, total).to(kF32);
}

// ---- AUROC ----

namespace {

// The exact area under the ROC curve of scores `s` for labels `pos`: the trapezoids between distinct
// scores, walked from the highest; 0 when a class is missing (torchmetrics' value).
double binary_auc(const std::vector<double>& s, const std::vector<bool>& pos) {
  std::vector<size_t> order(s.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return s[a] > s[b]; });
  double tp = 0, fp = 0, area = 0;
  for (size_t i = 0; i < order.size();) {
    const double tp0 = tp, fp0 = fp;
    size_t j = i;
    for (; j < order.size() && s[order[j]] == s[order[i]]; ++j) (pos[order[j]] ? tp : fp) += 1;
    area += (fp - fp0) * (tp + tp0) / 2;
    i = j;
  }
  return tp == 0 || fp == 0 ? 0.0 : area / (tp * fp);
}

}  // namespace

AUROC::AUROC(AUROCOptions options) : options_(std::move(options)) {
  check_task("AUROC", options_.task, options_.num_classes);
  const std::string& a = options_.average;
  EMBER_CHECK(a == "macro" || a == "weighted" || a == "none", ValueError,
              "[AUROC] average must be \"macro\", \"weighted\" or \"none\", got \"", a, "\"");
  const Shape rows = options_.task == "binary" ? Shape{0} : Shape{0, *options_.num_classes};
  add_state("preds", zeros(rows, {.dtype = kF64}), Reduce::kCat);
  add_state("target", zeros({0}, {.dtype = kI64}), Reduce::kCat);
}

nlohmann::json AUROC::config() const {
  return {{"task", options_.task},
          {"num_classes", options_.num_classes ? nlohmann::json(*options_.num_classes) : nlohmann::json()},
          {"average", options_.average},
          {"ignore_index", options_.ignore_index ? nlohmann::json(*options_.ignore_index) : nlohmann::json()}};
}

void AUROC::update_state(const Tensor& preds, const Tensor& target) {
  EMBER_CHECK(preds.is_floating_point(), DTypeError, "[AUROC.update] needs scores (a floating tensor), got ",
              describe(preds));
  Tensor p, t;
  if (options_.task == "binary") {
    check_target_dtype(name(), target);
    EMBER_CHECK(preds.shape() == target.shape(), ShapeError, "[AUROC.update] preds ", describe(preds), " and target ",
                describe(target), " must have the same shape in the binary task");
    p = preds.reshape({-1});
    t = target.reshape({-1}).to(kI64);
    if (options_.ignore_index) {
      const Tensor keep = t != *options_.ignore_index;
      p = p.masked_select(keep);
      t = t.masked_select(keep);
    }
    EMBER_CHECK(!any_true((t != 0) & (t != 1)), ValueError,
                "[AUROC.update] the binary task's target holds values other than 0 and 1");
    if (p.numel() > 0 && !((p >= 0.0) & (p <= 1.0)).all().item<bool>()) p = p.sigmoid();
  } else {
    const int64_t classes = *options_.num_classes;
    std::tie(p, t) = multiclass_rows(name(), preds, target, classes);
    const Tensor v = valid_targets(name(), t, classes, options_.ignore_index);
    if (options_.ignore_index) {
      const Tensor rows = arange(t.numel(), kI64, t.device()).masked_select(v);
      p = p.index_select(0, rows);
      t = t.index_select(0, rows);
    }
    if (p.numel() > 0 && !((p >= 0.0) & (p <= 1.0)).all().item<bool>()) p = p.softmax(1);
  }
  accumulate("preds", p.to(kF64));
  accumulate("target", t);
}

Tensor AUROC::compute() const {
  const std::vector<double> p = state("preds").cpu().to_vector<double>();
  const std::vector<int64_t> t = state("target").cpu().to_vector<int64_t>();
  auto column = [&](int64_t c, int64_t stride) {
    std::vector<double> s(t.size());
    std::vector<bool> pos(t.size());
    for (size_t i = 0; i < t.size(); ++i) {
      s[i] = p[i * size_t(stride) + size_t(c)];
      pos[i] = stride == 1 ? t[i] == 1 : t[i] == c;
    }
    return binary_auc(s, pos);
  };
  if (options_.task == "binary") return scalar_tensor(column(0, 1), {.dtype = kF32, .device = device()});
  const int64_t classes = *options_.num_classes;
  std::vector<double> per_class(size_t(classes), 0.0), support(size_t(classes), 0.0);
  for (int64_t c = 0; c < classes; ++c) per_class[size_t(c)] = column(c, classes);
  for (int64_t label : t) support[size_t(label)] += 1;
  if (options_.average == "none") return tensor(per_class, {.dtype = kF32, .device = device()});
  double sum = 0, weight = 0;
  for (size_t c = 0; c < per_class.size(); ++c) {
    const double w = options_.average == "weighted" ? support[c] : 1.0;
    sum += w * per_class[c];
    weight += w;
  }
  return scalar_tensor(weight > 0 ? sum / weight : 0.0, {.dtype = kF32, .device = device()});
}

}  // namespace ember::metrics
