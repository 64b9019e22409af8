"""Classification metrics on the held-out test split.

Conventions: the confusion matrix has true classes as rows and predicted
classes as columns, both in label order; a precision, recall or F1 whose
denominator is zero is 0; macro averages are plain means over all classes
(classes absent from the test split count, with their zeros). The baseline is
the accuracy of always predicting the most common class of the *training*
split (ties: the lowest class index); beside it, the hindsight baseline of
always predicting the test split's own most common class.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from bus_contracts.messages.performance import ClassMetrics, TestMetrics

IntArray = npt.NDArray[np.int64]


def _as_labels(values: npt.ArrayLike, classes: int, what: str) -> IntArray:
    arr = np.asarray(values, dtype=np.int64).reshape(-1)
    if arr.size and (arr.min() < 0 or arr.max() >= classes):
        raise ValueError(
            f"{what} must be class indices in [0, {classes}), got {arr.min()}..{arr.max()}"
        )
    return arr


def confusion_matrix(y_true: npt.ArrayLike, y_pred: npt.ArrayLike, classes: int) -> IntArray:
    """``[classes, classes]`` counts; ``m[t, p]`` = rows of true class t predicted p."""
    t = _as_labels(y_true, classes, "true labels")
    p = _as_labels(y_pred, classes, "predictions")
    if t.shape != p.shape:
        raise ValueError(f"{t.size} true labels but {p.size} predictions")
    counts = np.bincount(t * classes + p, minlength=classes * classes)
    return counts.reshape(classes, classes).astype(np.int64)


def accuracy(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    t = np.asarray(y_true).reshape(-1)
    p = np.asarray(y_pred).reshape(-1)
    return float((t == p).mean()) if t.size else 0.0


def majority_class(y_train: npt.ArrayLike, classes: int) -> int:
    """The most common class of the training split (lowest index on ties)."""
    counts = np.bincount(_as_labels(y_train, classes, "training labels"), minlength=classes)
    return int(np.argmax(counts))


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else 0.0


def per_class_metrics(matrix: IntArray, labels: Sequence[str]) -> dict[str, ClassMetrics]:
    out: dict[str, ClassMetrics] = {}
    for i, name in enumerate(labels):
        tp = float(matrix[i, i])
        predicted = float(matrix[:, i].sum())
        support = int(matrix[i, :].sum())
        precision = _ratio(tp, predicted)
        recall = _ratio(tp, support)
        f1 = _ratio(2 * precision * recall, precision + recall)
        out[name] = ClassMetrics(precision=precision, recall=recall, f1=f1, support=support)
    return out


def compute_test_metrics(
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike,
    labels: Sequence[str],
    *,
    loss: float,
    y_train: npt.ArrayLike,
) -> TestMetrics:
    """Everything the result reports about the test split."""
    classes = len(labels)
    t = _as_labels(y_true, classes, "true labels")
    matrix = confusion_matrix(t, y_pred, classes)
    per_class = per_class_metrics(matrix, labels)
    n = int(matrix.sum())
    baseline = majority_class(y_train, classes)
    return TestMetrics(
        accuracy=_ratio(float(np.trace(matrix)), n),
        loss=float(loss),
        macro_precision=float(np.mean([m.precision for m in per_class.values()])),
        macro_recall=float(np.mean([m.recall for m in per_class.values()])),
        macro_f1=float(np.mean([m.f1 for m in per_class.values()])),
        per_class=per_class,
        confusion_matrix=matrix.tolist(),
        labels=list(labels),
        baseline_accuracy=_ratio(float((t == baseline).sum()), n),
        samples=n,
        test_majority_accuracy=_ratio(float(matrix.sum(axis=1).max(initial=0)), n),
    )
