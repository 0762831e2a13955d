"""Reference values of ember::metrics from torchmetrics, cross-checked against scikit-learn where it has
the same metric (the script asserts they agree).

Inputs (float64 scores, int64 labels) are stored as "in.<name>"; each reference value as "ref.<case>"
(float32 for torchmetrics' float results, int64 for confusion matrices). tests/test_metrics.cpp feeds
the inputs in uneven batches and compares.
"""
import numpy as np
import torch
import torchmetrics as tm
from safetensors.torch import save_file
from sklearn import metrics as sk


def make(out_dir):
    g = torch.Generator().manual_seed(16)
    f64 = torch.float64
    n, c = 203, 5
    x = {
        "bin_prob": torch.rand(n, generator=g, dtype=f64),
        "bin_logit": torch.randn(n, generator=g, dtype=f64) * 2,
        "bin_target": torch.randint(0, 2, (n,), generator=g),
        "mc_logits": torch.randn(n, c, generator=g, dtype=f64),
        "mc_labels": torch.randint(0, c, (n,), generator=g),
        "mc_target": torch.randint(0, c, (n,), generator=g),
        "reg_preds": torch.randn(150, generator=g, dtype=f64),
        "reg_target": torch.randn(150, generator=g, dtype=f64),
        "lm_logits": torch.randn(4, 7, 11, generator=g, dtype=f64),
        "lm_target": torch.randint(0, 11, (4, 7), generator=g),
        "values": torch.randn(100, generator=g, dtype=f64),
        "weights": torch.rand(100, generator=g, dtype=f64),
    }
    # Targets with some positions marked -1 (ignore_index) and -100 (Perplexity's).
    drop = torch.rand(n, generator=g) < 0.2
    x["mc_target_ign"] = torch.where(drop, torch.tensor(-1), x["mc_target"])
    x["bin_target_ign"] = torch.where(drop, torch.tensor(-1), x["bin_target"])
    lm_drop = torch.rand(4, 7, generator=g) < 0.25
    x["lm_target_ign"] = torch.where(lm_drop, torch.tensor(-100), x["lm_target"])

    ref = {}

    def put(case, value):
        ref[case] = value.detach().clone()

    bp, bl, bt = x["bin_prob"], x["bin_logit"], x["bin_target"]
    ml, mlab, mt = x["mc_logits"], x["mc_labels"], x["mc_target"]
    cls = {"acc": tm.Accuracy, "prec": tm.Precision, "rec": tm.Recall, "f1": tm.F1Score}
    for k, C in cls.items():
        put(f"{k}_bin_prob", C(task="binary")(bp, bt))
        put(f"{k}_bin_logit", C(task="binary", threshold=0.3)(bl, bt))
        put(f"{k}_bin_ign", C(task="binary", ignore_index=-1)(bp, x["bin_target_ign"]))
        for avg in ("micro", "macro", "weighted", "none"):
            put(f"{k}_mc_{avg}", C(task="multiclass", num_classes=c, average=avg)(ml, mt))
            put(f"{k}_mc_top2_{avg}", C(task="multiclass", num_classes=c, average=avg, top_k=2)(ml, mt))
            put(f"{k}_mc_labels_{avg}", C(task="multiclass", num_classes=c, average=avg)(mlab, mt))
            put(f"{k}_mc_ign_{avg}", C(task="multiclass", num_classes=c, average=avg, ignore_index=-1)(ml, x["mc_target_ign"]))
    put("cm_bin", tm.ConfusionMatrix(task="binary")(bp, bt))
    put("cm_mc", tm.ConfusionMatrix(task="multiclass", num_classes=c)(ml, mt))
    put("cm_mc_true", tm.ConfusionMatrix(task="multiclass", num_classes=c, normalize="true")(ml, mt))
    put("cm_mc_ign", tm.ConfusionMatrix(task="multiclass", num_classes=c, ignore_index=-1)(ml, x["mc_target_ign"]))
    put("auroc_bin_prob", tm.AUROC(task="binary")(bp, bt))
    put("auroc_bin_logit", tm.AUROC(task="binary")(bl, bt))
    for avg in ("macro", "weighted", "none"):
        put(f"auroc_mc_{avg}", tm.AUROC(task="multiclass", num_classes=c, average=avg)(ml, mt))
    put("mse", tm.MeanSquaredError()(x["reg_preds"], x["reg_target"]))
    put("rmse", tm.MeanSquaredError(squared=False)(x["reg_preds"], x["reg_target"]))
    put("mae", tm.MeanAbsoluteError()(x["reg_preds"], x["reg_target"]))
    put("ppl", tm.text.Perplexity()(x["lm_logits"], x["lm_target"]))
    put("ppl_ign", tm.text.Perplexity(ignore_index=-100)(x["lm_logits"], x["lm_target_ign"]))
    mean = tm.MeanMetric()
    mean.update(x["values"], x["weights"])
    put("mean_weighted", mean.compute())
    put("sum", tm.SumMetric()(x["values"]))
    put("max", tm.MaxMetric()(x["values"]))
    put("min", tm.MinMetric()(x["values"]))

    # scikit-learn agrees on the metrics it shares.
    def close(a, b):
        assert np.allclose(np.asarray(a, dtype=np.float64), ref_np(b), rtol=1e-5, atol=1e-6), (a, b)

    def ref_np(case):
        return ref[case].double().numpy()

    pred_lab = ml.argmax(1).numpy()
    close(sk.accuracy_score(bt, bp > 0.5), "acc_bin_prob")
    close(sk.f1_score(bt, torch.sigmoid(bl) > 0.3), "f1_bin_logit")
    for avg in ("micro", "macro", "weighted"):
        close(sk.precision_score(mt, pred_lab, average=avg, zero_division=0), f"prec_mc_{avg}")
        close(sk.recall_score(mt, pred_lab, average=avg, zero_division=0), f"rec_mc_{avg}")
        close(sk.f1_score(mt, pred_lab, average=avg, zero_division=0), f"f1_mc_{avg}")
    close(sk.balanced_accuracy_score(mt, pred_lab), "acc_mc_macro")
    close(sk.top_k_accuracy_score(mt, ml, k=2), "acc_mc_top2_micro")
    close(sk.confusion_matrix(mt, pred_lab), "cm_mc")
    close(sk.roc_auc_score(bt, bp), "auroc_bin_prob")
    probs = torch.softmax(ml, 1).numpy()
    close(sk.roc_auc_score(mt, probs, multi_class="ovr", average="macro"), "auroc_mc_macro")
    close(sk.roc_auc_score(mt, probs, multi_class="ovr", average="weighted"), "auroc_mc_weighted")
    close(sk.mean_squared_error(x["reg_target"], x["reg_preds"]), "mse")
    close(sk.mean_absolute_error(x["reg_target"], x["reg_preds"]), "mae")

    out = {f"in.{k}": v.contiguous() for k, v in x.items()}
    out.update({f"ref.{k}": v.contiguous() for k, v in ref.items()})
    save_file(out, str(out_dir / "metrics.safetensors"))
