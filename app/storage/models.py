"""ORM tables. API schemas live in ``app.schemas``, apart from these."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

from app.errors import printable


class StorableJson(TypeDecorator[Any]):
    """JSON (JSONB on PostgreSQL) whose text every database can store.

    PostgreSQL rejects NUL characters in JSON text, and no database encodes a
    lone surrogate. Values read from uploads can contain both, so they are
    written as escaped text (``\\x00``, ``\\ud800``) instead of failing the write.
    """

    impl = JSON
    cache_ok = True
    # As JSON does: None is stored as JSON null, not SQL NULL.
    should_evaluate_none = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(JSON())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return storable_json(value)


def storable_json(value: Any) -> Any:
    """Return ``value`` with NUL characters and lone surrogates escaped as text."""
    if isinstance(value, str):
        return printable(value).replace("\x00", "\\x00")
    if isinstance(value, dict):
        return {storable_json(key): storable_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [storable_json(item) for item in value]
    return value


JsonType = StorableJson()


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
    # Inputs besides the uploads that a job needs to run the gate again.
    request: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    policy_version: Mapped[int | None] = mapped_column(Integer)
    comparison: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    waiver: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    waived_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    progress: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deadline_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Times a job claimed the gate, and until when the current claim holds. A
    # worker renews the claim while it evaluates; a lapsed claim means it died.
    # On a queued gate sent to workers, the time to send it again unless a
    # worker claimed it by then.
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_gates_project_seq", "project", "seq"),
        Index("ix_gates_project_branch_kind_seq", "project", "branch", "kind", "seq"),
        Index("ix_gates_project_commit_kind", "project", "commit", "kind"),
        Index("ix_gates_status_seq", "status", "seq"),
        Index("ix_gates_project_branch_seq", "project", "branch", "seq"),
        Index("ix_gates_project_kind_seq", "project", "kind", "seq"),
        Index("ix_gates_project_status_seq", "project", "status", "seq"),
        Index(
            "ix_gates_project_branch_kind_status_seq",
            "project",
            "branch",
            "kind",
            "status",
            "seq",
        ),
        Index("ix_gates_commit_seq", "commit", "seq"),
        Index("ix_gates_created_at", "created_at"),
        UniqueConstraint("project", "idempotency_key", name="uq_gates_idempotency"),
    )


class ArtifactRecord(Base):
    """A stored upload, addressed by the sha256 of its bytes."""

    __tablename__ = "artifacts"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ProjectPolicy(Base):
    """One version of a project's stored policy. The highest version is in force."""

    __tablename__ = "project_policies"

    project: Mapped[str] = mapped_column(String(200), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    policy: Mapped[dict[str, Any]] = mapped_column(JsonType)
    locked: Mapped[list[str]] = mapped_column(JsonType)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ApiToken(Base):
    """An API token. Only the sha256 of the secret is stored, with a visible prefix."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JsonType)
    projects: Mapped[list[str]] = mapped_column(JsonType)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Webhook(Base):
    """An outgoing webhook called on every terminal gate result of its projects."""

    __tablename__ = "webhooks"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    # NOTE: the secret is stored as given, because signing needs it; protect the
    # database accordingly.
    secret: Mapped[str] = mapped_column(String(200))
    # After a rotation, deliveries are also signed with the previous secret
    # until it expires, so receivers can switch secrets without a gap.
    previous_secret: Mapped[str | None] = mapped_column(String(200))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True)
    )
    projects: Mapped[list[str]] = mapped_column(JsonType)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class WebhookDelivery(Base):
    """One attempt to deliver a gate result to a webhook."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id"), index=True)
    gate_id: Mapped[str] = mapped_column(String(32), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    delivered: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
