"""Time a teacher and a student in interleaved rounds, each in its own child.

Both children have their model loaded. For each batch size the parent first
warms both models up, then runs rounds. A round sends one ``time`` command to
each child, in an order drawn from a seeded generator, and a child runs
``runs_per_round`` timed runs while the other one waits for its next command.
Drift in the machine's speed then affects both models alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from app.evaluation.model_probe import ChildProcess, ProbeSettings

# Throughput rounds stop after this many rounds at the earliest, or after
# ``min_latency_runs`` when that is lower.
THROUGHPUT_MIN_ROUNDS = 5


@dataclass(frozen=True)
class Timing:
    """Timed runs per model, as arrays of shape (rounds, runs per round) in ns."""

    latency: dict[str, np.ndarray]
    latency_rows: dict[str, int]
    throughput: dict[str, np.ndarray]
    throughput_rows: dict[str, int]


@dataclass(frozen=True)
class RoundLimits:
    """Stopping rule of timed rounds.

    Timing stops after ``max_rounds`` rounds or ``budget_s`` seconds of timed
    runs, whichever comes first, but never before ``min_rounds`` rounds.
    """

    min_rounds: int
    max_rounds: int
    budget_s: float


class ChildReportedError(RuntimeError):
    """A child's report with ``"status": "error"``, with the child's role."""

    def __init__(self, role: str, report: dict[str, Any]) -> None:
        super().__init__(report.get("message"))
        self.role = role
        self.report = report


def time_models(
    children: dict[str, ChildProcess],
    rows: dict[str, dict[str, int]],
    settings: ProbeSettings,
) -> Timing:
    """Time every child's model at its latency batch and its throughput batch.

    ``children`` maps each role to its child and ``rows`` maps each role to
    its ``latency_rows`` and ``throughput_rows``.

    Raises:
        EvaluationError: a child crashed or ran past its deadline.
        RuntimeError: a child reported an error; the report is its argument.
    """
    rng = np.random.default_rng(settings.seed)
    latency = _timed_rounds(
        children,
        "latency_rows",
        RoundLimits(
            settings.min_latency_runs,
            settings.max_latency_runs,
            settings.latency_budget_s,
        ),
        rng,
        settings,
    )
    throughput = _timed_rounds(
        children,
        "throughput_rows",
        RoundLimits(
            min(settings.min_latency_runs, THROUGHPUT_MIN_ROUNDS),
            settings.max_latency_runs,
            settings.throughput_budget_s,
        ),
        rng,
        settings,
    )
    return Timing(
        latency=latency,
        latency_rows={role: rows[role]["latency_rows"] for role in children},
        throughput=throughput,
        throughput_rows={role: rows[role]["throughput_rows"] for role in children},
    )


def _timed_rounds(
    children: dict[str, ChildProcess],
    rows_key: str,
    limits: RoundLimits,
    rng: np.random.Generator,
    settings: ProbeSettings,
) -> dict[str, np.ndarray]:
    roles = list(children)
    for role in roles:
        _checked(
            role, children[role].request({"command": "warmup", "rows_key": rows_key})
        )
    durations: dict[str, list[list[int]]] = {role: [] for role in roles}
    budget_ns = int(limits.budget_s * 1e9)
    spent = 0
    rounds = 0
    while rounds < limits.min_rounds or (
        rounds < limits.max_rounds and spent < budget_ns
    ):
        for index in rng.permutation(len(roles)):
            role = roles[index]
            command = {"command": "time", "runs": settings.runs_per_round}
            runs = _checked(role, children[role].request(command))["durations_ns"]
            durations[role].append(runs)
            spent += sum(runs)
        rounds += 1
    return {role: np.asarray(durations[role], dtype=np.int64) for role in roles}


def _checked(role: str, report: dict[str, Any]) -> dict[str, Any]:
    if report["status"] != "ok":
        raise ChildReportedError(role, report)
    return report
