"""Aggregate counts of stored gates, read for the metrics endpoint."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.storage.models import GateRecord


@dataclass(frozen=True)
class GateCounts:
    """Stored gates by ``(kind, status)``, and when the oldest queued one came in."""

    by_kind_status: dict[tuple[str, str], int] = field(default_factory=dict)
    oldest_queued_at: datetime | None = None


def read_gate_counts(session: Session) -> GateCounts:
    """Count gates by kind and status, with two aggregate queries.

    The GROUP BY reads every row of ``gates``, so callers cache its result
    instead of running it on every scrape.
    """
    grouped = select(GateRecord.kind, GateRecord.status, func.count()).group_by(
        GateRecord.kind, GateRecord.status
    )
    counts = {(kind, status): int(n) for kind, status, n in session.execute(grouped)}
    oldest = session.scalar(
        select(func.min(GateRecord.created_at)).where(GateRecord.status == "queued")
    )
    if oldest is not None and oldest.tzinfo is None:
        # SQLite returns naive datetimes, and every stored time is UTC.
        oldest = oldest.replace(tzinfo=UTC)
    return GateCounts(by_kind_status=counts, oldest_queued_at=oldest)
