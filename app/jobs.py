"""Background jobs that evaluate queued gates.

Every gate runs as a job: the request stores it as ``queued``, a job claims it
(``queued`` -> ``running``) and writes its outcome once. Claiming and finishing
are conditional updates, so a job never runs twice at once and a result is
written exactly once, even when a deadline sweep ends the gate first.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, Protocol

from app.errors import DistilGateError, ServiceUnavailableError
from app.executors.lease import keep_lease
from app.gate_inputs import Runner
from app.gates import GateService
from app.observability.jobs import JobTimer, job_log_context
from app.results import Evaluation
from app.storage.models import GateRecord

logger = logging.getLogger(__name__)

ServiceScope = Callable[[], AbstractContextManager[GateService]]
FinishedHook = Callable[[GateRecord], None]
ArtifactCheck = Callable[[GateRecord], None]

# Seconds a stopping service waits for running jobs before it lets them go.
SHUTDOWN_GRACE_S = 10.0
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
    *,
    lease_s: float | None = None,
    before_run: ArtifactCheck | None = None,
    request_id: str | None = None,
) -> GateRecord | None:
    """Claim a queued gate, evaluate it and store its outcome.

    ``runner`` is the prepared evaluation; without it the job rebuilds it from
    the stored request, after ``before_run`` checked the stored record (a
    worker uses it to fetch and verify the artifacts). With ``lease_s`` the
    claim is a lease that this job renews while it runs. Returns the finished
    record, or None when another job claimed the gate or a deadline ended it
    first. ``request_id`` tags the job's log lines; it defaults to the id of
    the request whose context the job runs in.
    """
    with job_log_context(gate_id, request_id=request_id):
        return _run_job(gate_id, runner, scope, on_finished, lease_s, before_run)


def _run_job(
    gate_id: str,
    runner: Runner | None,
    scope: ServiceScope,
    on_finished: FinishedHook | None,
    lease_s: float | None,
    before_run: ArtifactCheck | None,
) -> GateRecord | None:
    with scope() as service:
        attempt = service.claim(gate_id, lease_s=lease_s)
    if attempt is None:
        logger.info("job skipped, gate not queued gate_id=%s", gate_id)
        return None
    timer = JobTimer.claimed(gate_id, scope)
    with keep_lease(scope, gate_id, attempt, lease_s):
        outcome, error = _evaluate(gate_id, runner, scope, before_run)
    with scope() as service:
        record = service.finish(gate_id, outcome, error, attempt)
    timer.finished(record)
    if record is not None and on_finished is not None:
        on_finished(record)
    return record


def _evaluate(
    gate_id: str,
    runner: Runner | None,
    scope: ServiceScope,
    before_run: ArtifactCheck | None = None,
) -> tuple[Evaluation | None, str | None]:
    try:
        if runner is None:
            with scope() as service:
                stored = service.repository.find(gate_id)
                assert stored is not None
            if before_run is not None:
                before_run(stored)
            with scope() as service:
                runner = service.runner_for(stored, _progress_saver(scope))
        return runner(), None
    except DistilGateError as exc:
        logger.warning("gate evaluation failed gate_id=%s error=%s", gate_id, exc)
        where = f"{exc.field}: " if exc.field else ""
        return None, f"{where}{exc.message}"
    # A job must end its gate whatever goes wrong, so that no gate stays running.
    except Exception:
        logger.exception("gate evaluation crashed gate_id=%s", gate_id)
        return None, "internal error while evaluating; see the server log"


def _progress_saver(scope: ServiceScope) -> Callable[[str, dict[str, Any]], None]:
    """Return a function that stores a running gate's progress in ``scope``."""

    def save(gate_id: str, progress: dict[str, Any]) -> None:
        with scope() as service:
            service.repository.set_progress(gate_id, progress)

    return save


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
        self._futures: set[Future[None]] = set()

    def submit(self, gate_id: str, runner: Runner | None) -> None:
        """Queue a job; raise ServiceUnavailableError when the queue is full."""
        with self._lock:
            if self._pending >= self._max_pending:
                raise ServiceUnavailableError(
                    f"the job queue is full ({self._max_pending} gates pending, "
                    "the limit set by DISTILGATE_MAX_PENDING_JOBS); retry later",
                    retry_after_s=30,
                )
            self._pending += 1
        # The job runs in a copy of the request's context, so its log lines
        # carry the request id.
        context = contextvars.copy_context()
        future = self._pool.submit(context.run, self._run, gate_id, runner)
        with self._lock:
            self._futures.add(future)
        future.add_done_callback(self._forget)

    def _forget(self, future: Future[None]) -> None:
        with self._lock:
            self._futures.discard(future)

    def _run(self, gate_id: str, runner: Runner | None) -> None:
        try:
            run_job(gate_id, runner, self._scope, self._on_finished)
        finally:
            with self._lock:
                self._pending -= 1

    @property
    def pending(self) -> int:
        return self._pending

    def shutdown(self, grace_s: float = SHUTDOWN_GRACE_S) -> None:
        """Drop queued jobs and wait up to ``grace_s`` for running ones.

        A job still running after that goes on in the background. If the process
        exits first, the next start marks its gate interrupted.
        """
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            running = list(self._futures)
        _, late = wait(running, timeout=grace_s)
        if late:
            logger.warning("jobs still running at shutdown count=%d", len(late))


class DeadlineSweeper:
    """Ends gates whose deadline passed, on a timer in a daemon thread.

    ``also`` runs after every sweep, such as re-queueing gates whose worker died.
    """

    def __init__(
        self,
        scope: ServiceScope,
        *,
        interval_s: float,
        also: Callable[[], object] | None = None,
    ):
        self._scope = scope
        self._interval_s = interval_s
        self._also = also
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
                if self._also is not None:
                    self._also()
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
