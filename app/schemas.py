"""Request and response bodies of the REST API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from app.evaluation.metrics_gate import DataMetrics, ModelMetrics
from app.storage.models import GateRecord

GateKind = Literal["model", "data"]
GateStatus = Literal["passed", "failed", "error"]


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
    status: Literal["passed", "failed", "warning", "skipped"]
    advisory: bool
    message: str


class ArtifactOut(BaseModel):
    """An uploaded file as the server stored it."""

    sha256: str
    size_bytes: int
    filename: str | None


class GateResult(BaseModel):
    """A stored gate run with its verdict and every measured value."""

    id: str
    kind: GateKind
    status: GateStatus
    project: str
    branch: str | None
    commit: str | None
    created_at: datetime
    policy: dict[str, Any]
    metrics: dict[str, Any]
    checks: list[CheckOut]
    artifacts: dict[str, ArtifactOut]
    details: dict[str, Any]
    error: str | None = Field(None, description="Why an `error` gate could not finish.")

    @classmethod
    def from_record(cls, record: GateRecord) -> GateResult:
        created = record.created_at
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        return cls(
            id=record.id,
            kind=record.kind,
            status=record.status,
            project=record.project,
            branch=record.branch,
            commit=record.commit,
            created_at=created,
            policy=record.policy,
            metrics=record.metrics,
            checks=[CheckOut(**check) for check in record.checks],
            artifacts={k: ArtifactOut(**v) for k, v in record.artifacts.items()},
            details=record.details,
            error=record.error,
        )


class GatePage(BaseModel):
    """One page of history, newest first."""

    items: list[GateResult]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` to get the next page; null on the last."
    )


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
