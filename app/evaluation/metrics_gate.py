"""Gates on numbers measured outside DistilGate (the metrics-only gate)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.evaluation.model_checks import (
    accuracy_loss_check,
    param_ratio_check,
    reduction_check,
)
from app.policy import Policy
from app.results import Check, Evaluation, compare, percent, skipped

_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)


class ModelMeasurement(BaseModel):
    """What a CI job measured for one model. Left-out resources are not checked."""

    model_config = _STRICT

    accuracy: float = Field(ge=0.0, le=1.0, description="Share of correct rows.")
    latency_ms: float | None = Field(None, ge=0.0, description="Median latency, ms.")
    size_bytes: int | None = Field(None, ge=0, description="Model size in bytes.")
    memory_bytes: int | None = Field(None, ge=0, description="Peak memory in bytes.")
    parameters: int | None = Field(None, ge=0, description="Parameter count.")


class DataMeasurement(BaseModel):
    """What a CI job measured for one dataset."""

    model_config = _STRICT

    coverage: float = Field(ge=0.0, le=1.0, description="Coverage as a fraction.")


class ModelMetrics(BaseModel):
    """Teacher and student measurements of a model gate."""

    model_config = _STRICT

    kind: Literal["model"]
    teacher: ModelMeasurement
    student: ModelMeasurement


class DataMetrics(BaseModel):
    """Original and subset measurements of a data gate."""

    model_config = _STRICT

    kind: Literal["data"]
    original: DataMeasurement
    subset: DataMeasurement


def evaluate_metrics(
    measured: ModelMetrics | DataMetrics, policy: Policy
) -> Evaluation:
    """Apply ``policy`` to reported numbers and return the checks."""
    if isinstance(measured, ModelMetrics):
        return _model_evaluation(measured, policy)
    return _data_evaluation(measured, policy)


def _data_evaluation(measured: DataMetrics, policy: Policy) -> Evaluation:
    original = measured.original.coverage
    subset = measured.subset.coverage
    metrics = {"original_coverage": original, "subset_coverage": subset}
    if original == 0.0:
        check = skipped(
            "coverage_retention",
            comparator=">=",
            unit="fraction",
            threshold=policy.min_coverage,
            reason="coverage retention not applicable: the original coverage is 0",
        )
        return Evaluation(kind="data", checks=[check], metrics=metrics)
    retention = subset / original
    metrics["coverage_retention"] = retention
    check = compare(
        "coverage_retention",
        retention,
        policy.min_coverage,
        ">=",
        unit="fraction",
        describe=(
            f"coverage retention {percent(retention)} (subset "
            f"{percent(subset)} / original {percent(original)})"
        ),
        bound=percent(policy.min_coverage),
    )
    return Evaluation(kind="data", checks=[check], metrics=metrics)


def _model_evaluation(measured: ModelMetrics, policy: Policy) -> Evaluation:
    teacher, student = measured.teacher, measured.student
    checks: list[Check] = [
        accuracy_loss_check(teacher.accuracy, student.accuracy, policy)
    ]
    for resource, attribute in (
        ("size", "size_bytes"),
        ("latency", "latency_ms"),
        ("memory", "memory_bytes"),
    ):
        checks.append(
            reduction_check(
                resource,
                getattr(teacher, attribute),
                getattr(student, attribute),
                policy,
                missing_reason=f"{attribute} was not reported for both models",
            )
        )
    checks.append(param_ratio_check(teacher.parameters, student.parameters, policy))
    metrics = {
        f"{role}_{key}": value
        for role, values in (("teacher", teacher), ("student", student))
        for key, value in values.model_dump().items()
        if value is not None
    }
    metrics["self_reported"] = True
    return Evaluation(kind="model", checks=checks, metrics=metrics)
