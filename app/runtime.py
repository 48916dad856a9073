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
from app.errors import NotFoundError
from app.gates import GateMeta, GateService, Intake, Limits, Upload
from app.jobs import DeadlineSweeper, InProcessExecutor, interrupt_pending
from app.schemas import TERMINAL_STATUSES, GateResult
from app.storage.blobs import BlobStore
from app.storage.db import Database
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
        self.limits = Limits(
            max_upload_bytes=settings.max_upload_bytes,
            model_timeout_s=settings.model_timeout_s,
            job_timeout_s=settings.job_timeout_s,
            allow_torchscript=settings.allow_torchscript,
        )
        self.webhooks = WebhookDispatcher(self.database.session)
        self.executor = InProcessExecutor(
            self.scope,
            workers=settings.job_workers,
            max_pending=settings.max_pending_jobs,
            on_finished=self.webhooks.notify,
        )
        self.sweeper = DeadlineSweeper(self.scope, interval_s=settings.sweep_interval_s)

    def start(self) -> None:
        """Migrate the schema, end gates a stopped server left, start sweeping."""
        self.database.migrate()
        interrupt_pending(self.scope)
        self.sweeper.start()

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
    ) -> GateResult:
        """Store a gate with uploaded artifacts and queue its evaluation."""
        with self.scope() as service:
            intake = service.intake_uploads(
                kind, uploads, meta, request, policy_raw, idempotency_key
            )
            result = GateResult.from_record(intake.record)
        self._queue(intake)
        return result

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

    def _queue(self, intake: Intake) -> None:
        if intake.replayed:
            return
        try:
            self.executor.submit(intake.record.id, intake.runner)
        except Exception:
            with self.scope() as service:
                service.repository.end_one(
                    intake.record.id, reason="not queued: the job queue was full"
                )
            raise

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
