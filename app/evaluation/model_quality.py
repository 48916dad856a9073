"""Quality checks of a student against its teacher, from their outputs on the
same rows: accuracy loss with its interval, per-class drops and distillation
metrics. The measured gate and the predictions-only gate share them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from app.errors import InputError
from app.evaluation.model_checks import (
    accuracy_interval_check,
    class_drop_check,
    error_increase_check,
)
from app.evaluation.model_metrics import (
    agreement,
    aligned_columns,
    class_accuracies,
    expected_calibration_error,
    js_divergence,
    kl_divergence,
)
from app.evaluation.model_predictions import (
    Outputs,
    Predictions,
    infer_task,
    matches,
    predict,
)
from app.evaluation.model_stats import (
    Estimate,
    accuracy_loss_estimate,
    error_increase_estimate,
    mcnemar_p_value,
    samples_needed,
)
from app.policy import Policy, Task
from app.results import Check, finite_or_none, skipped

# A regression gate on fewer rows is at most inconclusive: its intervals come
# from too few errors to trust.
MIN_DECISIVE_ROWS = 10


@dataclass
class Quality:
    """Checks, metrics and details of the quality half of a model gate."""

    checks: list[Check]
    metrics: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


def assess_quality(
    teacher: Outputs, student: Outputs, labels: np.ndarray | None, policy: Policy
) -> Quality:
    """Compare both models' outputs on the same rows, against ``labels`` if given.

    Raises:
        InputError: an output does not fit the task, for example a regression
            model with several output columns. The field names the model.
    """
    task, how = infer_task(labels, teacher, student, policy)
    predictions = {
        "teacher": _predict(teacher, task, policy, "teacher"),
        "student": _predict(student, task, policy, "student"),
    }
    if task == "regression":
        quality = _regression(predictions, labels, policy, how)
    else:
        quality = _classification(predictions, labels, policy, task, how)
    quality.metrics["task"] = task
    quality.details["task"] = {"task": task, "chosen": how}
    if task == "binary":
        quality.details["task"]["decision_threshold"] = policy.decision_threshold
    return quality


def _predict(outputs: Outputs, task: Task, policy: Policy, role: str) -> Predictions:
    try:
        return predict(outputs, task, policy, role=role)
    except ValueError as exc:
        raise InputError(str(exc), field=role, value=task) from None


def _classification(
    predictions: dict[str, Predictions],
    labels: np.ndarray | None,
    policy: Policy,
    task: Task,
    how: str,
) -> Quality:
    teacher, student = predictions["teacher"], predictions["student"]
    quality = Quality(checks=[])
    quality.metrics["agreement"] = agreement(teacher.values, student.values)
    _divergences(quality, teacher, student, labels)
    if labels is None:
        quality.checks.append(_no_labels("accuracy_loss", policy.max_accuracy_loss))
        return quality
    correct = {role: matches(p.values, labels) for role, p in predictions.items()}
    if not any(bool(np.any(rows)) for rows in correct.values()):
        raise _labels_unmatched(labels, predictions["teacher"].values)
    _accuracy(quality, correct, policy, f"{task} task, {how}")
    _per_class(quality, labels, correct, policy)
    return quality


def _labels_unmatched(labels: np.ndarray, predicted: np.ndarray) -> InputError:
    """Explain a dataset whose labels never equal a class either model predicts.

    Both accuracies would be 0 and the loss 0, so the gate would pass on
    meaningless numbers; the labels are far more likely to be wrong.
    """
    seen = sorted({str(value) for value in labels[:1000]})[:5]
    classes = sorted({str(value) for value in predicted[:1000]})[:5]
    return InputError(
        f"no dataset label matches a class either model predicts (labels such as "
        f"{seen}; the teacher predicts classes such as {classes}); check "
        "label_column and that the labels use the models' class encoding",
        field="dataset",
        value=seen,
    )


def _accuracy(
    quality: Quality, correct: dict[str, np.ndarray], policy: Policy, task_text: str
) -> None:
    teacher, student = (float(np.mean(correct[role])) for role in correct)
    relative = policy.accuracy_loss_mode == "relative"
    rows = len(correct["teacher"])
    quality.metrics.update(
        teacher_accuracy=teacher,
        student_accuracy=student,
        accuracy_loss=teacher - student,
        relative_accuracy_loss=finite_or_none((teacher - student) / teacher)
        if teacher > 0
        else None,
        mcnemar_p_value=mcnemar_p_value(correct["teacher"], correct["student"]),
    )
    if relative and teacher == 0:
        quality.checks.append(
            _not_applicable(
                "accuracy_loss",
                policy.max_accuracy_loss,
                "relative accuracy loss not applicable: the teacher's accuracy is 0",
            )
        )
        return
    estimate = accuracy_loss_estimate(
        correct["teacher"], correct["student"], relative=relative
    )
    quality.checks.append(
        accuracy_interval_check(teacher, student, estimate, policy, task_text)
    )
    quality.details["accuracy_loss"] = _interval_details(
        estimate, rows, policy.max_accuracy_loss, policy.accuracy_loss_mode
    )
    quality.details["accuracy_loss"]["method"] = (
        "union of a paired bootstrap over evaluation rows (2000 resamples, "
        "seed 0) and Newcombe's paired score interval"
    )
    quality.details["accuracy_loss"]["discordant_rows"] = {
        "teacher_only_correct": int(
            np.count_nonzero(correct["teacher"] & ~correct["student"])
        ),
        "student_only_correct": int(
            np.count_nonzero(~correct["teacher"] & correct["student"])
        ),
    }


def _per_class(
    quality: Quality,
    labels: np.ndarray,
    correct: dict[str, np.ndarray],
    policy: Policy,
) -> None:
    classes = class_accuracies(
        labels, correct["teacher"], correct["student"], min_rows=policy.min_class_rows
    )
    judged = [item for item in classes if item.judged]
    worst = max(judged, key=lambda item: item.drop) if judged else None
    quality.details["classes"] = [item.to_dict() for item in classes]
    quality.details["classes_below_min_rows"] = [
        item.label for item in classes if not item.judged
    ]
    quality.metrics["worst_class_drop"] = None if worst is None else worst.drop
    quality.metrics["worst_class"] = None if worst is None else worst.label
    if policy.max_class_drop is not None:
        quality.checks.append(class_drop_check(worst, classes, policy))


def _divergences(
    quality: Quality,
    teacher: Predictions,
    student: Predictions,
    labels: np.ndarray | None,
) -> None:
    reason = _divergence_blocker(teacher, student)
    quality.details["distillation"] = {
        "softmax_applied": {
            "teacher": teacher.softmax_applied,
            "student": student.softmax_applied,
        },
        "divergence_units": "nats",
        "calibration_bins": 15,
        "not_computed": reason,
    }
    if reason is not None or teacher.probabilities is None:
        return
    assert student.probabilities is not None
    quality.metrics["kl_divergence"] = finite_or_none(
        kl_divergence(teacher.probabilities, student.probabilities)
    )
    quality.metrics["js_divergence"] = finite_or_none(
        js_divergence(teacher.probabilities, student.probabilities)
    )
    if labels is None:
        return
    for role, prediction in (("teacher", teacher), ("student", student)):
        assert prediction.probabilities is not None
        correct = matches(prediction.values, labels)
        quality.metrics[f"{role}_calibration_error"] = expected_calibration_error(
            prediction.probabilities, correct
        )


def _divergence_blocker(teacher: Predictions, student: Predictions) -> str | None:
    if teacher.probabilities is None or student.probabilities is None:
        return "divergences need class scores from both models"
    widths = (teacher.probabilities.shape[1], student.probabilities.shape[1])
    return aligned_columns(teacher.classes, student.classes, widths)


def _regression(
    predictions: dict[str, Predictions],
    labels: np.ndarray | None,
    policy: Policy,
    how: str,
) -> Quality:
    teacher, student = predictions["teacher"].values, predictions["student"].values
    quality = Quality(checks=[])
    difference = student - teacher
    quality.metrics["mean_abs_difference"] = float(np.mean(np.abs(difference)))
    if labels is None:
        for name in ("accuracy_loss", "rmse_increase"):
            quality.checks.append(_no_labels(name, policy.max_accuracy_loss))
        return quality
    if labels.dtype.kind not in "biuf":
        raise InputError(
            f"regression needs numeric targets but the labels have dtype "
            f"{labels.dtype}; pass numeric targets or set policy.task",
            field="dataset",
            value=str(labels.dtype),
        )
    targets = labels.astype(np.float64)
    errors = {
        "teacher": np.abs(teacher - targets),
        "student": np.abs(student - targets),
    }
    for role, error in errors.items():
        quality.metrics[f"{role}_mae"] = float(np.mean(error))
        quality.metrics[f"{role}_rmse"] = float(np.sqrt(np.mean(np.square(error))))
    for squared, name in ((False, "accuracy_loss"), (True, "rmse_increase")):
        quality.checks.append(
            _error_check(
                name, errors, squared, policy, f"regression task, {how}", quality
            )
        )
    return quality


def _error_check(
    name: str,
    errors: dict[str, np.ndarray],
    squared: bool,
    policy: Policy,
    task_text: str,
    quality: Quality,
) -> Check:
    metric = "rmse" if squared else "mae"
    teacher_error = quality.metrics[f"teacher_{metric}"]
    if teacher_error == 0:
        return _not_applicable(
            name,
            policy.max_accuracy_loss,
            f"{metric.upper()} increase not applicable: the teacher's "
            f"{metric.upper()} is 0, so a relative increase is undefined",
        )
    estimate = error_increase_estimate(
        errors["teacher"], errors["student"], squared=squared
    )
    quality.details[name] = _interval_details(
        estimate, len(errors["teacher"]), policy.max_accuracy_loss, "relative"
    )
    check = error_increase_check(
        name,
        metric.upper(),
        (teacher_error, quality.metrics[f"student_{metric}"]),
        estimate,
        policy,
        task_text,
    )
    rows = len(errors["teacher"])
    if rows < MIN_DECISIVE_ROWS and check.status == "passed":
        # A few rows with equal errors have no spread, so even the t interval
        # has zero width there.
        message = (
            f"{check.message}; {rows} evaluation rows are too few for a decisive "
            f"verdict (at least {MIN_DECISIVE_ROWS}): inconclusive"
        )
        check = replace(check, status="inconclusive", message=message)
    return check


def _interval_details(
    estimate: Estimate, rows: int, threshold: float, mode: str
) -> dict[str, Any]:
    return {
        "mode": mode,
        "interval": [estimate.low, estimate.high],
        "confidence": 0.95,
        "method": "paired bootstrap over evaluation rows, 2000 resamples, seed 0",
        "standard_error": estimate.standard_error,
        "rows": rows,
        "rows_needed_for_decisive_verdict": samples_needed(estimate, rows, threshold),
    }


def _no_labels(name: str, threshold: float) -> Check:
    return _not_applicable(
        name, threshold, f"{name.replace('_', ' ')} not checked: no labels were given"
    )


def _not_applicable(name: str, threshold: float, reason: str) -> Check:
    return skipped(
        name, comparator="<=", unit="fraction", threshold=threshold, reason=reason
    )
