"""The running service: storage, job executor, sweeper and webhooks, wired once.

Routes and the CLI call the methods here; each one is a unit of work that
commits on success. This module does not import the web framework.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from app.auth import ANONYMOUS_ADMIN, PUBLIC_READER, Principal, authenticate
from app.config import Settings
from app.distilling import DistillService
from app.errors import DistilGateError, NotFoundError
from app.gates import GateMeta, GateService, Intake, Limits, Upload
from app.job_progress import ProgressSaver
from app.jobs import DeadlineSweeper, Executor, InProcessExecutor, interrupt_pending
from app.netguard import Allowlist
from app.observability import context as log_context
from app.observability.metrics import MetricsExporter, count_uploads
from app.ratelimit import RateLimits
from app.schemas import TERMINAL_STATUSES, GateResult
from app.storage.blobs import BlobStore
from app.storage.db import Database
from app.storage.gate_stats import GateCounts, read_gate_counts
from app.storage.models import GateRecord
from app.storage.projects import TokenRepository
from app.storage.repository import GateFilter, GateRepository
from app.webhooks import WebhookDispatcher

logger = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.2
GATE_ID = re.compile(r"[0-9a-f]{32}")


def _gate_not_found(gate_id: str) -> NotFoundError:
    return NotFoundError(
        f"gate {gate_id!r} not found", field="gate_id", value=gate_id, location="path"
    )


class Runtime:
    """Everything a DistilGate process needs to take and evaluate gates."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.database = Database(settings)
        self.store = BlobStore(settings.data_dir)
        self.limits = Limits.from_settings(settings)
        self.webhooks = WebhookDispatcher(
            self.database.session,
            allowlist=Allowlist.parse(settings.webhook_allow_hosts),
        )
        self.rate_limits = RateLimits(
            settings.rate_limit_per_minute, settings.auth_failures_per_minute
        )
        self.executor = self._create_executor()
        self.sweeper = DeadlineSweeper(
            self.scope,
            interval_s=settings.sweep_interval_s,
            also=getattr(self.executor, "requeue_lapsed", None),
        )
        self.metrics = MetricsExporter(
            self._read_gate_counts, ttl_s=settings.metrics_cache_s
        )

    def start(self) -> None:
        """Migrate (or check) the schema, end gates a stopped server left, sweep.

        Raises:
            SchemaNotCurrentError: ``migrate_on_start`` is off and the schema is
                not at the newest migration.
        """
        if self.settings.migrate_on_start:
            self.database.migrate()
        else:
            self.database.check_schema()
        # Workers keep running the gates they hold while the API restarts, and
        # the sweeper queues again those whose worker died.
        if self.settings.executor == "inprocess":
            interrupt_pending(self.scope)
        self.sweeper.start()

    def _create_executor(self) -> Executor:
        if self.settings.executor == "celery":
            from app.executors.celery_executor import CeleryExecutor

            return CeleryExecutor(self.scope, self.settings)
        return InProcessExecutor(
            self.scope,
            workers=self.settings.job_workers,
            max_pending=self.settings.max_pending_jobs,
            on_finished=self.webhooks.notify,
        )

    def stop(self) -> None:
        self.sweeper.stop()
        self.executor.shutdown()
        self.webhooks.shutdown()
        self.database.dispose()

    @contextmanager
    def scope(self) -> Iterator[GateService]:
        """Yield a gate service in one unit of work."""
        with self.database.session() as session:
            yield GateService(GateRepository(session), self.store, self.limits)

    def session(self) -> Any:
        return self.database.session()

    # Access

    @property
    def auth_enabled(self) -> bool:
        return self.settings.admin_token is not None

    def principal(self, header: str | None, *, read_only: bool) -> Principal:
        """Return the caller; everyone is an admin while tokens are off."""
        if not self.auth_enabled:
            return ANONYMOUS_ADMIN
        if header is None and read_only and self.settings.public_read:
            return PUBLIC_READER
        admin = self.settings.admin_token
        with self.database.session() as session:
            return authenticate(
                TokenRepository(session),
                header,
                admin.get_secret_value() if admin else None,
            )

    # Gates

    def submit_uploads(
        self,
        kind: str,
        uploads: Mapping[str, Upload],
        meta: GateMeta,
        request: dict[str, Any],
        policy_raw: str | None,
        idempotency_key: str | None = None,
        watch: ProgressSaver | None = None,
    ) -> GateResult:
        """Store a gate with uploaded artifacts and queue its evaluation.

        ``watch(gate_id, progress)`` is also called with every stored progress
        report, on the thread that runs the gate.
        """
        with self.scope() as service:
            intake = service.intake_uploads(
                kind,
                uploads,
                meta,
                request,
                policy_raw,
                idempotency_key,
                self._saver(watch),
            )
            result = GateResult.from_record(intake.record)
        self._queue(intake)
        return result

    def submit_distill(
        self,
        original: Upload,
        meta: GateMeta,
        request: dict[str, Any],
        policy_raw: str | None,
        idempotency_key: str | None = None,
        watch: ProgressSaver | None = None,
    ) -> GateResult:
        """Store a distillation of an uploaded original and queue its job.

        ``watch`` is called as in ``submit_uploads``.
        """
        with self.database.session() as session:
            service = DistillService(GateRepository(session), self.store, self.limits)
            intake = service.intake_distill(
                original,
                meta,
                request,
                policy_raw,
                save_progress=self._saver(watch),
                idempotency_key=idempotency_key,
            )
            result = GateResult.from_record(intake.record)
        self._queue(intake)
        return result

    def _saver(self, watch: ProgressSaver | None) -> ProgressSaver:
        """Return the function that stores progress and also calls ``watch``."""
        if watch is None:
            return self.save_progress
        return _both(self.save_progress, watch)

    def save_progress(self, gate_id: str, progress: dict[str, Any]) -> None:
        """Store a running gate's stage and fraction done."""
        with self.scope() as service:
            service.repository.set_progress(gate_id, progress)

    def submit_metrics(
        self,
        kind: str,
        measured: dict[str, Any],
        meta: GateMeta,
        policy: Mapping[str, Any] | None,
        idempotency_key: str | None = None,
    ) -> GateResult:
        """Store a gate on reported numbers and queue its evaluation."""
        with self.scope() as service:
            intake = service.intake_metrics(
                kind, measured, meta, policy, idempotency_key
            )
            result = GateResult.from_record(intake.record)
        self._queue(intake)
        return result

    def _read_gate_counts(self) -> GateCounts:
        with self.database.session() as session:
            return read_gate_counts(session)

    def _queue(self, intake: Intake) -> None:
        record = intake.record
        log_context.bind(gate_id=record.id, project=record.project)
        count_uploads(record.kind, record.artifacts)
        if intake.replayed:
            return
        try:
            self.executor.submit(record.id, intake.runner)
        except Exception as exc:
            self._forget_unqueued(record, exc)
            raise

    def _forget_unqueued(self, record: GateRecord, error: Exception) -> None:
        """Delete a gate the executor rejected, so a retry may reuse its key."""
        with self.scope() as service:
            deleted = service.repository.delete_queued(record.id)
        reason = error.message if isinstance(error, DistilGateError) else str(error)
        logger.warning(
            "gate not queued, record deleted=%s gate_id=%s project=%s error=%s",
            deleted,
            record.id,
            record.project,
            reason,
        )

    def get(self, gate_id: str, principal: Principal) -> GateResult:
        """Return a gate the caller may read.

        Raises:
            NotFoundError: no such gate, or one of a project the caller may not
                read, which is indistinguishable on purpose.
        """
        if not GATE_ID.fullmatch(gate_id):
            raise _gate_not_found(gate_id)
        with self.scope() as service:
            record = service.find(gate_id, principal.projects)
            if record is None:
                raise _gate_not_found(gate_id)
            return GateResult.from_record(record)

    def wait(self, gate_id: str, principal: Principal, timeout_s: float) -> GateResult:
        """Return the gate once terminal, or as it is after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            result = self.get(gate_id, principal)
            if result.status in TERMINAL_STATUSES or time.monotonic() >= deadline:
                return result
            time.sleep(POLL_INTERVAL_S)

    def history(
        self, filters: GateFilter, *, limit: int, cursor: str | None
    ) -> tuple[list[GateResult], str | None]:
        with self.scope() as service:
            records, next_cursor = service.history(filters, limit=limit, cursor=cursor)
            return [GateResult.from_record(r) for r in records], next_cursor

    def series(self, filters: GateFilter, *, limit: int) -> list[GateRecord]:
        with self.scope() as service:
            return service.repository.series(filters, limit=limit)

    def latest(self, filters: GateFilter) -> GateResult | None:
        with self.scope() as service:
            record = service.repository.latest_terminal(filters)
            return None if record is None else GateResult.from_record(record)


def _both(first: ProgressSaver, second: ProgressSaver) -> ProgressSaver:
    def save(gate_id: str, progress: dict[str, Any]) -> None:
        first(gate_id, progress)
        second(gate_id, progress)

    return save
