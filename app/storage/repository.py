"""Queries on stored gate results. Functions here flush; callers commit."""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import InputError
from app.storage.models import ArtifactRecord, GateRecord

logger = logging.getLogger(__name__)

PENDING_STATUSES = ("queued", "running")


@dataclass(frozen=True)
class GateFilter:
    """History filters; ``None`` means any value.

    ``projects`` limits the result to the projects a caller may read; ``None``
    means every project.
    """

    project: str | None = None
    branch: str | None = None
    kind: str | None = None
    status: str | None = None
    commit: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    projects: Collection[str] | None = None


class GateRepository:
    """Reads and writes gate results within one session."""

    def __init__(self, session: Session):
        self.session = session

    def add(self, record: GateRecord) -> GateRecord:
        self.session.add(record)
        self.session.flush()
        return record

    def add_unless_duplicate(self, record: GateRecord) -> GateRecord | None:
        """Insert ``record``; return None when its idempotency key is taken."""
        try:
            with self.session.begin_nested():
                self.session.add(record)
        except IntegrityError:
            logger.info(
                "idempotency key already used project=%s gate_id=%s",
                record.project,
                record.id,
            )
            return None
        return record

    def find(self, gate_id: str) -> GateRecord | None:
        query = select(GateRecord).where(GateRecord.id == gate_id)
        return self.session.scalars(query).first()

    def find_by_idempotency_key(self, project: str, key: str) -> GateRecord | None:
        query = select(GateRecord).where(
            GateRecord.project == project, GateRecord.idempotency_key == key
        )
        return self.session.scalars(query).first()

    def page(
        self, filters: GateFilter, *, limit: int, cursor: str | None
    ) -> tuple[list[GateRecord], str | None]:
        """Return up to ``limit`` results, newest first, and the next cursor."""
        query = _filtered(select(GateRecord), filters)
        if cursor is not None:
            query = query.where(GateRecord.seq < decode_cursor(cursor))
        query = query.order_by(GateRecord.seq.desc()).limit(limit + 1)
        rows = list(self.session.scalars(query))
        if len(rows) <= limit:
            return rows, None
        return rows[:limit], encode_cursor(rows[limit - 1].seq)

    def series(self, filters: GateFilter, *, limit: int) -> list[GateRecord]:
        """Return the newest ``limit`` terminal results, oldest first."""
        query = _filtered(select(GateRecord), filters).where(
            GateRecord.status.not_in(PENDING_STATUSES)
        )
        query = query.order_by(GateRecord.seq.desc()).limit(limit)
        return list(reversed(list(self.session.scalars(query))))

    def latest_terminal(self, filters: GateFilter) -> GateRecord | None:
        query = _filtered(select(GateRecord), filters).where(
            GateRecord.status.not_in(PENDING_STATUSES)
        )
        # first() alone sends no LIMIT, so the ORM would load every matching
        # row of the project before returning the newest.
        newest = query.order_by(GateRecord.seq.desc()).limit(1)
        return self.session.scalars(newest).first()

    def last_before(
        self, record: GateRecord, *, status: str | None = None, same_commit: bool
    ) -> GateRecord | None:
        """Return the newest terminal result of the same project, kind and branch
        (or commit) stored before ``record``, optionally with ``status``."""
        query = select(GateRecord).where(
            GateRecord.project == record.project,
            GateRecord.kind == record.kind,
            GateRecord.seq < record.seq,
            GateRecord.status.not_in(PENDING_STATUSES),
        )
        if same_commit:
            query = query.where(GateRecord.commit == record.commit)
        else:
            query = query.where(_equal_or_null(GateRecord.branch, record.branch))
        if status is not None:
            query = query.where(GateRecord.status == status)
        newest = query.order_by(GateRecord.seq.desc()).limit(1)
        return self.session.scalars(newest).first()

    def claim(
        self, gate_id: str, now: datetime, lease_until: datetime | None = None
    ) -> int | None:
        """Move a queued gate to running and return its attempt number.

        A running gate whose lease expired before ``now`` is claimed again,
        because the worker that claimed it stopped renewing it. Returns None when
        another job owns the gate or it has ended.
        """
        lapsed = and_(GateRecord.status == "running", GateRecord.lease_expires_at < now)
        statement = (
            update(GateRecord)
            .where(
                GateRecord.id == gate_id,
                or_(GateRecord.status == "queued", lapsed),
            )
            .values(
                status="running",
                started_at=now,
                attempts=GateRecord.attempts + 1,
                lease_expires_at=lease_until,
            )
        )
        if not _changed(self.session.execute(statement)):
            return None
        query = select(GateRecord.attempts).where(GateRecord.id == gate_id)
        return int(self.session.scalars(query).one())

    def renew_lease(self, gate_id: str, attempt: int, until: datetime) -> bool:
        """Extend the lease of a running gate; False when the attempt lost it."""
        statement = (
            update(GateRecord)
            .where(
                GateRecord.id == gate_id,
                GateRecord.status == "running",
                GateRecord.attempts == attempt,
            )
            .values(lease_expires_at=until)
        )
        return _changed(self.session.execute(statement))

    def finish(
        self, gate_id: str, values: dict[str, Any], attempt: int | None = None
    ) -> bool:
        """Write a running gate's outcome once; False when it already ended.

        With ``attempt``, only that claim of the gate may write it, so a worker
        that lost its lease cannot overwrite the attempt that replaced it.
        """
        statement = update(GateRecord).where(
            GateRecord.id == gate_id, GateRecord.status == "running"
        )
        if attempt is not None:
            statement = statement.where(GateRecord.attempts == attempt)
        statement = statement.values(lease_expires_at=None, **values)
        return _changed(self.session.execute(statement))

    def count_pending(self) -> int:
        """Count the gates that are queued or running."""
        query = select(func.count()).where(GateRecord.status.in_(PENDING_STATUSES))
        return int(self.session.scalar(query) or 0)

    def lapsed_leases(self, now: datetime) -> list[tuple[str, int]]:
        """Return the id and attempt of every running gate whose lease expired."""
        query = select(GateRecord.id, GateRecord.attempts).where(
            GateRecord.status == "running", GateRecord.lease_expires_at < now
        )
        rows = self.session.execute(query)
        return [(gate_id, int(attempt)) for gate_id, attempt in rows]

    def requeue(self, gate_id: str, attempt: int, now: datetime) -> bool:
        """Put a running gate whose lease lapsed back in the queue.

        False when the attempt renewed its lease or the gate ended meanwhile.
        """
        statement = (
            update(GateRecord)
            .where(
                GateRecord.id == gate_id,
                GateRecord.status == "running",
                GateRecord.attempts == attempt,
                GateRecord.lease_expires_at < now,
            )
            .values(status="queued", lease_expires_at=None, progress=None)
        )
        return _changed(self.session.execute(statement))

    def mark_sent(self, gate_id: str, resend_at: datetime) -> None:
        """Record that a queued gate was sent to the broker, due again at ``resend_at``.

        A queued gate's ``lease_expires_at`` is the time to send it again when
        no worker has claimed it by then.
        """
        statement = (
            update(GateRecord)
            .where(GateRecord.id == gate_id, GateRecord.status == "queued")
            .values(lease_expires_at=resend_at)
        )
        self.session.execute(statement)

    def unclaimed_sends(self, now: datetime) -> list[str]:
        """Return the ids of queued gates whose send lapsed before ``now``."""
        query = select(GateRecord.id).where(
            GateRecord.status == "queued", GateRecord.lease_expires_at < now
        )
        return list(self.session.scalars(query))

    def take_resend(self, gate_id: str, now: datetime, resend_at: datetime) -> bool:
        """Move a lapsed send of a queued gate to ``resend_at``; False if taken.

        The update is conditional, so of several API processes one resends it.
        """
        statement = (
            update(GateRecord)
            .where(
                GateRecord.id == gate_id,
                GateRecord.status == "queued",
                GateRecord.lease_expires_at < now,
            )
            .values(lease_expires_at=resend_at)
        )
        return _changed(self.session.execute(statement))

    def set_progress(self, gate_id: str, progress: dict[str, Any]) -> None:
        statement = (
            update(GateRecord)
            .where(GateRecord.id == gate_id, GateRecord.status == "running")
            .values(progress=progress)
        )
        self.session.execute(statement)

    def end_pending(self, *, reason: str, now: datetime, overdue_only: bool) -> int:
        """Mark queued and running gates as ``error``; return how many changed.

        With ``overdue_only`` only gates past their deadline change.
        """
        statement = update(GateRecord).where(GateRecord.status.in_(PENDING_STATUSES))
        if overdue_only:
            statement = statement.where(GateRecord.deadline_at < now)
        statement = statement.values(
            status="error", error=reason, finished_at=now, progress=None
        )
        result = self.session.execute(statement)
        return int(getattr(result, "rowcount", 0) or 0)

    def end_one(self, gate_id: str, *, reason: str) -> None:
        """Mark one queued or running gate as ``error`` with ``reason``."""
        statement = (
            update(GateRecord)
            .where(GateRecord.id == gate_id, GateRecord.status.in_(PENDING_STATUSES))
            .values(status="error", error=reason, progress=None)
        )
        self.session.execute(statement)

    def delete_queued(self, gate_id: str) -> bool:
        """Delete a gate that is still queued, which frees its idempotency key.

        Returns False when a job claimed the gate or it ended meanwhile.
        """
        statement = delete(GateRecord).where(
            GateRecord.id == gate_id, GateRecord.status == "queued"
        )
        return _changed(self.session.execute(statement))

    def expired_waivers(self, now: datetime) -> list[GateRecord]:
        query = select(GateRecord).where(
            GateRecord.status == "waived", GateRecord.waived_until <= now
        )
        return list(self.session.scalars(query))

    def record_artifact(self, sha256: str, size_bytes: int, now: datetime) -> None:
        """Register a blob once; a concurrent registration of the same blob wins."""
        if self.session.get(ArtifactRecord, sha256) is not None:
            return
        try:
            with self.session.begin_nested():
                self.session.add(
                    ArtifactRecord(sha256=sha256, size_bytes=size_bytes, created_at=now)
                )
        except IntegrityError:
            logger.info("artifact already registered sha256=%s", sha256)


