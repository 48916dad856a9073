"""Queries on stored gate results. Functions here flush; callers commit."""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import InputError
from app.storage.models import ArtifactRecord, GateRecord

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GateFilter:
    """History filters; ``None`` means any value."""

    project: str | None = None
    branch: str | None = None
    kind: str | None = None
    status: str | None = None


class GateRepository:
    """Reads and writes gate results within one session."""

    def __init__(self, session: Session):
        self.session = session

    def add(self, record: GateRecord) -> GateRecord:
        self.session.add(record)
        self.session.flush()
        return record

    def find(self, gate_id: str) -> GateRecord | None:
        query = select(GateRecord).where(GateRecord.id == gate_id)
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


def _filtered(query: Select[GateRecord], filters: GateFilter) -> Select[GateRecord]:
    for column, value in (
        (GateRecord.project, filters.project),
        (GateRecord.branch, filters.branch),
        (GateRecord.kind, filters.kind),
        (GateRecord.status, filters.status),
    ):
        if value is not None:
            query = query.where(column == value)
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
        if prefix != "seq" or not number.isdigit():
            raise ValueError(text)
        return int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InputError(
            f"cursor {cursor!r} is not valid; pass the next_cursor value of the "
            "previous page unchanged, or omit cursor for the first page",
            field="cursor",
            value=cursor,
        ) from None
