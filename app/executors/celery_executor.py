"""Executor that sends gates to Celery workers through the broker.

The queue bound applies across API processes because it counts queued and
running gates in the database, not in this process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta

import kombu.exceptions
import sqlalchemy.exc

from app.config import Settings
from app.errors import ServiceUnavailableError
from app.executors.celery_app import TASK_NAME, create_celery_app, safe_url
from app.gate_inputs import Runner
from app.gates import GateService
from app.observability import context as log_context

logger = logging.getLogger(__name__)

ServiceScope = Callable[[], AbstractContextManager[GateService]]

RETRY_AFTER_S = 30
LOST_WORKER = (
    "interrupted: the worker evaluating the gate stopped during attempt "
    "{attempts} of {max_attempts}; check the workers' logs and memory limits, "
    "then submit the gate again"
)
NOT_REQUEUED = (
    "interrupted: the worker evaluating the gate stopped and the broker at {url} "
    "was unreachable to queue it again; submit the gate again"
)


class CeleryExecutor:
    """Queues gate ids on the broker; ``distilgate worker`` processes run them."""

    def __init__(self, scope: ServiceScope, settings: Settings):
        self._scope = scope
        self._app = create_celery_app(settings)
        self._max_pending = settings.max_pending_jobs
        self._max_attempts = settings.job_max_attempts
        self._queue = settings.task_queue
        self._expires_s = settings.job_timeout_s
        self._broker = safe_url(settings.broker_url)
        # A broker that restarts without persistence loses its queued
        # messages, so a gate no worker claimed in this time is sent again.
        # NOTE: in a long backlog this sends some gates more than once; the
        # extra messages only cost a worker one failed claim each.
        self._resend_after = timedelta(seconds=settings.job_lease_s)

    def submit(self, gate_id: str, runner: Runner | None) -> None:
        """Send a stored, queued gate to the workers.

        ``runner`` is ignored: the worker rebuilds the evaluation from the
        stored request.

        Raises:
            ServiceUnavailableError: the queue is full or the broker is down.
        """
        with self._scope() as service:
            # The count includes the gate being submitted, stored as queued.
            pending = service.repository.count_pending()
        # NOTE: two API processes may both pass this check at once, so the
        # bound can be exceeded by the number of concurrent submissions.
        if pending > self._max_pending:
            raise ServiceUnavailableError(
                f"the job queue is full ({pending - 1} gates pending, at most "
                f"{self._max_pending} set by DISTILGATE_MAX_PENDING_JOBS); "
                "retry later",
                retry_after_s=RETRY_AFTER_S,
            )
        self._send(gate_id)

    def _send(self, gate_id: str) -> None:
        try:
            result = self._app.send_task(
                TASK_NAME,
                args=[gate_id],
                # The worker tags the job's log lines with the submitting
                # request's id.
                kwargs={"request_id": log_context.current().request_id},
                queue=self._queue,
                expires=self._expires_s,
                retry=True,
            )
        except (kombu.exceptions.OperationalError, OSError) as exc:
            logger.error(
                "gate not sent, broker unreachable gate_id=%s broker=%s error=%s",
                gate_id,
                self._broker,
                exc,
            )
            raise ServiceUnavailableError(
                f"the job broker at {self._broker} is unreachable ({exc}); retry later",
                retry_after_s=RETRY_AFTER_S,
            ) from None
        logger.info(
            "gate sent to workers gate_id=%s task_id=%s queue=%s",
            gate_id,
            result.id,
            self._queue,
        )
        self._mark_sent(gate_id)

    def _mark_sent(self, gate_id: str) -> None:
        try:
            with self._scope() as service:
                service.repository.mark_sent(
                    gate_id, datetime.now(UTC) + self._resend_after
                )
        # The gate is queued and sent; only its resend after a broker restart
        # is lost, so the submission goes on.
        except sqlalchemy.exc.SQLAlchemyError as exc:
            logger.warning(
                "gate send not recorded, it will not be sent again gate_id=%s error=%s",
                gate_id,
                exc,
            )

    def requeue_lapsed(self) -> int:
        """Queue again every running gate whose worker stopped renewing its lease.

        A gate already started ``job_max_attempts`` times ends as ``error``
        instead. Queued gates that no worker claimed within the resend time
        are sent again. Returns the number of running gates queued again.
        """
        self._resend_unclaimed()
        now = datetime.now(UTC)
        requeued = []
        with self._scope() as service:
            repository = service.repository
            for gate_id, attempts in repository.lapsed_leases(now):
                if attempts >= self._max_attempts:
                    repository.end_one(
                        gate_id,
                        reason=LOST_WORKER.format(
                            attempts=attempts, max_attempts=self._max_attempts
                        ),
                    )
                    logger.error(
                        "gate ended, its worker stopped gate_id=%s attempts=%d",
                        gate_id,
                        attempts,
                    )
                elif repository.requeue(gate_id, attempts, now):
                    requeued.append(gate_id)
        for gate_id in requeued:
            logger.warning("gate queued again, its worker stopped gate_id=%s", gate_id)
            try:
                self._send(gate_id)
            except ServiceUnavailableError:
                with self._scope() as service:
                    service.repository.end_one(
                        gate_id, reason=NOT_REQUEUED.format(url=self._broker)
                    )
        return len(requeued)

    def _resend_unclaimed(self) -> None:
        now = datetime.now(UTC)
        with self._scope() as service:
            repository = service.repository
            due = [
                gate_id
                for gate_id in repository.unclaimed_sends(now)
                if repository.take_resend(gate_id, now, now + self._resend_after)
            ]
        for gate_id in due:
            logger.warning("gate sent again, no worker claimed it gate_id=%s", gate_id)
            try:
                self._send(gate_id)
            # The gate stays queued and is sent again after the next lapse.
            except ServiceUnavailableError:
                logger.warning("gate resend failed gate_id=%s", gate_id)

    def shutdown(self) -> None:
        self._app.close()
