"""Turn a stored gate request into a ready-to-run evaluation.

``prepare`` reads the uploads and checks everything that can be checked cheaply,
so bad input is rejected while the client still waits for the request. It
returns a runner that does the expensive part later, in a background job. The
module imports neither the web framework nor the database layer, so the service,
the CLI and a worker process prepare gates the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.errors import InputError
from app.evaluation.cleaning import DEFAULT_RULES, ListedRows
from app.evaluation.code_coverage import coverage_retention, read_coverage
from app.evaluation.coercion import coerce_numeric_columns
from app.evaluation.data_gate import evaluate_data
from app.evaluation.image_gate import (
    check_image_archive,
    evaluate_images,
    validate_image_request,
)
from app.evaluation.images import read_images
from app.evaluation.metrics_gate import DataMetrics, ModelMetrics, evaluate_metrics
from app.evaluation.model_gate import evaluate_model, validate_model_inputs
from app.evaluation.predictions_gate import evaluate_predictions, read_predictions
from app.evaluation.progress import ProgressFn
from app.evaluation.readers import (
    FORMAT_NAMES,
    detect_format,
    read_labelled,
    read_table,
    reading_notes,
)
from app.evaluation.required import validate_rules
from app.evaluation.text import text_columns, validate_text_columns
from app.evaluation.validation import scenario_columns, validate_tables
from app.policy import Policy
from app.results import Evaluation

Runner = Callable[[], Evaluation]

UPLOAD_ROLES: dict[str, tuple[str, ...]] = {
    "model": ("teacher", "student", "dataset"),
    "data": ("original", "subset"),
    "predictions": ("teacher_predictions", "student_predictions"),
}
OPTIONAL_ROLES: dict[str, tuple[str, ...]] = {"predictions": ("labels",)}
DATA_PAIRS = (("original", "subset"), ("original_coverage", "subset_coverage"))


@dataclass(frozen=True)
class ArtifactRef:
    """A stored upload: where its bytes are and the file name the client sent."""

    path: Path
    filename: str | None


def prepare(
    kind: str,
    request: Mapping[str, Any],
    artifacts: Mapping[str, ArtifactRef],
    policy: Policy,
    *,
    model_timeout_s: float,
    allow_torchscript: bool = False,
    progress: ProgressFn | None = None,
) -> Runner:
    """Validate a gate's inputs and return the function that evaluates it.

    ``request`` contains the non-file inputs: ``source`` (``upload``,
    ``predictions`` or ``metrics``), and ``label_column``, ``scenario_columns``
    or ``measured``. TorchScript models run only with ``allow_torchscript``.
    A data gate on tables or images reports its stages to ``progress``.

    Raises:
        InputError: an input is missing, unreadable or inconsistent.
    """
    source = request.get("source")
    if source == "metrics":
        return _prepare_metrics(kind, request, policy)
    if source == "predictions":
        return _prepare_predictions(artifacts, policy)
    if kind == "model":
        return _prepare_model(
            request, artifacts, policy, model_timeout_s, allow_torchscript
        )
    return _prepare_data(request, artifacts, policy, progress)


def _prepare_metrics(kind: str, request: Mapping[str, Any], policy: Policy) -> Runner:
    model_type = ModelMetrics if kind == "model" else DataMetrics
    measured = model_type.model_validate(request["measured"])
    return lambda: evaluate_metrics(measured, policy)


def _prepare_model(
    request: Mapping[str, Any],
    artifacts: Mapping[str, ArtifactRef],
    policy: Policy,
    timeout_s: float,
    allow_torchscript: bool,
) -> Runner:
    dataset = artifacts["dataset"]
    features, labels = read_labelled(
        dataset.path,
        field="dataset",
        label_column=request.get("label_column") or "label",
        filename=dataset.filename,
    )
    teacher, student = artifacts["teacher"].path, artifacts["student"].path
    filenames = {role: artifacts[role].filename for role in ("teacher", "student")}
    validate_model_inputs(
        teacher,
        student,
        features,
        labels,
        policy=policy,
        allow_torchscript=allow_torchscript,
        filenames=filenames,
    )

    def run() -> Evaluation:
        return evaluate_model(
            teacher,
            student,
            features,
            labels,
            policy=policy,
            timeout_s=timeout_s,
            allow_torchscript=allow_torchscript,
            filenames=filenames,
        )

    return run


def _prepare_predictions(
    artifacts: Mapping[str, ArtifactRef], policy: Policy
) -> Runner:
    arrays = {
        role: read_predictions(ref.path, field=role, filename=ref.filename)
        for role, ref in artifacts.items()
    }
    # Comparing predictions is cheap, so it runs now and bad input becomes a
    # 4xx response instead of an error result.
    evaluation = evaluate_predictions(
        arrays["teacher_predictions"],
        arrays["student_predictions"],
        arrays.get("labels"),
        policy=policy,
    )
    return lambda: evaluation


def data_roles(present: Collection[str]) -> tuple[str, ...]:
    """Return the uploads a data gate stores: datasets, coverage reports, or both.

    Raises:
        InputError: neither pair was sent.
    """
    pairs = [pair for pair in DATA_PAIRS if any(role in present for role in pair)]
    if not pairs:
        raise InputError(
            "missing file 'original'; send original and subset, or "
            "original_coverage and subset_coverage, or all four",
            field="original",
        )
    return tuple(role for pair in pairs for role in pair)


def _prepare_data(
    request: Mapping[str, Any],
    artifacts: Mapping[str, ArtifactRef],
    policy: Policy,
    progress: ProgressFn | None,
) -> Runner:
    runners = []
    if "original" in artifacts:
        runners.append(_prepare_tables(request, artifacts, policy, progress))
    if "original_coverage" in artifacts:
        runners.append(_prepare_coverage(artifacts, policy))
    return lambda: merge_evaluations([run() for run in runners])


def _prepare_tables(
    request: Mapping[str, Any],
    artifacts: Mapping[str, ArtifactRef],
    policy: Policy,
    progress: ProgressFn | None,
) -> Runner:
    formats = {
        role: detect_format(ref.path, field=role, filename=ref.filename)
        for role, ref in artifacts.items()
        if role in ("original", "subset")
    }
    if "zip" in formats.values():
        return _prepare_images(request, artifacts, policy, formats, progress)
    tables = {
        role: read_table(
            artifacts[role].path, field=role, filename=artifacts[role].filename
        )
        for role in ("original", "subset")
    }
    coerced = coerce_numeric_columns(
        tables["original"],
        tables["subset"],
        text_numbers=(formats["original"] == "csv", formats["subset"] == "csv"),
    )
    tables = {"original": coerced.original, "subset": coerced.subset}
    row_rules = (*DEFAULT_RULES, ListedRows("unparsed_number", coerced.invalid_rows()))
    columns = list(request.get("scenario_columns") or [])
    label_column = request.get("label_column") or None
    original = tables["original"]
    validate_tables(
        original,
        tables["subset"],
        scenario_columns(columns, label_column),
        label_column,
    )
    validate_rules(policy.required_scenarios, list(original.columns))
    validate_text_columns(
        text_columns(policy), original, scenario_columns(columns, label_column)
    )

    def run() -> Evaluation:
        evaluation = evaluate_data(
            tables["original"],
            tables["subset"],
            policy=policy,
            scenario_columns=columns,
            label_column=label_column,
            row_rules=row_rules,
            progress=progress,
        )
        add_reading_notes(evaluation, tables)
        return evaluation

    return run


def _prepare_images(
    request: Mapping[str, Any],
    artifacts: Mapping[str, ArtifactRef],
    policy: Policy,
    formats: Mapping[str, str],
    progress: ProgressFn | None,
) -> Runner:
    """Check two image archives now and decode their images in the runner."""
    for role, fmt in formats.items():
        if fmt != "zip":
            raise InputError(
                f"{role} is {FORMAT_NAMES[fmt]} but the other upload is a zip "
                "archive of images; send both original and subset as image "
                "archives, or both as tables",
                field=role,
                value=artifacts[role].filename,
            )
    columns = list(request.get("scenario_columns") or [])
    label_column = request.get("label_column") or None
    validate_image_request(columns, label_column, policy)
    for role in ("original", "subset"):
        ref = artifacts[role]
        check_image_archive(ref.path, field=role, filename=ref.filename)

    def run() -> Evaluation:
        images = {
            role: read_images(
                artifacts[role].path, field=role, filename=artifacts[role].filename
            )
            for role in ("original", "subset")
        }
        return evaluate_images(
            images["original"],
            images["subset"],
            policy=policy,
            scenario_columns=columns,
            label_column=label_column,
            progress=progress,
        )

    return run


def add_reading_notes(evaluation: Evaluation, tables: Mapping[str, Any]) -> None:
    """Record in ``details.reader_notes`` what the readers left out of each table."""
    notes = {role: reading_notes(table) for role, table in tables.items()}
    notes = {role: found for role, found in notes.items() if found}
    if notes:
        evaluation.details["reader_notes"] = notes


def _prepare_coverage(artifacts: Mapping[str, ArtifactRef], policy: Policy) -> Runner:
    reports = {
        role: read_coverage(
            artifacts[role].path, field=role, filename=artifacts[role].filename
        )
        for role in ("original_coverage", "subset_coverage")
    }

    def run() -> Evaluation:
        outcome = coverage_retention(
            reports["original_coverage"], reports["subset_coverage"], policy=policy
        )
        return Evaluation(
            kind="data",
            checks=outcome.checks,
            metrics=outcome.metrics,
            details={"code_coverage": outcome.details},
        )

    return run


def merge_evaluations(parts: list[Evaluation]) -> Evaluation:
    """Join the checks, metrics and details of evaluations of one gate."""
    merged = Evaluation(kind=parts[0].kind, checks=[], metrics={}, details={})
    for part in parts:
        merged.checks.extend(part.checks)
        merged.metrics.update(part.metrics)
        merged.details.update(part.details)
    return merged
