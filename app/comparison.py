"""Compare a gate result with earlier ones: the baseline and the previous run.

The baseline is the last passing result of the same project, branch and kind;
each numeric metric gets its delta against it. The previous run is the last
result for the same commit, so the history shows when a commit's verdict
changed between runs, and whether the inputs were the same.
"""

from __future__ import annotations

import math
from typing import Any

from app.schemas import as_utc
from app.storage.models import GateRecord


def compare_with(
    record: GateRecord,
    metrics: dict[str, Any],
    status: str,
    baseline: GateRecord | None,
    previous: GateRecord | None,
) -> dict[str, Any]:
    """Return the ``comparison`` object stored with a finished result."""
    return {
        "baseline": _baseline(metrics, baseline),
        "previous_run": _previous_run(record, status, previous),
    }


def _baseline(metrics: dict[str, Any], baseline: GateRecord | None) -> dict[str, Any]:
    if baseline is None:
        return {"id": None, "deltas": {}, "note": "no earlier passing result"}
    return {
        "id": baseline.id,
        "commit": baseline.commit,
        "created_at": as_utc(baseline.created_at).isoformat(),
        "deltas": metric_deltas(metrics, baseline.metrics),
    }


def _previous_run(
    record: GateRecord, status: str, previous: GateRecord | None
) -> dict[str, Any] | None:
    if previous is None or record.commit is None:
        return None
    return {
        "id": previous.id,
        "status": previous.status,
        "same_inputs": previous.fingerprint == record.fingerprint,
        "verdict_changed": previous.status != status,
    }


def metric_deltas(current: dict[str, Any], earlier: dict[str, Any]) -> dict[str, float]:
    """Return current minus earlier for every finite numeric metric in both."""
    deltas = {}
    for name, value in current.items():
        before = earlier.get(name)
        if _is_number(value) and isinstance(before, int | float) and _is_number(before):
            delta = float(value) - float(before)
            if math.isfinite(delta):
                deltas[name] = delta
    return deltas


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
