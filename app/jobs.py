"""Background jobs that evaluate queued gates.

Every gate runs as a job: the request stores it as ``queued``, a job claims it
(``queued`` -> ``running``) and writes its outcome once. Claiming and finishing
are conditional updates, so a job never runs twice at once and a result is
written exactly once, even when a deadline sweep ends the gate first.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Protocol

from app.errors import DistilGateError, ServiceUnavailableError
from app.gate_inputs import Runner
from app.gates import GateService
from app.results import Evaluation
from app.storage.models import GateRecord

logger = logging.getLogger(__name__)

ServiceScope = Callable[[], AbstractContextManager[GateService]]
FinishedHook = Callable[[GateRecord], None]

INTERRUPTED = "interrupted: the server stopped before the evaluation finished"


class Executor(Protocol):
    """Runs gate jobs somewhere: in this process or on workers."""

    def submit(self, gate_id: str, runner: Runner | None) -> None: ...

    def shutdown(self) -> None: ...


def run_job(
    gate_id: str,
    runner: Runner | None,
    scope: ServiceScope,
    on_finished: FinishedHook | None = None,
) -> GateRecord | None:
    """Claim a queued gate, evaluate it and store its outcome.

    ``runner`` is the prepared evaluation; without it the job rebuilds it from
    the stored request. Returns the finished record, or None when another job
    claimed the gate or a deadline ended it first.
    """
    with scope() as service:
        if not service.claim(gate_id):
            logger.info("job skipped, gate not queued gate_id=%s", gate_id)
            return None
    outcome, error = _evaluate(gate_id, runner, scope)
    with scope() as service:
        record = service.finish(gate_id, outcome, error)
    if record is not None and on_finished is not None:
        on_finished(record)
    return record


def _evaluate(
    gate_id: str, runner: Runner | None, scope: ServiceScope
) -> tuple[Evaluation | None, str | None]:
    try:
        if runner is None:
            with scope() as service:
                stored = service.repository.find(gate_id)
                assert stored is not None
                runner = service.runner_for(stored)
        return runner(), None
    except DistilGateError as exc:
        logger.warning("gate evaluation failed gate_id=%s error=%s", gate_id, exc)
        where = f"{exc.field}: " if exc.field else ""
        return None, f"{where}{exc.message}"
    # A job must end its gate whatever goes wrong, so that no gate stays running.
    except Exception:
        logger.exception("gate evaluation crashed gate_id=%s", gate_id)
        return None, "internal error while evaluating; see the server log"


class InProcessExecutor:
    """Runs jobs on a bounded thread pool in the service process."""

    def __init__(
        self,
        scope: ServiceScope,
        *,
        workers: int,
        max_pending: int,
        on_finished: FinishedHook | None = None,
    ):
        self._scope = scope
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="distilgate-job")
        self._max_pending = max_pending
        self._pending = 0
        self._lock = threading.Lock()
        self._on_finished = on_finished

    def submit(self, gate_id: str, runner: Runner | None) -> None:
        """Queue a job; raise ServiceUnavailableError when the queue is full."""
        with self._lock:
            if self._pending >= self._max_pending:
                raise ServiceUnavailableError(
                    f"the job queue is full ({self._max_pending} gates pending); "
                    "retry later",
                    retry_after_s=30,
                )
            self._pending += 1
        self._pool.submit(self._run, gate_id, runner)

    def _run(self, gate_id: str, runner: Runner | None) -> None:
        try:
            run_job(gate_id, runner, self._scope, self._on_finished)
        finally:
            with self._lock:
                self._pending -= 1

    @property
    def pending(self) -> int:
        return self._pending

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class DeadlineSweeper:
    """Ends gates whose deadline passed, on a timer in a daemon thread."""

    def __init__(self, scope: ServiceScope, *, interval_s: float):
        self._scope = scope
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name="distilgate-sweeper", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def sweep(self) -> int:
        """End every overdue gate and expired waiver now; return the gates ended."""
        reason = "timed out: the evaluation passed its deadline"
        now = datetime.now(UTC)
        with self._scope() as service:
            ended = service.repository.end_pending(
                reason=reason, now=now, overdue_only=True
            )
            for record in service.repository.expired_waivers(now):
                record.status = (record.waiver or {}).get("original_status", "failed")
                logger.info("waiver expired gate_id=%s", record.id)
        if ended:
            logger.warning("gates timed out count=%d", ended)
        return ended

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.sweep()
            # The sweeper must keep running through a database outage.
            except Exception:
                logger.exception("deadline sweep failed")


def interrupt_pending(scope: ServiceScope) -> int:
    """Mark gates left queued or running by a stopped server as ``error``."""
    with scope() as service:
        ended = service.repository.end_pending(
            reason=INTERRUPTED, now=datetime.now(UTC), overdue_only=False
        )
    if ended:
        logger.warning("gates interrupted by a restart count=%d", ended)
    return ended
