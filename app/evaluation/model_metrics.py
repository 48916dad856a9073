"""Distillation metrics: how closely a student follows its teacher.

Divergences use natural logarithms, so they are in nats. Probabilities are
clipped to at least ``EPSILON`` and renormalised before a logarithm is taken,
because a student that gives a class probability 0 would otherwise make the
KL divergence infinite.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

from app.evaluation.model_predictions import as_text

EPSILON = 1e-12
CALIBRATION_BINS = 15


@dataclass(frozen=True)
class ClassAccuracy:
    """Accuracy of both models on the rows of one class.

    ``judged`` is false when the class has fewer rows than ``min_class_rows``,
    so its drop is shown but not gated.
    """

    label: str
    rows: int
    teacher: float
    student: float
    judged: bool

    @property
    def drop(self) -> float:
        return self.teacher - self.student

    def to_dict(self) -> dict[str, Any]:
        return {
            "class": self.label,
            "rows": self.rows,
            "teacher_accuracy": self.teacher,
            "student_accuracy": self.student,
            "drop": self.drop,
            "judged": self.judged,
        }


def agreement(teacher: np.ndarray, student: np.ndarray) -> float:
    """Return the share of rows where both models predict the same class."""
    same = as_text(teacher) == as_text(student)
    return float(np.mean(same))


def kl_divergence(teacher: np.ndarray, student: np.ndarray) -> float:
    """Return the mean over rows of KL(teacher || student), in nats.

    Both arguments are [rows, classes] probability matrices.
    """
    p, q = _clipped(teacher), _clipped(student)
    return float(np.mean(np.sum(special.rel_entr(p, q), axis=1)))


def js_divergence(teacher: np.ndarray, student: np.ndarray) -> float:
    """Return the mean over rows of the Jensen-Shannon divergence, in nats.

    It is symmetric and at most ln 2 (about 0.693).
    """
    p, q = _clipped(teacher), _clipped(student)
    middle = (p + q) / 2
    per_row = 0.5 * np.sum(special.rel_entr(p, middle), axis=1)
    per_row += 0.5 * np.sum(special.rel_entr(q, middle), axis=1)
    return float(np.mean(per_row))


def expected_calibration_error(
    probabilities: np.ndarray, correct: np.ndarray, *, bins: int = CALIBRATION_BINS
) -> float:
    """Return the expected calibration error over equal-width confidence bins.

    A row's confidence is its largest probability. Bins split (0, 1] into
    ``bins`` equal parts, and the error is the row-weighted mean over bins of
    |accuracy - mean confidence|.
    """
    confidence = probabilities.max(axis=1)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Bin i holds confidences in (edges[i], edges[i + 1]].
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    total = 0.0
    for bin_index in range(bins):
        members = index == bin_index
        count = int(np.count_nonzero(members))
        if count:
            gap = abs(np.mean(correct[members]) - np.mean(confidence[members]))
            total += count * float(gap)
    return total / len(confidence)


def class_accuracies(
    labels: np.ndarray,
    teacher_correct: np.ndarray,
    student_correct: np.ndarray,
    *,
    min_rows: int,
) -> list[ClassAccuracy]:
    """Return both models' accuracy on the rows of each class, ordered by class."""
    text = as_text(labels)
    result = []
    for label in sorted(set(text.tolist()), key=_class_order):
        members = text == label
        rows = int(np.count_nonzero(members))
        result.append(
            ClassAccuracy(
                label=label,
                rows=rows,
                teacher=float(np.mean(teacher_correct[members])),
                student=float(np.mean(student_correct[members])),
                judged=rows >= min_rows,
            )
        )
    return result


def aligned_columns(
    teacher: list[Any] | None, student: list[Any] | None, widths: tuple[int, int]
) -> str | None:
    """Explain why two score matrices cannot be compared column by column.

    Returns ``None`` when column i is the same class in both, else the reason.
    A missing class list means column i is class i.
    """
    if widths[0] != widths[1]:
        return (
            f"the teacher gives {widths[0]} score columns and the student {widths[1]}"
        )
    names = [
        [str(c) for c in classes] if classes is not None else None
        for classes in (teacher, student)
    ]
    default = [str(i) for i in range(widths[0])]
    if (names[0] or default) != (names[1] or default):
        return "the teacher's and the student's score columns name different classes"
    return None


def _clipped(probabilities: np.ndarray) -> np.ndarray:
    clipped = np.clip(probabilities, EPSILON, None)
    normalised: np.ndarray = clipped / clipped.sum(axis=1, keepdims=True)
    return normalised


def _class_order(label: str) -> tuple[int, float, str]:
    try:
        return 0, float(label), label
    except ValueError:
        return 1, 0.0, label
