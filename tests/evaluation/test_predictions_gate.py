"""Tests of the predictions-only gate and of task-specific quality checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import special

from app.errors import InputError
from app.evaluation.model_metrics import expected_calibration_error
from app.evaluation.predictions_gate import evaluate_predictions, read_predictions
from app.policy import Policy
from app.results import Check, Evaluation


def check(result: Evaluation, name: str) -> Check:
    return next(item for item in result.checks if item.name == name)


def logits(
    seed: int, rows: int = 400, classes: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, rows)
    scores = rng.normal(size=(rows, classes))
    scores[np.arange(rows), labels] += 3.0
    return scores, labels


def test_evaluate_predictions_scores_with_labels() -> None:
    teacher, labels = logits(0)
    result = evaluate_predictions(teacher, teacher + 0.01, labels, policy=Policy())
    assert result.metrics["agreement"] == 1.0
    assert result.metrics["kl_divergence"] == pytest.approx(0.0, abs=1e-4)
    assert check(result, "accuracy_loss").status == "passed"
    # Identical predictions on 400 rows still leave a loss of about 1 pp open.
    low, high = check(result, "accuracy_loss").interval
    assert -0.03 < low < 0.0
    assert 0.0 < high < 0.03
    assert check(result, "size_reduction").message == (
        "size not checked: the gate received predictions only"
    )
    assert result.metrics["predictions_only"] is True


def test_evaluate_predictions_without_labels() -> None:
    teacher, _ = logits(0)
    student, _ = logits(1)
    result = evaluate_predictions(teacher, student, None, policy=Policy())
    accuracy = check(result, "accuracy_loss")
    assert accuracy.status == "skipped"
    assert accuracy.message == "accuracy loss not checked: no labels were given"
    assert 0.0 < result.metrics["js_divergence"] <= np.log(2)
    assert result.metrics["agreement"] < 1.0
    assert result.status == "inconclusive"


def test_evaluate_predictions_labels_only() -> None:
    labels = np.arange(300) % 3
    student = labels.copy()
    student[:30] = (student[:30] + 1) % 3
    result = evaluate_predictions(labels, student, labels, policy=Policy())
    assert result.metrics["student_accuracy"] == pytest.approx(0.9)
    assert check(result, "accuracy_loss").status == "failed"
    assert result.details["distillation"]["not_computed"] == (
        "divergences need class scores from both models"
    )


def test_evaluate_predictions_relative_mode_message() -> None:
    labels = np.arange(1000) % 2 + 2
    student = labels.copy()
    student[:5] = 9
    result = evaluate_predictions(
        labels, student, labels, policy=Policy(accuracy_loss_mode="relative")
    )
    accuracy = check(result, "accuracy_loss")
    assert accuracy.message.startswith(
        "relative accuracy loss 0.5% (teacher 100.0% -> student 99.5%, absolute "
        "0.5 pp; classification task, inferred: the labels are classes) <= 3.0%"
    )


def test_evaluate_predictions_binary_threshold() -> None:
    labels = np.array([0, 1] * 50)
    teacher = np.where(labels == 1, 0.9, 0.1)
    student = np.where(labels == 1, 0.6, 0.1)
    loose = evaluate_predictions(teacher, student, labels, policy=Policy())
    assert loose.metrics["task"] == "binary"
    assert loose.metrics["student_accuracy"] == 1.0
    strict = evaluate_predictions(
        teacher, student, labels, policy=Policy(decision_threshold=0.7)
    )
    assert strict.metrics["student_accuracy"] == 0.5
    assert strict.details["task"]["decision_threshold"] == 0.7


def test_evaluate_predictions_regression_inferred() -> None:
    rng = np.random.default_rng(0)
    targets = rng.normal(size=500)
    teacher = targets + rng.normal(scale=0.1, size=500)
    student = targets + rng.normal(scale=0.2, size=500)
    result = evaluate_predictions(teacher, student, targets, policy=Policy())
    assert result.metrics["task"] == "regression"
    mae = check(result, "accuracy_loss")
    assert mae.status == "failed"
    assert mae.value == pytest.approx(
        result.metrics["student_mae"] / result.metrics["teacher_mae"] - 1
    )
    assert mae.message.startswith("MAE increase ")
    assert (
        "regression task, inferred: the targets are continuous numbers" in mae.message
    )
    assert check(result, "rmse_increase").status == "failed"


def test_evaluate_predictions_regression_one_row_inconclusive() -> None:
    targets = np.array([1.0])
    result = evaluate_predictions(
        np.array([1.5]), np.array([1.5]), targets, policy=Policy(task="regression")
    )
    mae = check(result, "accuracy_loss")
    assert mae.value == 0.0
    assert mae.status == "inconclusive"
    assert mae.message.endswith(
        "1 evaluation rows are too few for a decisive verdict (at least 10): "
        "inconclusive"
    )
    assert check(result, "rmse_increase").status == "inconclusive"


def test_evaluate_predictions_regression_two_rows_inconclusive() -> None:
    # A bootstrap over two rows spans only their own ratios, -2% to 0%.
    targets = np.zeros(2)
    result = evaluate_predictions(
        np.array([1.0, 1.0]),
        np.array([0.98, 1.0]),
        targets,
        policy=Policy(task="regression"),
    )
    mae = check(result, "accuracy_loss")
    assert mae.value == pytest.approx(-0.01)
    assert mae.status == "inconclusive"
    assert mae.interval is not None
    assert mae.interval[1] > 0.1


def test_evaluate_predictions_regression_equal_errors_inconclusive() -> None:
    # Constant errors have no spread, so both intervals have zero width.
    targets = np.arange(4.0)
    result = evaluate_predictions(
        targets + 0.3, targets + 0.1, targets, policy=Policy(task="regression")
    )
    mae = check(result, "accuracy_loss")
    assert mae.value == pytest.approx(-2 / 3)
    assert mae.status == "inconclusive"


def test_evaluate_predictions_class_drop_gated() -> None:
    labels = np.repeat(np.arange(3), 40)
    student = labels.copy()
    student[:8] = 1  # class 0 loses 8 of its 40 rows
    policy = Policy(max_class_drop=0.1, min_class_rows=20)
    result = evaluate_predictions(labels, student, labels, policy=policy)
    drop = check(result, "class_drop")
    assert drop.status == "failed"
    assert drop.message == (
        "worst class drop 20.0 pp (class '0', 40 rows: teacher 100.0% -> student "
        "80.0%) > 10.0 pp"
    )


def test_evaluate_predictions_small_classes_not_judged() -> None:
    labels = np.repeat(np.arange(3), 10)
    policy = Policy(max_class_drop=0.1)
    result = evaluate_predictions(labels, labels, labels, policy=policy)
    assert check(result, "class_drop").status == "skipped"
    assert result.details["classes_below_min_rows"] == ["0", "1", "2"]


def test_evaluate_predictions_row_mismatch() -> None:
    with pytest.raises(InputError) as caught:
        evaluate_predictions(np.zeros(3), np.zeros(4), None, policy=Policy())
    assert caught.value.message == (
        "teacher predictions have 3 rows but student predictions 4; save both "
        "models' predictions for the same rows"
    )


def test_evaluate_predictions_nan_scores() -> None:
    scores = np.ones((3, 2))
    scores[1, 0] = np.nan
    with pytest.raises(InputError) as caught:
        evaluate_predictions(scores, np.ones((3, 2)), None, policy=Policy())
    assert caught.value.message == (
        "teacher scores have 1 values that are NaN or infinite (first at row 1, "
        "0-based); save finite scores"
    )


def test_expected_calibration_error_perfect_and_overconfident() -> None:
    probabilities = np.tile([0.9, 0.1], (100, 1))
    correct = np.arange(100) < 90
    assert expected_calibration_error(probabilities, correct) == pytest.approx(0.0)
    assert expected_calibration_error(probabilities, np.arange(100) < 50) == (
        pytest.approx(0.4)
    )


def test_read_predictions_csv_and_npy(tmp_path: Path) -> None:
    scores, _ = logits(2, rows=5, classes=3)
    csv = tmp_path / "scores.csv"
    csv.write_text(
        "a,b,c\n" + "\n".join(",".join(map(repr, row)) for row in scores.tolist()),
        encoding="utf-8",
    )
    np.testing.assert_array_equal(
        read_predictions(csv, field="teacher", filename="s.csv"), scores
    )
    labels = tmp_path / "labels"
    np.save(labels, np.array([2, 0, 1]))
    read = read_predictions(
        labels.with_suffix(".npy"), field="student", filename="l.npy"
    )
    assert read.tolist() == [2, 0, 1]


def test_read_predictions_text_columns_rejected(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_text("a,b\n0.1,x\n0.2,y\n", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        read_predictions(path, field="teacher", filename="mixed.csv")
    assert caught.value.message == (
        "teacher 'mixed.csv' has 2 columns but columns ['b'] are not numbers; save "
        "class scores as one numeric column per class, or labels as a single column"
    )


def test_softmax_applied_for_logits() -> None:
    teacher, labels = logits(0)
    probabilities = special.softmax(teacher, axis=1)
    result = evaluate_predictions(teacher, probabilities, labels, policy=Policy())
    assert result.details["distillation"]["softmax_applied"] == {
        "teacher": True,
        "student": False,
    }
    assert result.metrics["kl_divergence"] == pytest.approx(0.0, abs=1e-9)
