"""The model gate: measure a distilled ONNX student against its ONNX teacher.

Both models predict the same labelled rows. The gate checks that the student
loses at most ``policy.max_accuracy_loss`` of the teacher's accuracy. For each
resource in ``policy.resources`` (size, latency, memory) it checks that the
student needs at least ``policy.min_reduction`` less than the teacher. It warns
when the teacher has more than ``policy.max_param_ratio`` times the student's
parameters. Each model runs in its own child process (see ``model_probe``), one
after the other.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from app.errors import InputError
from app.evaluation.model_checks import (
    accuracy_loss_check,
    param_ratio_check,
    reduction_check,
)
from app.evaluation.model_probe import (
    SESSION_SETTINGS,
    ProbeResult,
    ProbeSettings,
    run_probe,
)
from app.evaluation.onnx_models import (
    ModelInfo,
    PredictionOutput,
    inspect_model,
    prepare_features,
    select_prediction_output,
)
from app.policy import Policy
from app.results import Check, Evaluation, finite_or_none

ROLES = ("teacher", "student")


@dataclass(frozen=True)
class _Prepared:
    """One model validated against the dataset: its description, output and input."""

    info: ModelInfo
    output: PredictionOutput
    features: np.ndarray


@dataclass(frozen=True)
class _Measured:
    """One model after its run: its description, measurements and correct rows."""

    info: ModelInfo
    output: PredictionOutput
    probe: ProbeResult
    correct: int


def evaluate_model(
    teacher: Path,
    student: Path,
    X: np.ndarray,
    y: np.ndarray,
    *,
    policy: Policy,
    settings: ProbeSettings | None = None,
    timeout_s: float | None = None,
) -> Evaluation:
    """Run teacher and student on the rows ``X`` with labels ``y`` and gate the student.

    ``X`` has shape (rows, features...) and ``y`` one label per row. Both models
    and the dataset are validated before either model runs. ``settings`` sets
    batch size and latency sampling; ``timeout_s``, when given, replaces its
    per-model time limit.

    Raises:
        InputError: a file is not a usable ONNX model, or the dataset does not
            fit a model's input. The error's field is ``teacher``, ``student``
            or ``dataset``.
        EvaluationError: a model process crashed or timed out.
    """
    settings = settings or ProbeSettings()
    if timeout_s is not None:
        settings = replace(settings, timeout_s=timeout_s)
    features = _validate_features(X)
    labels = validate_labels(y, rows=len(features))
    paths = {"teacher": Path(teacher), "student": Path(student)}
    prepared = {role: _prepare(role, paths[role], features) for role in ROLES}
    measured: dict[str, _Measured] = {}
    with tempfile.TemporaryDirectory(prefix="distilgate-model-") as workdir:
        for role in ROLES:
            probe = _probe(role, prepared[role], settings, Path(workdir))
            correct = count_correct(probe.predictions, labels)
            model = prepared[role]
            measured[role] = _Measured(model.info, model.output, probe, correct)
    return _evaluation(
        measured["teacher"], measured["student"], len(labels), policy, settings
    )


def validate_labels(y: np.ndarray, *, rows: int) -> np.ndarray:
    """Return the labels as one column after checking there is one per row.

    Raises:
        InputError: the labels are not one column, their count differs from
            ``rows``, or a label is missing (None or NaN).
    """
    labels = np.asarray(y)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise InputError(
            f"dataset labels must be one column, got shape {list(labels.shape)}; "
            "pass the label column on its own",
            field="dataset",
            value=list(labels.shape),
        )
    if len(labels) != rows:
        raise InputError(
            f"dataset has {rows} feature rows but {len(labels)} labels; pass "
            "exactly one label per row",
            field="dataset",
            value=len(labels),
        )
    missing = _missing(labels)
    if missing.any():
        first = int(np.argmax(missing))
        raise InputError(
            f"dataset label at row {first} (0-based) is missing "
            f"({int(missing.sum())} missing labels); drop unlabelled rows or "
            "fill in their labels",
            field="dataset",
            value=first,
        )
    return labels


def count_correct(predictions: np.ndarray, labels: np.ndarray) -> int:
    """Count rows whose predicted class equals the label.

    Numeric predictions and labels are compared as numbers, so the label 1.0
    matches the class 1. When either side is not numeric, for example labels
    read as text from a CSV file, both sides are compared as text, with
    whole-number floats written without their decimal point.
    """
    if predictions.dtype.kind in "biuf" and labels.dtype.kind in "biuf":
        return int(np.count_nonzero(predictions == labels))
    return int(np.count_nonzero(_as_text(predictions) == _as_text(labels)))


def _as_text(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "f" and bool(np.all(np.floor(values) == values)):
        values = values.astype(np.int64)
    text: np.ndarray = values.astype(str)
    return text


def _missing(labels: np.ndarray) -> np.ndarray:
    if labels.dtype.kind == "f":
        nan: np.ndarray = np.isnan(labels)
        return nan
    if labels.dtype.kind == "O":
        return np.array([_is_missing(label) for label in labels], dtype=bool)
    return np.zeros(len(labels), dtype=bool)


def _is_missing(label: Any) -> bool:
    return label is None or (isinstance(label, float) and math.isnan(label))


def _validate_features(X: np.ndarray) -> np.ndarray:
    features = np.asarray(X)
    if features.ndim < 2:
        raise InputError(
            "dataset features must be an array of rows by columns, got shape "
            f"{list(features.shape)}; pass one row per example",
            field="dataset",
            value=list(features.shape),
        )
    if len(features) == 0:
        raise InputError(
            "dataset has no rows; evaluate on at least one labelled row",
            field="dataset",
            value=0,
        )
    return features


def _prepare(role: str, path: Path, features: np.ndarray) -> _Prepared:
    info = inspect_model(path, field=role)
    output = select_prediction_output(info, field=role)
    return _Prepared(info, output, prepare_features(features, info, role=role))


def _probe(
    role: str, model: _Prepared, settings: ProbeSettings, workdir: Path
) -> ProbeResult:
    batch = model.info.input_shape[0] if model.info.input_shape else None
    fixed_batch = batch if isinstance(batch, int) and batch > 0 else None
    return run_probe(
        role,
        model.info.path,
        model.features,
        output_name=model.output.name,
        output_kind=model.output.kind,
        fixed_batch_rows=fixed_batch,
        settings=settings,
        workdir=workdir,
    )


def _evaluation(
    teacher: _Measured,
    student: _Measured,
    rows: int,
    policy: Policy,
    settings: ProbeSettings,
) -> Evaluation:
    return Evaluation(
        kind="model",
        checks=_checks(teacher, student, rows, policy),
        metrics=_metrics(teacher, student, rows),
        details={
            "settings": _settings_details(teacher, settings),
            "teacher": _model_details(teacher),
            "student": _model_details(student),
        },
    )


def _checks(
    teacher: _Measured, student: _Measured, rows: int, policy: Policy
) -> list[Check]:
    latency, latency_reason = _latencies(teacher, student)
    memory, memory_reason = _memories(teacher, student)
    return [
        accuracy_loss_check(teacher.correct / rows, student.correct / rows, policy),
        reduction_check(
            "size",
            teacher.info.size_bytes,
            student.info.size_bytes,
            policy,
            missing_reason="file sizes are missing",
        ),
        reduction_check("latency", *latency, policy, missing_reason=latency_reason),
        reduction_check("memory", *memory, policy, missing_reason=memory_reason),
        param_ratio_check(teacher.info.parameters, student.info.parameters, policy),
    ]


def _latencies(
    teacher: _Measured, student: _Measured
) -> tuple[tuple[float | None, float | None], str]:
    rows = teacher.probe.latency_batch_rows, student.probe.latency_batch_rows
    if rows[0] != rows[1]:
        reason = (
            f"the teacher was timed on batches of {rows[0]} rows and the student on "
            f"{rows[1]}, because a model declares a fixed batch size"
        )
        return (None, None), reason
    return (teacher.probe.latency_ms, student.probe.latency_ms), ""


def _memories(
    teacher: _Measured, student: _Measured
) -> tuple[tuple[int | None, int | None], str]:
    methods = teacher.probe.memory_method, student.probe.memory_method
    if methods[0] != methods[1]:
        reason = f"memory was measured differently ({methods[0]} and {methods[1]})"
        return (None, None), reason
    reason = "memory could not be measured because /proc/self/status is unreadable"
    return (teacher.probe.memory_bytes, student.probe.memory_bytes), reason


def _metrics(teacher: _Measured, student: _Measured, rows: int) -> dict[str, Any]:
    metrics: dict[str, Any] = {"evaluation_rows": rows}
    for role, measured in (("teacher", teacher), ("student", student)):
        metrics[f"{role}_accuracy"] = finite_or_none(measured.correct / rows)
        metrics[f"{role}_size_bytes"] = measured.info.size_bytes
        metrics[f"{role}_parameters"] = measured.info.parameters
        metrics[f"{role}_latency_ms"] = finite_or_none(measured.probe.latency_ms)
        metrics[f"{role}_memory_bytes"] = measured.probe.memory_bytes
    # Each model stops timing after its own time budget, so the counts can differ.
    metrics["latency_runs"] = min(
        teacher.probe.latency_runs, student.probe.latency_runs
    )
    return metrics


def _settings_details(teacher: _Measured, settings: ProbeSettings) -> dict[str, Any]:
    return {
        **SESSION_SETTINGS,
        "onnxruntime_version": teacher.probe.onnxruntime_version,
        "memory_method": teacher.probe.memory_method,
        "prediction_batch_rows": settings.batch_rows,
        "latency_warmup_runs": settings.warmup_runs,
        "latency_min_runs": settings.min_latency_runs,
        "latency_max_runs": settings.max_latency_runs,
        "latency_budget_s": settings.latency_budget_s,
        "latency_statistic": "median wall time of one run of the prediction output",
        "timeout_s": settings.timeout_s,
    }


def _model_details(measured: _Measured) -> dict[str, Any]:
    info = measured.info
    return {
        "input_name": info.input_name,
        "input_shape": info.input_shape,
        "input_type": info.input_type,
        "output_used": measured.output.name,
        "output_kind": measured.output.kind,
        "outputs": [
            {"name": output.name, "type": output.type_text} for output in info.outputs
        ],
        "opset": info.opset,
        "ir_version": info.ir_version,
        "latency_runs": measured.probe.latency_runs,
        "latency_batch_rows": measured.probe.latency_batch_rows,
    }