def _changed(result: Any) -> bool:
    return int(getattr(result, "rowcount", 0) or 0) == 1


def _equal_or_null(column: Any, value: str | None) -> Any:
    return column.is_(None) if value is None else column == value


def _filtered(query: Select[GateRecord], filters: GateFilter) -> Select[GateRecord]:
    for column, value in (
        (GateRecord.project, filters.project),
        (GateRecord.branch, filters.branch),
        (GateRecord.kind, filters.kind),
        (GateRecord.status, filters.status),
        (GateRecord.commit, filters.commit),
    ):
        if value is not None:
            query = query.where(column == value)
    if filters.since is not None:
        query = query.where(GateRecord.created_at >= filters.since)
    if filters.until is not None:
        query = query.where(GateRecord.created_at < filters.until)
    if filters.projects is not None:
        query = query.where(GateRecord.project.in_(list(filters.projects)))
    return query


def encode_cursor(seq: int) -> str:
    """Encode a position in the history as an opaque cursor string."""
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """Decode a cursor made by ``encode_cursor``.

    Raises:
        InputError: the cursor was not issued by this service.
    """
    padded = cursor + "=" * (-len(cursor) % 4)
    try:
        text = base64.urlsafe_b64decode(padded.encode()).decode()
        prefix, _, number = text.partition(":")
        if prefix != "seq" or not number.isdigit() or len(number) > 18:
            raise ValueError(text)
        return int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InputError(
            f"cursor {cursor!r} is not valid; pass the next_cursor value of the "
            "previous page unchanged, or omit cursor for the first page",
            field="cursor",
            value=cursor,
            location="query",
        ) from None
