from __future__ import annotations

import numpy as np
import pytest

from training_engine.metrics import (
    accuracy,
    compute_test_metrics,
    confusion_matrix,
    majority_class,
)

LABELS = ["SELL", "HOLD", "BUY"]


def test_confusion_matrix_rows_are_true_columns_predicted() -> None:
    y_true = [0, 0, 1, 1, 1, 2, 2, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 2, 2, 0, 1]
    m = confusion_matrix(y_true, y_pred, 3)
    assert m.tolist() == [[1, 1, 0], [0, 2, 1], [1, 1, 2]]
    assert accuracy(y_true, y_pred) == pytest.approx(5 / 9)


def test_test_metrics_against_hand_computed_values() -> None:
    y_true = [0, 0, 1, 1, 1, 2, 2, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 2, 2, 0, 1]
    got = compute_test_metrics(y_true, y_pred, LABELS, loss=0.75, y_train=[1, 1, 1, 0, 2])
    # SELL: tp 1, predicted 2, support 2 -> p .5 r .5 f1 .5
    # HOLD: tp 2, predicted 4, support 3 -> p .5 r 2/3 f1 4/7
    # BUY:  tp 2, predicted 3, support 4 -> p 2/3 r .5 f1 4/7
    assert got.per_class["SELL"].precision == pytest.approx(0.5)
    assert got.per_class["SELL"].f1 == pytest.approx(0.5)
    assert got.per_class["HOLD"].recall == pytest.approx(2 / 3)
    assert got.per_class["HOLD"].f1 == pytest.approx(4 / 7)
    assert got.per_class["BUY"].precision == pytest.approx(2 / 3)
    assert got.per_class["BUY"].support == 4
    assert got.macro_precision == pytest.approx((0.5 + 0.5 + 2 / 3) / 3)
    assert got.macro_recall == pytest.approx((0.5 + 2 / 3 + 0.5) / 3)
    assert got.macro_f1 == pytest.approx((0.5 + 4 / 7 + 4 / 7) / 3)
    assert got.accuracy == pytest.approx(5 / 9)
    assert got.confusion_matrix == [[1, 1, 0], [0, 2, 1], [1, 1, 2]]
    assert got.labels == LABELS
    assert got.samples == 9
    assert got.loss == 0.75
    # Baseline: HOLD is the training split's majority; it is 3 of 9 test rows.
    assert got.baseline_accuracy == pytest.approx(3 / 9)
    # Hindsight: SELL is the test split's own majority, 4 of 9 rows.
    assert got.test_majority_accuracy == pytest.approx(4 / 9)


def test_zero_division_gives_zero() -> None:
    # BUY never predicted and never true; SELL never predicted.
    got = compute_test_metrics([0, 1, 1], [1, 1, 1], LABELS, loss=1.0, y_train=[2])
    assert got.per_class["SELL"].precision == 0.0
    assert got.per_class["SELL"].recall == 0.0
    assert got.per_class["SELL"].f1 == 0.0
    assert got.per_class["BUY"].support == 0
    assert got.per_class["BUY"].f1 == 0.0
    assert got.per_class["HOLD"].precision == pytest.approx(2 / 3)
    assert got.per_class["HOLD"].recall == 1.0
    assert got.baseline_accuracy == 0.0
    assert got.test_majority_accuracy == pytest.approx(2 / 3)


def test_majority_class_ties_go_to_the_lowest_index() -> None:
    assert majority_class(np.array([2, 2, 1, 1]), 3) == 1
    assert majority_class([0], 3) == 0


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match=r"class indices in \[0, 3\)"):
        confusion_matrix([0, 3], [0, 0], 3)
    with pytest.raises(ValueError, match="2 true labels but 3 predictions"):
        confusion_matrix([0, 1], [0, 1, 2], 3)


def test_empty_test_split() -> None:
    got = compute_test_metrics([], [], LABELS, loss=float("nan"), y_train=[0])
    assert got.accuracy == 0.0
    assert got.samples == 0
    assert accuracy([], []) == 0.0
