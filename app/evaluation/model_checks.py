"""Checks of a model gate, shared by measured and self-reported gates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from app.policy import Policy
from app.results import Check, compare, compare_interval, percent, points, skipped

if TYPE_CHECKING:
    from app.evaluation.model_metrics import ClassAccuracy
    from app.evaluation.model_stats import Estimate

RESOURCE_UNITS = {"size": "bytes", "latency": "ms", "memory": "bytes"}


def accuracy_loss_check(teacher: float, student: float, policy: Policy) -> Check:
    """Check that the student loses at most ``max_accuracy_loss`` accuracy.

    The loss is the absolute difference of fractions, so 0.03 is 3 percentage
    points. A student more accurate than its teacher has a negative loss.
    """
    loss = teacher - student
    return compare(
        "accuracy_loss",
        loss,
        policy.max_accuracy_loss,
        "<=",
        unit="fraction",
        describe=(
            f"accuracy loss {points(loss)} (teacher {percent(teacher)} -> "
            f"student {percent(student)})"
        ),
        bound=points(policy.max_accuracy_loss),
    )


def accuracy_interval_check(
    teacher: float,
    student: float,
    estimate: Estimate,
    policy: Policy,
    task_text: str,
) -> Check:
    """Check the accuracy loss and its 95% interval against ``max_accuracy_loss``.

    ``estimate`` is the loss that gates: absolute (``teacher - student``) or
    relative (divided by ``teacher``) as ``policy.accuracy_loss_mode`` says.
    The message shows both losses and ``task_text``.
    """
    absolute = teacher - student
    relative = absolute / teacher if teacher > 0 else None
    shown_relative = "undefined" if relative is None else percent(relative)
    accuracies = f"teacher {percent(teacher)} -> student {percent(student)}"
    if policy.accuracy_loss_mode == "relative":
        describe = (
            f"relative accuracy loss {shown_relative} ({accuracies}, absolute "
            f"{points(absolute)}; {task_text})"
        )
        show = percent
    else:
        describe = (
            f"accuracy loss {points(absolute)} ({accuracies}, relative "
            f"{shown_relative}; {task_text})"
        )
        show = points
    return compare_interval(
        "accuracy_loss",
        estimate.value,
        estimate.interval,
        policy.max_accuracy_loss,
        "<=",
        unit="fraction",
        describe=describe,
        bound=show(policy.max_accuracy_loss),
        shown_interval=f"[{show(estimate.low)}, {show(estimate.high)}]",
    )


def error_increase_check(
    name: str,
    metric: str,
    errors: tuple[float, float],
    estimate: Estimate,
    policy: Policy,
    task_text: str,
) -> Check:
    """Check the relative increase of a regression error (MAE or RMSE).

    ``max_accuracy_loss`` is read as the largest allowed relative increase:
    0.03 lets the student's error be 3% above the teacher's.
    """
    teacher, student = errors
    return compare_interval(
        name,
        estimate.value,
        estimate.interval,
        policy.max_accuracy_loss,
        "<=",
        unit="fraction",
        describe=(
            f"{metric} increase {percent(estimate.value)} (teacher {teacher:.4g} -> "
            f"student {student:.4g}; {task_text})"
        ),
        bound=percent(policy.max_accuracy_loss),
        shown_interval=f"[{percent(estimate.low)}, {percent(estimate.high)}]",
    )


def class_drop_check(
    worst: ClassAccuracy | None, classes: Sequence[ClassAccuracy], policy: Policy
) -> Check:
    """Check that no class loses more than ``max_class_drop`` accuracy.

    Only classes with at least ``min_class_rows`` rows are judged; the check is
    skipped when no class has that many.
    """
    threshold = policy.max_class_drop
    assert threshold is not None
    small = [item.label for item in classes if not item.judged]
    note = f"; {len(small)} classes below {policy.min_class_rows} rows not judged"
    note = note if small else ""
    if worst is None:
        return skipped(
            "class_drop",
            comparator="<=",
            unit="fraction",
            threshold=threshold,
            reason=f"class drop not checked: no class has at least "
            f"{policy.min_class_rows} rows (policy.min_class_rows)",
        )
    return compare(
        "class_drop",
        worst.drop,
        threshold,
        "<=",
        unit="fraction",
        describe=(
            f"worst class drop {points(worst.drop)} (class {worst.label!r}, "
            f"{worst.rows} rows: teacher {percent(worst.teacher)} -> student "
            f"{percent(worst.student)}{note})"
        ),
        bound=points(threshold),
    )


def latency_interval_check(
    teacher_ms: float, student_ms: float, estimate: Estimate, policy: Policy
) -> Check:
    """Check the latency reduction and its 95% interval against ``min_reduction``."""
    if "latency" not in policy.resources:
        return reduction_check(
            "latency", teacher_ms, student_ms, policy, missing_reason=""
        )
    return compare_interval(
        "latency_reduction",
        estimate.value,
        estimate.interval,
        policy.min_reduction,
        ">=",
        unit="fraction",
        describe=(
            f"latency reduction {percent(estimate.value)} (median teacher "
            f"{format_resource('latency', teacher_ms)} -> student "
            f"{format_resource('latency', student_ms)})"
        ),
        bound=percent(policy.min_reduction),
        shown_interval=f"[{percent(estimate.low)}, {percent(estimate.high)}]",
    )


def reduction_check(
    resource: str,
    teacher: float | None,
    student: float | None,
    policy: Policy,
    *,
    missing_reason: str,
) -> Check:
    """Check that ``1 - student / teacher`` reaches ``min_reduction``.

    The check is skipped, with the reason as its message, when the resource is
    not in ``policy.resources``, when either value is missing, or when the
    teacher's value is 0 and the ratio is undefined.
    """
    name = f"{resource}_reduction"

    def skip(reason: str) -> Check:
        return skipped(
            name,
            comparator=">=",
            unit="fraction",
            threshold=policy.min_reduction,
            reason=reason,
        )

    if resource not in policy.resources:
        return skip(f"{resource} not checked: not in policy.resources")
    if teacher is None or student is None:
        return skip(f"{resource} not checked: {missing_reason}")
    if teacher <= 0:
        return skip(
            f"{resource} not checked: the teacher's {resource} is 0, "
            "so the reduction is undefined"
        )
    reduction = 1.0 - student / teacher
    shown = format_resource(resource, teacher), format_resource(resource, student)
    return compare(
        name,
        reduction,
        policy.min_reduction,
        ">=",
        unit="fraction",
        describe=(
            f"{resource} reduction {percent(reduction)} "
            f"(teacher {shown[0]} -> student {shown[1]})"
        ),
        bound=percent(policy.min_reduction),
    )


def param_ratio_check(
    teacher: int | None, student: int | None, policy: Policy
) -> Check:
    """Warn when the teacher has more than ``max_param_ratio`` times the parameters.

    The check is advisory: a much smaller student can still pass the gate, but
    it often cannot learn all that its teacher learned.
    """
    bound = f"{policy.max_param_ratio:g}:1"
    if teacher is None or student is None or student == 0:
        return skipped(
            "param_ratio",
            comparator="<=",
            unit="ratio",
            threshold=policy.max_param_ratio,
            advisory=True,
            reason="parameter ratio not checked: parameter counts of "
            "both models are needed and the student's must be > 0",
        )
    ratio = teacher / student
    check = compare(
        "param_ratio",
        ratio,
        policy.max_param_ratio,
        "<=",
        unit="ratio",
        advisory=True,
        describe=(
            f"parameter ratio {ratio:.1f}:1 (teacher {teacher:,} -> "
            f"student {student:,} parameters)"
        ),
        bound=bound,
    )
    if check.status == "warning":
        message = (
            f"{check.message}; a student this much smaller than its teacher "
            "often cannot absorb what the teacher knows"
        )
        return Check(**{**check.to_dict(), "message": message})
    return check


def format_resource(resource: str, value: float) -> str:
    """Format a resource value in a readable unit: bytes as kB/MB, latency in ms."""
    if RESOURCE_UNITS[resource] == "ms":
        return f"{value:.3f} ms"
    return format_bytes(value)


def format_bytes(value: float) -> str:
    """Format a byte count with a decimal unit: ``1_200_000`` -> ``"1.20 MB"``."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value:.0f} B"
