"""Log context, timing and metrics of one gate job, wherever it runs."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime

from app.gates import GateService
from app.observability import context
from app.observability.metrics import observe_gate, observe_queue_wait
from app.storage.models import GateRecord

logger = logging.getLogger(__name__)

# Status label of a job whose outcome was not stored: the deadline sweep or a
# restart ended its gate first, or another attempt took over a lapsed lease.
DISCARDED = "discarded"

ServiceScope = Callable[[], AbstractContextManager[GateService]]


@contextmanager
def job_log_context(gate_id: str, request_id: str | None = None) -> Iterator[None]:
    """Bind the job's ids to its log lines for the duration of the block.

    The in-process executor runs a job in a copy of the context of the request
    that queued it, so ``request_id`` defaults to that request's id. A worker
    passes the id it received with the task.
    """
    inherited = request_id or context.current().request_id
    with context.scoped(context.LogContext(request_id=inherited, gate_id=gate_id)):
        yield


class JobTimer:
    """Times a claimed gate's job and records its metrics when it ends."""

    def __init__(self, gate_id: str, kind: str):
        self.gate_id = gate_id
        self.kind = kind
        self._started = time.monotonic()

    @classmethod
    def claimed(cls, gate_id: str, scope: ServiceScope) -> JobTimer:
        """Start timing a gate this job just claimed, and bind its project."""
        try:
            with scope() as service:
                record = service.repository.find(gate_id)
        # Metrics must never stop a claimed job: the gate would stay running
        # until its deadline.
        except Exception:
            logger.warning(
                "claimed gate read failed gate_id=%s", gate_id, exc_info=True
            )
            record = None
        if record is None:
            return cls(gate_id, "unknown")
        context.bind(project=record.project)
        waited_s = _seconds_between(record.created_at, record.started_at)
        observe_queue_wait(record.kind, waited_s)
        logger.info(
            "job started gate_id=%s kind=%s queue_wait_s=%.3f",
            gate_id,
            record.kind,
            waited_s,
        )
        return cls(gate_id, record.kind)

    def finished(self, record: GateRecord | None) -> None:
        """Record the job's duration under the status it stored."""
        duration_s = time.monotonic() - self._started
        status = record.status if record is not None else DISCARDED
        observe_gate(self.kind, status, duration_s)
        logger.info(
            "job finished gate_id=%s status=%s duration_s=%.3f stored=%s",
            self.gate_id,
            status,
            duration_s,
            record is not None,
        )


def _seconds_between(start: datetime, end: datetime | None) -> float:
    if end is None:
        return 0.0
    # SQLite returns naive datetimes, and every stored time is UTC.
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    return max((end - start).total_seconds(), 0.0)
