"""Turn a model's raw outputs into predictions for the gate's task.

A model gives a label per row, a score matrix, or both. The task decides what
counts as the prediction: the class (classification), the class from the
probability of class 1 and a decision threshold (binary), or the value itself
(regression).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import special

from app.policy import Policy, Task

Preference = Literal["label", "score"]

# Float labels with more distinct whole values than this are read as regression
# targets, because a classifier with that many classes is rare in distillation
# gates and a regression target often takes whole values (counts, prices).
MAX_INFERRED_CLASSES = 20
# Rows count as probabilities when every value lies in [0, 1] and every row sums
# to 1 within this tolerance (float32 softmax outputs sum to 1 within ~1e-6).
_SUM_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Outputs:
    """The raw outputs of one model on the evaluation rows.

    ``labels`` contains one class per row from a label output, ``scores`` a float
    matrix [rows, classes] or a vector [rows] from a score output. ``classes``
    names the class of each score column (the keys of a map output); ``None``
    means column i is class i. ``prefer`` says which output gives the class
    when both exist.
    """

    labels: np.ndarray | None
    scores: np.ndarray | None
    classes: list[Any] | None = None
    prefer: Preference = "label"


@dataclass(frozen=True)
class Predictions:
    """What one model predicted for each row under the gate's task.

    ``values`` is the class per row, or the predicted value for regression.
    ``probabilities`` is a [rows, classes] matrix whose rows sum to 1, or
    ``None`` when the model gave no scores. ``softmax_applied`` says whether
    raw scores were turned into probabilities with a softmax (or a sigmoid for
    one binary score).
    """

    values: np.ndarray
    probabilities: np.ndarray | None
    classes: list[Any] | None
    softmax_applied: bool


def infer_task(
    labels: np.ndarray | None, teacher: Outputs, student: Outputs, policy: Policy
) -> tuple[Task, str]:
    """Return the task and how it was chosen.

    ``policy.task`` wins. Otherwise float labels with a fractional value or
    more than ``MAX_INFERRED_CLASSES`` distinct values mean regression. Labels
    that are all 0 or 1 mean binary when no model gives more than two score
    columns. Anything else is classification. Without labels the teacher's
    outputs decide the same way.
    """
    if policy.task is not None:
        return policy.task, "set by policy.task"
    reference = labels
    if reference is None:
        reference = teacher.labels if teacher.labels is not None else teacher.scores
        if reference is not None and reference.ndim > 1:
            return _classification_width(teacher, student)
    if reference is None:
        return "classification", "inferred: no labels or scores to read"
    if looks_continuous(reference):
        return "regression", "inferred: the targets are continuous numbers"
    if _is_zero_one(reference) and all(
        _score_width(outputs) <= 2 for outputs in (teacher, student)
    ):
        return "binary", "inferred: the labels are 0 and 1"
    return "classification", "inferred: the labels are classes"


def predict(outputs: Outputs, task: Task, policy: Policy, *, role: str) -> Predictions:
    """Derive one model's predictions for ``task``.

    Raises:
        ValueError: the outputs do not fit the task, for example a regression
            model with several score columns. The message names ``role``.
    """
    if task == "regression":
        return Predictions(_regression_values(outputs, role), None, None, False)
    if task == "binary":
        return _binary(outputs, policy.decision_threshold, role)
    return _classification(outputs, role)


def matches(predictions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Return, per row, whether the predicted class equals the label.

    Numeric predictions and labels are compared as numbers, so the label 1.0
    matches the class 1. When either side is not numeric, for example labels
    read as text from a CSV file, both sides are compared as text, with
    whole-number floats written without their decimal point.
    """
    if predictions.dtype.kind in "biuf" and labels.dtype.kind in "biuf":
        equal: np.ndarray = predictions == labels
        return equal
    text_equal: np.ndarray = as_text(predictions) == as_text(labels)
    return text_equal


def as_text(values: np.ndarray) -> np.ndarray:
    """Write values as text, with whole-number floats written as integers."""
    if values.dtype.kind == "f" and bool(np.all(np.floor(values) == values)):
        values = values.astype(np.int64)
    text: np.ndarray = values.astype(str)
    return text


def to_probabilities(scores: np.ndarray) -> tuple[np.ndarray, bool]:
    """Return the rows as probabilities, applying a softmax unless they are ones.

    Rows are probabilities already when all values lie in [0, 1] and each row
    sums to 1. Otherwise they are read as logits. The flag says whether the
    softmax was applied.
    """
    if _are_probabilities(scores):
        return scores, False
    probabilities: np.ndarray = special.softmax(scores, axis=1)
    return probabilities, True


