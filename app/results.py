"""Checks and evaluations: the outcome of a gate before it is stored.

This module imports neither the web framework nor the database layer, so the
CLI, the service and tests build and read results the same way.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

CheckStatus = Literal["passed", "failed", "warning", "skipped", "inconclusive"]
GateStatus = Literal["passed", "failed", "error", "inconclusive"]
Comparator = Literal[">=", "<=", "within"]

_NEGATED = {">=": "<", "<=": ">"}

# Values within this distance of a threshold count as equal to it, so that a
# loss of exactly 3 points computed as 0.030000000000000027 still passes 0.03.
TOLERANCE = 1e-9


@dataclass(frozen=True)
class Check:
    """One measured value compared with its threshold.

    ``value`` and ``threshold`` are fractions for ratios (0.95, never 95). An
    advisory check that fails has status ``warning`` and never fails the gate.
    A check whose value could not be measured has status ``skipped``.
    ``interval`` is the 95% confidence interval ``[low, high]`` of ``value`` when
    one was computed. A check whose value passes but whose interval crosses the
    threshold has status ``inconclusive``.
    """

    name: str
    value: float | None
    threshold: float | list[float] | None
    comparator: Comparator
    unit: str
    status: CheckStatus
    advisory: bool
    message: str
    interval: list[float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Evaluation:
    """Every check and measured value of one gate run."""

    kind: str
    checks: list[Check]
    metrics: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> GateStatus:
        """The verdict of the non-advisory checks.

        ``failed`` when any of them failed, else ``inconclusive`` when any of
        them is inconclusive or none of them could be measured (all skipped),
        else ``passed``. A gate that checked nothing never passes.
        """
        gating = [c.status for c in self.checks if not c.advisory]
        if "failed" in gating:
            return "failed"
        if "inconclusive" in gating or all(s == "skipped" for s in gating):
            return "inconclusive"
        return "passed"


def compare(
    name: str,
    value: float,
    threshold: float,
    comparator: Literal[">=", "<="],
    *,
    unit: str,
    describe: str,
    bound: str,
    advisory: bool = False,
) -> Check:
    """Build a check from a value, its threshold and a formula text.

    ``describe`` shows the value with its inputs, for example
    ``"accuracy loss 1.8 pp (teacher 97.8% -> student 96.0%)"``; ``bound`` shows the
    threshold in the same unit, for example ``"3.0 pp"``. The message joins them
    with the operator that holds, so a failed check reads ``... > 3.0 pp``.
    """
    if comparator == ">=":
        holds = value >= threshold - TOLERANCE
    else:
        holds = value <= threshold + TOLERANCE
    operator = comparator if holds else _NEGATED[comparator]
    status: CheckStatus = "passed"
    if not holds:
        status = "warning" if advisory else "failed"
    return Check(
        name=name,
        value=value,
        threshold=threshold,
        comparator=comparator,
        unit=unit,
        status=status,
        advisory=advisory,
        message=f"{describe} {operator} {bound}",
    )


def compare_interval(
    name: str,
    value: float,
    interval: tuple[float, float],
    threshold: float,
    comparator: Literal[">=", "<="],
    *,
    unit: str,
    describe: str,
    bound: str,
    shown_interval: str,
) -> Check:
    """Build a check from a point estimate, its 95% interval and the threshold.

    The check fails when the point estimate misses the threshold. It passes
    only when the whole interval clears the threshold. Otherwise the point
    estimate passes but the interval crosses the threshold, and the status is
    ``inconclusive``. ``shown_interval`` renders the interval in the unit of
    ``bound``, for example ``"[0.4 pp, 3.2 pp]"``.
    """
    point = compare(
        name, value, threshold, comparator, unit=unit, describe=describe, bound=bound
    )
    low, high = interval
    clears = (
        low >= threshold - TOLERANCE
        if comparator == ">="
        else high <= threshold + TOLERANCE
    )
    message = f"{point.message}, 95% CI {shown_interval}"
    status: CheckStatus = point.status
    if point.status == "passed" and not clears:
        status = "inconclusive"
        message += f" crosses {bound}: inconclusive"
    return Check(
        name=name,
        value=value,
        threshold=threshold,
        comparator=comparator,
        unit=unit,
        status=status,
        advisory=False,
        message=message,
        interval=[float(low), float(high)],
    )


def skipped(
    name: str,
    *,
    comparator: Comparator,
    unit: str,
    threshold: Any,
    reason: str,
    advisory: bool = False,
) -> Check:
    """Build a check that was not measured, with the reason as its message."""
    return Check(
        name=name,
        value=None,
        threshold=threshold,
        comparator=comparator,
        unit=unit,
        status="skipped",
        advisory=advisory,
        message=reason,
    )


def percent(fraction: float, digits: int = 1) -> str:
    """Format a fraction as a percentage: ``0.978`` -> ``"97.8%"``."""
    return f"{fraction * 100:.{digits}f}%"


def points(fraction: float, digits: int = 1) -> str:
    """Format a difference of fractions in points: ``0.018`` -> ``"1.8 pp"``."""
    return f"{fraction * 100:.{digits}f} pp"


def finite_or_none(value: float | None) -> float | None:
    """Return ``value`` unless it is NaN or infinite, because JSON carries neither."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)
