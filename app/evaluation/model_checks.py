"""Checks of a model gate, shared by measured and self-reported gates."""

from __future__ import annotations

from app.policy import Policy
from app.results import Check, compare, percent, points, skipped

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
    it often cannot absorb what its teacher knows.
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
