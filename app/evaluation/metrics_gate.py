"""Gates on numbers measured outside DistilGate (the metrics-only gate)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.evaluation.model_checks import (
    accuracy_loss_check,
    param_ratio_check,
    reduction_check,
)
from app.evaluation.model_stats import wilson_loss_interval
from app.policy import Policy
from app.results import (
    Check,
    Evaluation,
    compare,
    compare_interval,
    percent,
    points,
)

# Strict: a measurement must be a JSON number, never a string or a boolean.
_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


class ModelMeasurement(BaseModel):
    """Numbers a CI job measured for one model. Left-out resources are not checked."""

    model_config = _STRICT

    accuracy: float = Field(ge=0.0, le=1.0, description="Share of correct rows.")
    latency_ms: float | None = Field(None, ge=0.0, description="Median latency, ms.")
    size_bytes: int | None = Field(None, ge=0, description="Model size in bytes.")
    memory_bytes: int | None = Field(None, ge=0, description="Peak memory in bytes.")
    parameters: int | None = Field(None, ge=0, description="Parameter count.")
    samples: int | None = Field(
        None,
        ge=1,
        description="Evaluation rows behind the accuracy; enables its interval.",
    )


class DataMeasurement(BaseModel):
    """Numbers a CI job measured for one dataset."""

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

    @field_validator("original")
    @classmethod
    def _original_covers_something(cls, value: DataMeasurement) -> DataMeasurement:
        if value.coverage == 0:
            raise ValueError(
                "original coverage is 0, so retention (subset / original) is "
                "undefined; report the original run's coverage"
            )
        return value


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
    metrics: dict[str, Any] = {
        "original_coverage": original,
        "subset_coverage": subset,
        "self_reported": True,
    }
    # DataMetrics rejects an original coverage of 0, so the ratio is defined.
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
    checks: list[Check] = [_accuracy_check(teacher, student, policy)]
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
    interval = checks[0].interval
    details = {}
    if interval is not None:
        details["accuracy_loss"] = {
            "interval": interval,
            "confidence": 0.95,
            "method": "Wilson score interval per accuracy, combined with "
            "Newcombe's method; it assumes independent samples, so it is wider "
            "than a paired interval on the same rows",
        }
    return Evaluation(kind="model", checks=checks, metrics=metrics, details=details)


def _accuracy_check(
    teacher: ModelMeasurement, student: ModelMeasurement, policy: Policy
) -> Check:
    """Check the reported accuracy loss, with an interval when both counts are given.

    Without ``samples`` for both models, or with different counts, the check
    has no interval. The relative loss's interval divides the absolute one by
    the teacher's accuracy, treating that accuracy as exact.
    """
    samples = {teacher.samples, student.samples}
    relative = policy.accuracy_loss_mode == "relative" and teacher.accuracy > 0
    if (None in samples or len(samples) != 1) and not relative:
        return accuracy_loss_check(teacher.accuracy, student.accuracy, policy)
    if None in samples or len(samples) != 1:
        loss = (teacher.accuracy - student.accuracy) / teacher.accuracy
        return compare(
            "accuracy_loss",
            loss,
            policy.max_accuracy_loss,
            "<=",
            unit="fraction",
            describe=f"relative accuracy loss {percent(loss)} (teacher "
            f"{percent(teacher.accuracy)} -> student {percent(student.accuracy)})",
            bound=percent(policy.max_accuracy_loss),
        )
    count = teacher.samples
    assert count is not None
    low, high = wilson_loss_interval(teacher.accuracy, student.accuracy, count)
    loss = teacher.accuracy - student.accuracy
    accuracies = (
        f"teacher {percent(teacher.accuracy)} -> student {percent(student.accuracy)}, "
        f"{count} rows"
    )
    if relative:
        scale = teacher.accuracy
        value, low, high = loss / scale, low / scale, high / scale
        describe = f"relative accuracy loss {percent(value)} ({accuracies})"
        show = percent
    else:
        value, describe, show = (
            loss,
            f"accuracy loss {points(loss)} ({accuracies})",
            points,
        )
    return compare_interval(
        "accuracy_loss",
        value,
        (low, high),
        policy.max_accuracy_loss,
        "<=",
        unit="fraction",
        describe=describe,
        bound=show(policy.max_accuracy_loss),
        shown_interval=f"[{show(low)}, {show(high)}]",
    )
