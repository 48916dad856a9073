import pytest
from pydantic import ValidationError

from app.evaluation.metrics_gate import DataMetrics, ModelMetrics, evaluate_metrics
from app.policy import Policy


def model_metrics(**student):
    teacher = {
        "accuracy": 0.98,
        "latency_ms": 1500,
        "size_bytes": 200_000_000,
        "memory_bytes": 200_000_000,
    }
    return ModelMetrics(
        kind="model", teacher=teacher, student={"accuracy": 0.965, **student}
    )


def by_name(evaluation):
    return {check.name: check for check in evaluation.checks}


def test_metrics_model_gate_passes_with_all_resources():
    measured = model_metrics(
        latency_ms=300, size_bytes=20_000_000, memory_bytes=50_000_000
    )
    evaluation = evaluate_metrics(measured, Policy())
    checks = by_name(evaluation)
    assert evaluation.status == "passed"
    assert checks["latency_reduction"].value == pytest.approx(0.8)
    assert checks["memory_reduction"].value == pytest.approx(0.75)
    assert evaluation.metrics["self_reported"] is True


def test_metrics_model_gate_names_unchecked_resource():
    evaluation = evaluate_metrics(model_metrics(size_bytes=10), Policy())
    checks = by_name(evaluation)
    assert checks["latency_reduction"].status == "skipped"
    assert checks["latency_reduction"].message == (
        "latency not checked: latency_ms was not reported for both models"
    )
    assert checks["size_reduction"].status == "passed"


def test_metrics_model_gate_fails_on_small_reduction():
    evaluation = evaluate_metrics(model_metrics(size_bytes=100_000_000), Policy())
    assert evaluation.status == "failed"
    assert by_name(evaluation)["size_reduction"].status == "failed"


def test_metrics_data_gate_retention_is_subset_over_original():
    measured = DataMetrics(
        kind="data", original={"coverage": 0.90}, subset={"coverage": 0.87}
    )
    evaluation = evaluate_metrics(measured, Policy())
    check = by_name(evaluation)["coverage_retention"]
    assert check.value == pytest.approx(0.87 / 0.90)
    assert check.status == "passed"
    assert check.message == (
        "coverage retention 96.7% (subset 87.0% / original 90.0%) >= 95.0%"
    )


def test_metrics_data_gate_rejects_zero_original():
    with pytest.raises(ValidationError, match="retention .* is undefined"):
        DataMetrics(kind="data", original={"coverage": 0.0}, subset={"coverage": 0.0})


def test_metrics_data_gate_is_self_reported():
    measured = DataMetrics(
        kind="data", original={"coverage": 0.9}, subset={"coverage": 0.9}
    )
    assert evaluate_metrics(measured, Policy()).metrics["self_reported"] is True


@pytest.mark.parametrize(
    ("student", "pattern"),
    [
        ({"accuracy": 96}, "less than or equal to 1"),
        ({"accuracy": float("nan")}, "finite number"),
        ({"accuracy": 0.9, "size": 1}, "Extra inputs are not permitted"),
    ],
)
def test_metrics_model_rejects_bad_measurements(student, pattern):
    with pytest.raises(ValidationError, match=pattern):
        ModelMetrics(kind="model", teacher={"accuracy": 0.9}, student=student)
