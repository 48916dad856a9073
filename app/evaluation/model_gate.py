"""The model gate: measure a distilled student against its teacher.

Both models predict the same labelled rows. The gate checks that the student
loses at most ``policy.max_accuracy_loss`` of the teacher's accuracy. For each
resource in ``policy.resources`` (size, latency, memory) it checks that the
student needs at least ``policy.min_reduction`` less than the teacher. It warns
when the teacher has more than ``policy.max_param_ratio`` times the student's
parameters. Accuracy loss and latency reduction carry 95% intervals: a check
whose point estimate passes while its interval crosses the threshold is
``inconclusive``. See ``model_measure`` for how the models are run.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from app.errors import DistilGateError, InputError
from app.evaluation.model_checks import (
    latency_interval_check,
    param_ratio_check,
    reduction_check,
)
from app.evaluation.model_forms import ArchiveLimits
from app.evaluation.model_measure import (
    ROLES,
    Measurement,
    ModelPlan,
    measure,
    plan_model,
)
from app.evaluation.model_predictions import matches
from app.evaluation.model_probe import ProbeSettings, started_children
from app.evaluation.model_quality import Quality, assess_quality
from app.evaluation.model_report import (
    environment,
    latency_summary,
    model_details,
    parameters,
    protocol,
    throughput_summary,
)
from app.evaluation.model_spares import SPARES
from app.evaluation.model_stats import median_reduction_estimate, samples_needed
from app.evaluation.model_tasks import check_task_fits
from app.policy import Policy
from app.results import Check, Evaluation, finite_or_none


def evaluate_model(
    teacher: Path,
    student: Path,
    X: np.ndarray,
    y: np.ndarray,
    *,
    policy: Policy,
    settings: ProbeSettings | None = None,
    timeout_s: float | None = None,
    allow_torchscript: bool = False,
    archive_limits: ArchiveLimits | None = None,
    filenames: Mapping[str, str | None] | None = None,
) -> Evaluation:
    """Run teacher and student on the rows ``X`` with labels ``y`` and gate the student.

    ``X`` has shape (rows, features...) and ``y`` one label (or regression
    target) per row. A model is an ONNX file, a .zip of an ONNX file with its
    external data, or, with ``allow_torchscript``, a TorchScript archive.
    TorchScript runs code from the file, so enable it for trusted uploads only.
    Both models and the dataset are validated before either model runs.
    ``settings`` sets batch sizes, timing rounds and child limits;
    ``timeout_s``, when given, replaces its per-child time limit.
    ``filenames`` maps ``teacher`` and ``student`` to the client's file names,
    which errors show in place of the stored files' names.

    Raises:
        InputError: a file is not a usable model, the dataset does not fit a
            model's input, or a model's declared output does not fit the task.
            The error's field is ``teacher``, ``student`` or ``dataset``.
        EvaluationError: a model process crashed, ran out of memory or timed
            out.
    """
    settings = settings or ProbeSettings()
    if timeout_s is not None:
        settings = replace(settings, timeout_s=timeout_s)
    features = _validate_features(X)
    labels = validate_labels(y, rows=len(features))
    paths = {"teacher": Path(teacher), "student": Path(student)}
    with (
        client_names(paths, filenames),
        tempfile.TemporaryDirectory(prefix="distilgate-model-") as folder,
        # The children import their runtimes while this process inspects the
        # models. They run nothing until both models pass inspection.
        started_children(
            ROLES,
            settings,
            Path(folder),
            spares=SPARES if settings.spare_children else None,
        ) as children,
    ):
        workdir = Path(folder)
        plans = {
            role: plan_model(
                role,
                paths[role],
                features,
                policy,
                workdir,
                allow_torchscript=allow_torchscript,
                archive_limits=archive_limits,
            )
            for role in ROLES
        }
        check_task_fits(list(plans.values()), labels, policy)
        measurement = measure(plans, children, settings, workdir)
        # Scored before the children stop, so that the spare children started
        # then do not compete with this work for the cores.
        quality = assess_quality(
            measurement.outputs["teacher"],
            measurement.outputs["student"],
            labels,
            policy,
        )
        return _evaluation(plans, measurement, quality, policy, settings)


def validate_model_inputs(
    teacher: Path,
    student: Path,
    X: np.ndarray,
    y: np.ndarray,
    *,
    policy: Policy,
    allow_torchscript: bool = False,
    archive_limits: ArchiveLimits | None = None,
    filenames: Mapping[str, str | None] | None = None,
) -> None:
    """Check both models and the dataset as ``evaluate_model`` does, running nothing.

    Raises:
        InputError: as ``evaluate_model`` does for unusable models or data.
    """
    features = _validate_features(X)
    labels = validate_labels(y, rows=len(features))
    paths = {"teacher": Path(teacher), "student": Path(student)}
    with (
        client_names(paths, filenames),
        tempfile.TemporaryDirectory(prefix="distilgate-check-") as workdir,
    ):
        plans = [
            plan_model(
                role,
                path,
                features[:1],
                policy,
                Path(workdir),
                allow_torchscript=allow_torchscript,
                archive_limits=archive_limits,
            )
            for role, path in paths.items()
        ]
        check_task_fits(plans, labels, policy)


@contextmanager
def client_names(
    paths: Mapping[str, Path], filenames: Mapping[str, str | None] | None
) -> Iterator[None]:
    """Show the client's file names in errors raised inside the block.

    The service stores uploads under content hashes, so an error that names
    ``path.name`` would show a hash the client never chose. Each error's
    message and value get the matching client file name instead.
    """
    try:
        yield
    except DistilGateError as exc:
        for role, path in paths.items():
            filename = (filenames or {}).get(role)
            if filename and filename != path.name:
                _rename(exc, path.name, filename)
        raise


def _rename(exc: DistilGateError, stored: str, filename: str) -> None:
    message = exc.message.replace(repr(stored), repr(filename))
    exc.message = message.replace(stored, filename)
    exc.args = (exc.message,)
    if exc.value == stored:
        exc.value = filename


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
    """Count rows whose predicted class equals the label (see ``matches``)."""
    return int(np.count_nonzero(matches(predictions, labels)))


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
    if features.dtype.kind in "fc" and not bool(np.isfinite(features).all()):
        bad = int(np.count_nonzero(~np.isfinite(features)))
        raise InputError(
            f"dataset features contain {bad} NaN or infinite values; drop or "
            "impute them before gating",
            field="dataset",
            value=bad,
        )
    return features


def _evaluation(
    plans: dict[str, ModelPlan],
    measurement: Measurement,
    quality: Quality,
    policy: Policy,
    settings: ProbeSettings,
) -> Evaluation:
    latency_check, latency_details = _latency(measurement, policy)
    checks = [
        *quality.checks,
        reduction_check(
            "size",
            plans["teacher"].info.size_bytes,
            plans["student"].info.size_bytes,
            policy,
            missing_reason="file sizes are missing",
        ),
        latency_check,
        _memory_check(measurement, policy),
        param_ratio_check(
            parameters(plans["teacher"], measurement),
            parameters(plans["student"], measurement),
            policy,
        ),
    ]
    details = {
        "settings": protocol(settings),
        "environment": environment(measurement),
        "latency_reduction": latency_details,
        **quality.details,
    }
    for role in ROLES:
        details[role] = model_details(plans[role], measurement)
    return Evaluation(
        kind="model",
        checks=checks,
        metrics=_metrics(plans, measurement, quality),
        details=details,
    )


def _latency(measurement: Measurement, policy: Policy) -> tuple[Check, dict[str, Any]]:
    timing = measurement.timing
    rows = timing.latency_rows
    medians = {role: latency_summary(timing.latency[role])["p50_ms"] for role in ROLES}
    if rows["teacher"] != rows["student"]:
        reason = (
            f"the teacher was timed on batches of {rows['teacher']} rows and the "
            f"student on {rows['student']}, because a model declares a fixed "
            "batch size"
        )
        check = reduction_check("latency", None, None, policy, missing_reason=reason)
        return check, {"not_computed": reason}
    estimate = median_reduction_estimate(
        timing.latency["teacher"], timing.latency["student"]
    )
    rounds = int(timing.latency["teacher"].shape[0])
    details = {
        "interval": [estimate.low, estimate.high],
        "standard_error": estimate.standard_error,
        "rounds": rounds,
        "rounds_needed_for_decisive_verdict": samples_needed(
            estimate, rounds, policy.min_reduction
        ),
    }
    check = latency_interval_check(
        medians["teacher"], medians["student"], estimate, policy
    )
    return check, details


def _memory_check(measurement: Measurement, policy: Policy) -> Check:
    teacher = measurement.memory["teacher"]["steady"]
    student = measurement.memory["student"]["steady"]
    return reduction_check(
        "memory",
        teacher,
        student,
        policy,
        missing_reason="memory could not be measured because /proc/self/status "
        "is unreadable",
    )


def _metrics(
    plans: dict[str, ModelPlan], measurement: Measurement, quality: Quality
) -> dict[str, Any]:
    timing = measurement.timing
    metrics: dict[str, Any] = {"evaluation_rows": len(plans["teacher"].features)}
    for role in ROLES:
        plan = plans[role]
        latency = latency_summary(timing.latency[role])
        throughput = throughput_summary(
            timing.throughput[role], timing.throughput_rows[role]
        )
        metrics[f"{role}_size_bytes"] = plan.info.size_bytes
        metrics[f"{role}_parameters"] = parameters(plan, measurement)
        metrics[f"{role}_flops_per_row"] = plan.info.flops
        metrics[f"{role}_latency_ms"] = finite_or_none(latency["p50_ms"])
        metrics[f"{role}_latency_p90_ms"] = finite_or_none(latency["p90_ms"])
        metrics[f"{role}_throughput_rows_per_s"] = finite_or_none(
            throughput["rows_per_s"]
        )
        metrics[f"{role}_memory_bytes"] = measurement.memory[role]["steady"]
    metrics["latency_runs"] = int(timing.latency["teacher"].size)
    metrics.update({key: _json_number(value) for key, value in quality.metrics.items()})
    return metrics


def _json_number(value: Any) -> Any:
    return finite_or_none(value) if isinstance(value, float) else value