def _are_probabilities(scores: np.ndarray) -> bool:
    if not np.all((scores >= 0.0) & (scores <= 1.0)):
        return False
    return bool(np.all(np.abs(scores.sum(axis=1) - 1.0) <= _SUM_TOLERANCE))


def _classification(outputs: Outputs, role: str) -> Predictions:
    scores = outputs.scores
    probabilities, applied = (
        (None, False) if scores is None else _probability_matrix(scores, role)
    )
    if outputs.labels is not None and (outputs.prefer == "label" or scores is None):
        return Predictions(outputs.labels, probabilities, outputs.classes, applied)
    if scores is None or probabilities is None:
        raise ValueError(f"the {role} model gave neither labels nor scores")
    if scores.ndim == 1 or scores.shape[1] == 1:
        # One score column is a binary scorer: class 1 at a score of 0.5 or more.
        return _binary(outputs, 0.5, role)
    columns = np.argmax(probabilities, axis=1)
    values = _column_classes(columns, outputs.classes)
    return Predictions(values, probabilities, outputs.classes, applied)


def _probability_matrix(scores: np.ndarray, role: str) -> tuple[np.ndarray, bool]:
    if scores.ndim == 1 or scores.shape[1] == 1:
        positive, applied = _positive_probability(scores, role)
        return np.column_stack([1.0 - positive, positive]), applied
    return to_probabilities(scores)


def _binary(outputs: Outputs, threshold: float, role: str) -> Predictions:
    if outputs.scores is None:
        if outputs.labels is None:
            raise ValueError(f"the {role} model gave neither labels nor scores")
        return Predictions(outputs.labels, None, None, False)
    positive, applied = _positive_probability(outputs.scores, role)
    values = (positive >= threshold).astype(np.int64)
    classes = outputs.classes
    if classes is not None and len(classes) == 2:
        values = _column_classes(values, classes)
    matrix = np.column_stack([1.0 - positive, positive])
    return Predictions(values, matrix, classes, applied)


def _positive_probability(scores: np.ndarray, role: str) -> tuple[np.ndarray, bool]:
    if scores.ndim == 1 or scores.shape[1] == 1:
        flat = scores.reshape(len(scores))
        if np.all((flat >= 0.0) & (flat <= 1.0)):
            return flat, False
        positive: np.ndarray = special.expit(flat)
        return positive, True
    if scores.shape[1] == 2:
        probabilities, applied = to_probabilities(scores)
        return probabilities[:, 1], applied
    raise ValueError(
        f"the {role} model gives {scores.shape[1]} score columns but the binary "
        "task needs one score or two columns; set policy.task to "
        "'classification'"
    )


def _regression_values(outputs: Outputs, role: str) -> np.ndarray:
    source = outputs.scores if outputs.scores is not None else outputs.labels
    if source is None or source.dtype.kind not in "biuf":
        raise ValueError(f"the {role} model gave no numeric output for regression")
    if source.ndim == 2 and source.shape[1] != 1:
        raise ValueError(
            f"the {role} model gives {source.shape[1]} values per row but "
            "regression needs one; choose a one-column output with "
            "policy.output_name"
        )
    values: np.ndarray = source.reshape(len(source)).astype(np.float64)
    return values


def _column_classes(columns: np.ndarray, classes: list[Any] | None) -> np.ndarray:
    if classes is None:
        return columns.astype(np.int64)
    named: np.ndarray = np.asarray(classes)[columns]
    return named


def looks_continuous(values: np.ndarray) -> bool:
    if values.dtype.kind != "f":
        return False
    flat = values.reshape(len(values), -1)[:, 0] if values.ndim > 1 else values
    if not np.all(np.isfinite(flat)):
        return False
    fractional = bool(np.any(np.floor(flat) != flat))
    return fractional or len(np.unique(flat)) > MAX_INFERRED_CLASSES


def _is_zero_one(values: np.ndarray) -> bool:
    if values.ndim != 1 or values.dtype.kind not in "biuf":
        return False
    return bool(np.all((values == 0) | (values == 1)))


def _score_width(outputs: Outputs) -> int:
    if outputs.scores is None or outputs.scores.ndim == 1:
        return 1
    return int(outputs.scores.shape[1])


def _classification_width(teacher: Outputs, student: Outputs) -> tuple[Task, str]:
    widths = {_score_width(teacher), _score_width(student)}
    if widths <= {1, 2}:
        return "binary", "inferred: the models give two classes and there are no labels"
    return "classification", "inferred: the models give class scores"
