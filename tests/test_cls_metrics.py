"""Classification metrics of napari_s4mi.core.cls_metrics checked against hand counts and scikit-learn."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score

from napari_s4mi.core.cls_metrics import class_counts, class_weights, classification_report


def _one_hot_probs(pred: list[int], k: int) -> np.ndarray:
    """Probabilities whose argmax is ``pred`` (0.6 on the predicted class, the rest shared)."""
    probs = np.full((len(pred), k), 0.4 / (k - 1))
    probs[np.arange(len(pred)), pred] = 0.6
    return probs


def test_f1_is_not_recall_and_matches_formula():
    # class 0: 2 targets, both found, plus 2 false positives -> recall 1, F1 = 4 / (4 + 2 + 0) = 2/3
    targets = np.array([0, 0, 1, 1, 1])
    pred = [0, 0, 0, 0, 1]
    report = classification_report(targets, _one_hot_probs(pred, 2), class_names=["benign", "malignant"])
    assert report.recall[0] == 1.0
    assert report.f1[0] == pytest.approx(2 / 3)
    assert report.f1[0] != report.recall[0]
    # class 1: TP 1, FP 0, FN 2 -> F1 = 2 / (2 + 0 + 2) = 0.5, recall 1/3
    assert report.f1[1] == pytest.approx(0.5)
    assert report.recall[1] == pytest.approx(1 / 3)
    np.testing.assert_allclose(report.f1, f1_score(targets, pred, average=None))
    s = report.scalars()
    assert s["f1/benign"] == pytest.approx(2 / 3) and s["recall/malignant"] == pytest.approx(1 / 3)


def test_macro_and_micro_f1_by_hand_on_imbalanced_data():
    # 8 of class 0, 2 of class 1; the model finds 7 of class 0 (1 called class 1) and 1 of class 1
    targets = np.array([0] * 8 + [1] * 2)
    pred = [0] * 7 + [1] + [1, 0]
    report = classification_report(targets, _one_hot_probs(pred, 2))
    f1_0 = 2 * 7 / (2 * 7 + 1 + 1)  # TP 7, FP 1 (the class-1 image called 0), FN 1
    f1_1 = 2 * 1 / (2 * 1 + 1 + 1)  # TP 1, FP 1, FN 1
    assert report.macro_f1 == pytest.approx((f1_0 + f1_1) / 2)  # 0.6875
    assert report.micro_f1 == pytest.approx(8 / 10)  # pooled: TP 8, FP 2, FN 2 -> equals accuracy
    assert report.accuracy == pytest.approx(0.8)
    assert report.macro_f1 != pytest.approx(report.micro_f1)
    assert report.macro_f1 == pytest.approx(f1_score(targets, pred, average="macro"))


def test_majority_class_predictor_has_balanced_accuracy_one_third():
    targets = np.array([0] * 90 + [1] * 7 + [2] * 3)
    pred = [0] * 100
    report = classification_report(targets, _one_hot_probs(pred, 3))
    assert report.accuracy == pytest.approx(0.9)
    assert report.macro_recall == pytest.approx(1 / 3)
    assert report.macro_recall == pytest.approx(balanced_accuracy_score(targets, pred))
    # classes 1 and 2 never predicted and present: F1 0; class 0: 2*90 / (180 + 10)
    np.testing.assert_allclose(report.f1, [180 / 190, 0, 0])


def test_auroc_matches_sklearn_including_ties():
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 4, size=200)
    logits = rng.normal(size=(200, 4)) + 1.5 * np.eye(4)[targets]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    probs = np.round(probs, 2)  # ties
    report = classification_report(targets, probs)
    for c in range(4):
        assert report.auroc[c] == pytest.approx(roc_auc_score(targets == c, probs[:, c]))
    assert report.macro_auroc == pytest.approx(np.mean(report.auroc))


def test_auroc_undefined_for_a_class_with_one_kind_of_target():
    targets = np.array([0, 0, 1, 1])  # class 2 never present
    probs = np.array([[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1]])
    report = classification_report(targets, probs)
    assert math.isnan(report.auroc[2]) and math.isnan(report.recall[2])
    assert math.isnan(report.f1[2])  # absent and never predicted: 0/0
    assert report.macro_auroc == pytest.approx(np.mean(report.auroc[:2]))
    assert report.macro_recall == pytest.approx(0.5)
    details = json.loads(json.dumps(report.details(), allow_nan=False))
    assert details["scalars"]["auroc/2"] is None


def test_multi_label_counts_and_scores():
    targets = np.array([[1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 0, 1]])
    probs = np.array([[0.9, 0.2, 0.7], [0.6, 0.8, 0.4], [0.7, 0.1, 0.2], [0.1, 0.3, 0.9]])
    pred = (probs >= 0.5).astype(int)
    report = classification_report(targets, probs, multi_label=True, class_names=["a", "b", "c"])
    # class a: TP 2, FP 1, FN 0 ; b: TP 1, FP 0, FN 1 ; c: TP 2, FP 0, FN 1
    np.testing.assert_allclose(report.f1, [4 / 5, 2 / 3, 4 / 5])
    np.testing.assert_allclose(report.recall, [1, 0.5, 2 / 3])
    assert report.micro_f1 == pytest.approx(2 * 5 / (2 * 5 + 1 + 2))
    assert report.micro_f1 == pytest.approx(f1_score(targets, pred, average="micro"))
    assert report.macro_f1 == pytest.approx(f1_score(targets, pred, average="macro"))
    assert report.accuracy == pytest.approx(2 / 4)  # rows 0 and 3 entirely right
    assert report.label_accuracy == pytest.approx(9 / 12)
    for c in range(3):
        assert report.auroc[c] == pytest.approx(roc_auc_score(targets[:, c], probs[:, c]))
    np.testing.assert_array_equal(report.confusion[0], [[1, 1], [0, 2]])  # [[TN, FP], [FN, TP]]
    assert json.loads(json.dumps(report.details()))["confusion"][1] == [[2, 0], [1, 1]]


def test_confusion_matrix_rows_true_columns_predicted():
    targets = np.array([0, 0, 1, 2, 2, 2])
    pred = [0, 1, 1, 2, 0, 2]
    report = classification_report(targets, _one_hot_probs(pred, 3), class_names=["x", "y", "z"])
    np.testing.assert_array_equal(report.confusion, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    details = report.details()
    assert details["confusion"] == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert details["class_names"] == ["x", "y", "z"]
    assert set(report.scalars()) >= {"macro_f1", "micro_f1", "macro_recall", "accuracy", "macro_auroc", "auroc/z"}


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="class names"):
        classification_report(np.array([0, 1]), np.eye(2), class_names=["a"])
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        classification_report(np.array([0, 2]), np.eye(2))
    with pytest.raises(ValueError, match="0 or 1"):
        classification_report(np.array([[0, 2], [1, 0]]), np.eye(2), multi_label=True)


def test_class_weights_inverse_frequency_mean_one():
    counts = class_counts(np.array([0] * 6 + [1] * 3 + [2] * 1), 3)
    np.testing.assert_array_equal(counts, [6, 3, 1])
    w = class_weights(counts)
    assert w.dtype == np.float32 and w.mean() == pytest.approx(1.0)
    assert w[0] * 6 == pytest.approx(w[1] * 3) == pytest.approx(w[2] * 1)
    w0 = class_weights([4, 0, 1])  # a class without training examples is neutral (1) and the mean stays 1
    assert w0[1] == 1.0 and w0.mean() == pytest.approx(1.0) and w0[2] == pytest.approx(4 * w0[0])
    with pytest.raises(ValueError):
        class_weights([0, 0])
    np.testing.assert_array_equal(class_counts(np.array([[1, 0], [1, 1]]), 2, multi_label=True), [2, 1])


def test_average_ranks_match_scipy_and_need_no_scipy_stats() -> None:
    """AUROC's ranks without scipy.stats (its import in the training thread froze napari at fine-tuning's start)."""
    import subprocess
    import sys

    from scipy.stats import rankdata

    from napari_s4mi.core.cls_metrics import average_ranks

    rng = np.random.default_rng(0)
    for values in (rng.random(50), rng.integers(0, 5, 60).astype(float), np.array([3.0]), np.array([2.0, 2.0, 2.0])):
        assert np.allclose(average_ranks(values), rankdata(values))
    code = "import sys, napari_s4mi.core.cls_metrics; print('scipy.stats' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
