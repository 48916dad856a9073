"""Stored progress of a running gate: its stage and the fraction done."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from app.evaluation.progress import ProgressFn

logger = logging.getLogger(__name__)

# Progress is written to the database at most this often, and on a new stage.
PROGRESS_INTERVAL_S = 0.5

ProgressSaver = Callable[[str, dict[str, Any]], None]


def progress_reporter(gate_id: str, save: ProgressSaver | None) -> ProgressFn | None:
    """Save ``(stage, fraction)`` reports, at most one per interval per stage."""
    if save is None:
        return None
    last_stage = ""
    last_at = 0.0

    def report(stage: str, fraction: float) -> None:
        nonlocal last_stage, last_at
        now = time.monotonic()
        if stage == last_stage and now - last_at < PROGRESS_INTERVAL_S:
            return
        last_stage, last_at = stage, now
        try:
            save(gate_id, {"stage": stage, "fraction": round(fraction, 4)})
        # A progress report must never end the job it describes.
        except Exception:
            logger.exception("progress not saved gate_id=%s stage=%s", gate_id, stage)

    return report
