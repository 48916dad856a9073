"""ORM tables. API schemas live in ``app.api.schemas``, apart from these."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Index, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

JsonType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    pass


class GateRecord(Base):
    """One gate run and its verdict.

    ``seq`` orders the history: it only grows, so newest-first paging is stable
    even when two results share a timestamp. ``id`` is the public identifier.
    """

    __tablename__ = "gates"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    )
    id: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    project: Mapped[str] = mapped_column(String(200))
    branch: Mapped[str | None] = mapped_column(String(255))
    commit: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    policy: Mapped[dict[str, Any]] = mapped_column(JsonType)
    metrics: Mapped[dict[str, Any]] = mapped_column(JsonType)
    checks: Mapped[list[dict[str, Any]]] = mapped_column(JsonType)
    details: Mapped[dict[str, Any]] = mapped_column(JsonType)
    artifacts: Mapped[dict[str, Any]] = mapped_column(JsonType)
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_gates_project_seq", "project", "seq"),
        Index("ix_gates_project_branch_kind_seq", "project", "branch", "kind", "seq"),
    )


class ArtifactRecord(Base):
    """A stored upload, addressed by the sha256 of its bytes."""

    __tablename__ = "artifacts"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
