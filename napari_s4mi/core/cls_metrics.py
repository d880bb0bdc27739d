"""Image-classification metrics from targets and predicted probabilities (single- or multi-label).

Single-label: targets are class indices (N,), probabilities softmax outputs (N, K), the prediction is the argmax.
Multi-label: targets are 0/1 (N, K), probabilities sigmoid outputs (N, K), a label is predicted when its
probability is >= ``threshold`` (0.5). Every per-class count is one-vs-rest.

Undefined cases give NaN and are left out of the macro means (never silently 0 or 1):

* F1 = 2TP / (2TP + FP + FN) is NaN when a class is absent from both targets and predictions (0/0);
  a class predicted but never present has F1 = 0, one present but never predicted also 0.
* Recall = TP / (TP + FN) is NaN when a class has no positive target; macro recall is the mean over the
  classes present, which for single-label is balanced accuracy (the paper's ISIC "recall").
* AUROC (one-vs-rest, ties counted half) is NaN when a class has only positive or only negative targets.
* Micro F1 pools TP, FP, FN over classes (single-label: equal to accuracy); NaN only if all are 0.

Accuracy is the fraction of images whose whole prediction is right (multi-label: all K labels right, i.e.
subset accuracy); multi-label reports also give ``label_accuracy`` (the fraction of the N x K labels right).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_LAYOUTS = {False: "rows true, columns predicted", True: "per class [[TN, FP], [FN, TP]]"}


@dataclass(frozen=True)
class ClsReport:
    """The metrics of one evaluation; per-class arrays are float64 (K,) in ``class_names`` order."""

    class_names: tuple[str, ...]
    multi_label: bool
    f1: np.ndarray
    recall: np.ndarray
    auroc: np.ndarray
    macro_f1: float
    micro_f1: float
    macro_recall: float
    macro_auroc: float
    accuracy: float
    label_accuracy: float | None
    confusion: np.ndarray  # (K, K) rows true, columns predicted; multi-label (K, 2, 2) [[TN, FP], [FN, TP]]
    support: np.ndarray  # positive targets per class (K,)
    n_images: int

    def scalars(self) -> dict[str, float]:
        """Flat name -> value: macro_f1, micro_f1, macro_recall, macro_auroc, accuracy, f1/<class>, ..."""
        out = {
            "macro_f1": self.macro_f1,
            "micro_f1": self.micro_f1,
            "macro_recall": self.macro_recall,
            "macro_auroc": self.macro_auroc,
            "accuracy": self.accuracy,
        }
        if self.label_accuracy is not None:
            out["label_accuracy"] = self.label_accuracy
        for metric, values in (("f1", self.f1), ("recall", self.recall), ("auroc", self.auroc)):
            for name, value in zip(self.class_names, values, strict=True):
                out[f"{metric}/{name}"] = float(value)
        return out

    def details(self) -> dict:
        """JSON-able summary: class names, confusion matrix as nested lists, support; NaN written as None."""
        return {
            "class_names": list(self.class_names),
            "multi_label": self.multi_label,
            "n_images": self.n_images,
            "support": [int(v) for v in self.support],
            "confusion": self.confusion.tolist(),
            "confusion_layout": _LAYOUTS[self.multi_label],
            "scalars": {k: (None if math.isnan(v) else v) for k, v in self.scalars().items()},
        }


def classification_report(
    targets: np.ndarray,
    probs: np.ndarray,
    multi_label: bool = False,
    class_names: Sequence[str] | None = None,
    threshold: float = 0.5,
) -> ClsReport:
    """All metrics for N images over K classes (see the module docstring for the definitions)."""
    scores = np.asarray(probs, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] == 0 or scores.shape[1] == 0:
        raise ValueError(f"probs must be a non-empty (N, K) array; got shape {scores.shape}")
    if not np.isfinite(scores).all():
        raise ValueError("probs contain NaN or infinite values")
    n, k = scores.shape
    names = _class_names(class_names, k)
    if multi_label:
        truth = _multi_label_targets(targets, n, k)
        pred = scores >= threshold
        confusion = _multi_label_confusion(truth, pred)
        tn, fp, fn, tp = (confusion[:, i, j].astype(np.float64) for i, j in ((0, 0), (0, 1), (1, 0), (1, 1)))
        accuracy = float(np.mean((truth == pred).all(axis=1)))
        label_accuracy: float | None = float(np.mean(truth == pred))
    else:
        labels = _single_label_targets(targets, n, k)
        truth = np.eye(k, dtype=bool)[labels]
        confusion = np.zeros((k, k), np.int64)
        np.add.at(confusion, (labels, scores.argmax(axis=1)), 1)
        tp = np.diag(confusion).astype(np.float64)
        fp = confusion.sum(axis=0) - tp
        fn = confusion.sum(axis=1) - tp
        accuracy = float(tp.sum() / n)
        label_accuracy = None
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    recall = _ratio(tp, tp + fn)
    auroc = np.array([_auroc(truth[:, c], scores[:, c]) for c in range(k)])
    micro = float(_ratio(np.array([2 * tp.sum()]), np.array([2 * tp.sum() + fp.sum() + fn.sum()]))[0])
    return ClsReport(
        class_names=names,
        multi_label=multi_label,
        f1=f1,
        recall=recall,
        auroc=auroc,
        macro_f1=_nanmean(f1),
        micro_f1=micro,
        macro_recall=_nanmean(recall),
        macro_auroc=_nanmean(auroc),
        accuracy=accuracy,
        label_accuracy=label_accuracy,
        confusion=confusion,
        support=truth.sum(axis=0).astype(np.int64),
        n_images=n,
    )


def class_counts(targets: np.ndarray, num_classes: int, multi_label: bool = False) -> np.ndarray:
    """Images per class (single-label) or positive labels per class (multi-label), int64 (K,)."""
    if multi_label:
        truth = np.asarray(targets)
        return _multi_label_targets(truth, len(truth), num_classes).sum(axis=0).astype(np.int64)
    labels = np.asarray(targets)
    return np.bincount(_single_label_targets(labels, len(labels), num_classes), minlength=num_classes)


def class_weights(counts: Sequence[int] | np.ndarray) -> np.ndarray:
    """Inverse-frequency loss weights (K,) float32 from the TRAINING labels' class counts only.

    Classes with examples get ``1 / count``, scaled so their mean is 1; a class with no training example gets
    1 (neutral: a weighted cross-entropy never uses it), so the mean over all K classes is 1 too. Counting
    validation or test labels here would leak them into training.
    """
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 1 or c.size == 0:
        raise ValueError(f"counts must be a non-empty 1-D sequence; got shape {c.shape}")
    if not np.isfinite(c).all() or (c < 0).any():
        raise ValueError(f"counts must be finite and non-negative; got {c.tolist()}")
    present = c > 0
    if not present.any():
        raise ValueError("every class count is 0: no training labels to weight by")
    weights = np.ones_like(c)
    inverse = 1.0 / c[present]
    weights[present] = inverse / inverse.mean()
    return weights.astype(np.float32)


# --------------------------------------------------------------------------------------------- helpers
def _class_names(class_names: Sequence[str] | None, k: int) -> tuple[str, ...]:
    names = tuple(str(i) for i in range(k)) if class_names is None else tuple(str(c) for c in class_names)
    if len(names) != k:
        raise ValueError(f"{len(names)} class names for {k} classes")
    if len(set(names)) != k:
        raise ValueError(f"class names must be unique; got {list(names)}")
    return names


def _single_label_targets(targets: np.ndarray, n: int, k: int) -> np.ndarray:
    t = np.asarray(targets)
    if t.shape != (n,):
        raise ValueError(f"single-label targets must have shape ({n},); got {t.shape}")
    if t.size and not np.issubdtype(t.dtype, np.integer):
        if not np.all(np.equal(np.mod(t, 1), 0)):
            raise ValueError("single-label targets must be integer class indices")
    t = t.astype(np.int64)
    if t.size and (t.min() < 0 or t.max() >= k):
        raise ValueError(f"single-label targets must lie in [0, {k}); got range [{t.min()}, {t.max()}]")
    return t


def _multi_label_targets(targets: np.ndarray, n: int, k: int) -> np.ndarray:
    t = np.asarray(targets)
    if t.shape != (n, k):
        raise ValueError(f"multi-label targets must have shape ({n}, {k}); got {t.shape}")
    if not np.isin(t, (0, 1)).all():
        raise ValueError("multi-label targets must be 0 or 1")
    return t.astype(bool)


def _multi_label_confusion(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """(K, 2, 2) int64 per class: [[TN, FP], [FN, TP]]."""
    out = np.empty((truth.shape[1], 2, 2), np.int64)
    out[:, 0, 0] = (~truth & ~pred).sum(axis=0)
    out[:, 0, 1] = (~truth & pred).sum(axis=0)
    out[:, 1, 0] = (truth & ~pred).sum(axis=0)
    out[:, 1, 1] = (truth & pred).sum(axis=0)
    return out


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den == 0."""
    out = np.full(np.shape(num), np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _nanmean(values: np.ndarray) -> float:
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else math.nan


def _auroc(positive: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum (Mann-Whitney) statistic; NaN with one kind of target."""
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = average_ranks(score)  # ties get their average rank, i.e. count half
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank (as scipy.stats.rankdata; NumPy only, because importing
    scipy.stats in a training thread loads ~400 modules with the GIL held and froze napari for ~0.5 s)."""
    values = np.asarray(values).ravel()
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], values.size]
    ranks = np.empty(values.size, np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks
