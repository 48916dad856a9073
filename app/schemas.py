"""Request and response bodies of the REST API, shared by the CLI and reports."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from app.evaluation.metrics_gate import DataMetrics, ModelMetrics
from app.storage.models import GateRecord

GateKind = Literal["model", "data"]
GateStatus = Literal[
    "queued", "running", "passed", "failed", "error", "inconclusive", "waived"
]
TERMINAL_STATUSES = frozenset({"passed", "failed", "error", "inconclusive", "waived"})


def as_utc(value: datetime) -> datetime:
    """Mark a naive timestamp, as SQLite returns them, as the UTC it was stored in."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


UtcDateTime = Annotated[datetime, AfterValidator(as_utc)]


def storable(value: str) -> str:
    """Reject text the database cannot store: NUL characters and lone surrogates.

    PostgreSQL rejects NUL in text and JSON values, and a lone surrogate has no
    UTF-8 encoding, so either would fail the insert after validation passed.
    """
    if "\x00" in value:
        raise ValueError("must not contain NUL (\\x00) characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must not contain lone surrogates") from None
    return value


StoredText = Annotated[str, AfterValidator(storable)]


class Health(BaseModel):
    status: Literal["ok"]
    version: str


class CheckOut(BaseModel):
    """One check: a measured value compared with its threshold."""

    name: str
    value: float | None
    threshold: float | list[float] | None
    comparator: Literal[">=", "<=", "within"]
    unit: str
    status: Literal["passed", "failed", "warning", "skipped", "inconclusive"]
    advisory: bool
    message: str
    interval: list[float] | None = Field(
        None, description="95% confidence interval [low, high] of the value."
    )


class ArtifactOut(BaseModel):
    """An uploaded file as the server stored it."""

    sha256: str
    size_bytes: int
    filename: str | None


class Waiver(BaseModel):
    """An accepted failure: who waived it, why, and until when."""

    reason: str
    expires_at: datetime
    waived_by: str
    waived_at: datetime
    original_status: str
    active: bool


class GateResult(BaseModel):
    """A stored gate run with its verdict and every measured value."""

    id: str
    kind: GateKind
    status: GateStatus
    project: str
    branch: str | None
    commit: str | None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    policy: dict[str, Any]
    policy_version: int | None = Field(
        None, description="Version of the project policy used; null for none."
    )
    metrics: dict[str, Any]
    checks: list[CheckOut]
    artifacts: dict[str, ArtifactOut]
    details: dict[str, Any]
    error: str | None = Field(None, description="Why an `error` gate did not finish.")
    progress: dict[str, Any] | None = Field(
        None, description="Stage and fraction done while the gate runs."
    )
    comparison: dict[str, Any] | None = Field(
        None,
        description="Deltas against the last passing result of the same project, "
        "branch and kind, and the previous run of the same commit.",
    )
    verdict_changed: bool = Field(
        False, description="The previous run of the same commit had another status."
    )
    fingerprint: str | None = Field(
        None, description="sha256 of the kind, inputs, artifact hashes and policy."
    )
    waiver: Waiver | None = None

    @classmethod
    def from_record(cls, record: GateRecord, now: datetime | None = None) -> GateResult:
        waiver = _waiver(record.waiver, now or datetime.now(UTC))
        status = record.status
        if waiver is not None and not waiver.active:
            status = waiver.original_status
        previous = (record.comparison or {}).get("previous_run") or {}
        return cls(
            id=record.id,
            kind=record.kind,
            status=status,
            project=record.project,
            branch=record.branch,
            commit=record.commit,
            created_at=_utc(record.created_at),
            started_at=_utc(record.started_at),
            finished_at=_utc(record.finished_at),
            policy=record.policy,
            policy_version=record.policy_version,
            metrics=record.metrics,
            checks=[CheckOut(**check) for check in record.checks],
            artifacts={k: ArtifactOut(**v) for k, v in record.artifacts.items()},
            details=record.details,
            error=record.error,
            progress=record.progress,
            comparison=record.comparison,
            verdict_changed=bool(previous.get("verdict_changed")),
            fingerprint=record.fingerprint,
            waiver=waiver,
        )

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


def _utc(value: datetime | None) -> Any:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _waiver(stored: dict[str, Any] | None, now: datetime) -> Waiver | None:
    if not stored:
        return None
    expires = _utc(datetime.fromisoformat(stored["expires_at"]))
    return Waiver(**{**stored, "active": expires > now})


class GatePage(BaseModel):
    """One page of history, newest first."""

    items: list[GateResult]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` to get the next page; null on the last."
    )


class TrendPoint(BaseModel):
    """One result in a metric's time series."""

    id: str
    created_at: UtcDateTime
    commit: str | None
    branch: str | None
    status: str
    value: float | None


class Trend(BaseModel):
    """A metric's values over the newest results, oldest first."""

    project: str
    metric: str
    points: list[TrendPoint]


class _GateLabels(BaseModel):
    project: str = "default"
    branch: str | None = None
    commit: str | None = None
    policy: dict[str, Any] | None = Field(None, description="Threshold overrides.")


class ModelMetricsRequest(ModelMetrics, _GateLabels):
    """Accuracy and resources of a teacher and a student, measured elsewhere."""


class DataMetricsRequest(DataMetrics, _GateLabels):
    """Coverage of an original dataset and its subset, measured elsewhere."""


MetricsRequest = Annotated[
    ModelMetricsRequest | DataMetricsRequest, Field(discriminator="kind")
]


class ProjectPolicyIn(BaseModel):
    """A project's policy: threshold overrides and the keys requests may not change."""

    model_config = ConfigDict(extra="forbid")

    policy: dict[str, Any] = Field(default_factory=dict)
    locked: list[str] = Field(default_factory=list)


class ProjectPolicyOut(BaseModel):
    """The project policy in force, with its version and the merged thresholds."""

    project: str
    version: int | None
    policy: dict[str, Any]
    locked: list[str]
    effective: dict[str, Any]


class WaiverIn(BaseModel):
    """Accept a failed gate until ``expires_at``, for a stated reason."""

    model_config = ConfigDict(extra="forbid")

    reason: StoredText = Field(min_length=3, max_length=2000)
    expires_at: datetime


class TokenIn(BaseModel):
    """A new API token's name, scopes and projects."""

    model_config = ConfigDict(extra="forbid")

    name: StoredText = Field(min_length=1, max_length=200)
    scopes: list[Literal["submit", "read", "admin"]] = Field(min_length=1)
    projects: list[StoredText] = Field(default_factory=lambda: ["*"], min_length=1)


class TokenOut(BaseModel):
    """An API token without its secret."""

    id: str
    name: str
    prefix: str
    scopes: list[str]
    projects: list[str]
    created_at: UtcDateTime
    revoked_at: UtcDateTime | None = None


class TokenCreated(TokenOut):
    """A new API token; ``token`` is shown only in this response."""

    token: str


class WebhookIn(BaseModel):
    """A URL to call, signed with ``secret``, on every terminal result."""

    model_config = ConfigDict(extra="forbid")

    url: StoredText = Field(min_length=8, max_length=2000)
    secret: StoredText = Field(min_length=16, max_length=200)
    projects: list[StoredText] = Field(default_factory=lambda: ["*"], min_length=1)


class WebhookSecretIn(BaseModel):
    """A webhook's new secret, and how long the replaced one stays valid."""

    model_config = ConfigDict(extra="forbid")

    secret: str = Field(min_length=16, max_length=200)
    previous_valid_s: int = Field(
        86_400,
        ge=0,
        le=30 * 86_400,
        description="Seconds deliveries are also signed with the replaced secret.",
    )


class WebhookOut(BaseModel):
    """A registered webhook, without its secrets."""

    id: str
    url: str
    projects: list[str]
    active: bool
    created_at: UtcDateTime
    previous_secret_expires_at: UtcDateTime | None = None


class DeliveryOut(BaseModel):
    """One attempt to deliver a result to a webhook."""

    id: str
    gate_id: str
    attempt: int
    status_code: int | None
    error: str | None
    delivered: bool
    created_at: UtcDateTime
