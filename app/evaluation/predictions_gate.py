"""The predictions-only model gate: compare outputs that a CI job saved.

The job runs teacher and student itself and uploads what they predicted for the
same rows: class scores (a 2-D array, one column per class) or labels (a 1-D
array). Without labels the gate still reports agreement and divergences, and
skips the accuracy checks with the reason. Nothing is measured about size,
latency or memory, so those checks are skipped too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app.errors import InputError
from app.evaluation.model_checks import reduction_check
from app.evaluation.model_gate import validate_labels
from app.evaluation.model_predictions import Outputs
from app.evaluation.model_quality import assess_quality
from app.evaluation.numpy_files import upload_name
from app.evaluation.readers import read_table
from app.policy import Policy
from app.results import Evaluation, finite_or_none

_RESOURCES = ("size", "latency", "memory")


def read_predictions(path: Path, *, field: str, filename: str | None) -> np.ndarray:
    """Read saved predictions: a ``.npy``, ``.npz``, CSV, JSON Lines or Parquet file.

    One column gives a 1-D array (labels, or one score per row); several
    columns give a 2-D float64 score matrix whose columns are the classes in
    order. A ``.npz`` file holds one array, or the predictions as ``X``.

    Raises:
        InputError: the file cannot be read, or a score column is not numeric.
        UnsupportedFormatError: the format is not supported.
    """
    table = read_table(path, field=field, filename=filename)
    if table.shape[1] == 1:
        column: np.ndarray = table.iloc[:, 0].to_numpy()
        return column
    text = [name for name in table.columns if table[name].dtype.kind not in "biuf"]
    if text:
        raise InputError(
            f"{upload_name(field, filename)} has {table.shape[1]} columns but "
            f"columns {text[:10]} are not numbers; save class scores as one numeric "
            "column per class, or labels as a single column",
            field=field,
            value=text[:10],
        )
    matrix: np.ndarray = table.to_numpy(dtype=np.float64)
    return matrix


def evaluate_predictions(
    teacher_predictions: np.ndarray,
    student_predictions: np.ndarray,
    labels: np.ndarray | None,
    *,
    policy: Policy,
) -> Evaluation:
    """Gate a student on saved predictions of both models for the same rows.

    Each prediction array is scores [rows, classes], one score or value per row
    [rows] (floats with a fractional part), or labels [rows] (integers, text,
    or whole-number floats). ``labels``, if given, has one label per row.

    Raises:
        InputError: an array is empty, has more than two dimensions, contains a
            non-finite score, or the row counts differ.
    """
    teacher = _outputs(np.asarray(teacher_predictions), "teacher")
    student = _outputs(np.asarray(student_predictions), "student")
    rows = _rows(teacher)
    if _rows(student) != rows:
        raise InputError(
            f"teacher predictions have {rows} rows but student predictions "
            f"{_rows(student)}; save both models' predictions for the same rows",
            field="student",
            value=_rows(student),
        )
    checked = None if labels is None else validate_labels(labels, rows=rows)
    quality = assess_quality(teacher, student, checked, policy)
    checks = list(quality.checks)
    for resource in _RESOURCES:
        checks.append(
            reduction_check(
                resource,
                None,
                None,
                policy,
                missing_reason="the gate received predictions only",
            )
        )
    metrics = {
        key: finite_or_none(value) if isinstance(value, float) else value
        for key, value in quality.metrics.items()
    }
    metrics.update(evaluation_rows=rows, predictions_only=True)
    return Evaluation(
        kind="model", checks=checks, metrics=metrics, details=quality.details
    )


def _outputs(predictions: np.ndarray, role: str) -> Outputs:
    if predictions.ndim not in (1, 2) or len(predictions) == 0:
        raise InputError(
            f"{role} predictions have shape {list(predictions.shape)}; expected "
            "scores [rows, classes] or one label or score per row [rows]",
            field=role,
            value=list(predictions.shape),
        )
    if predictions.ndim == 2 and predictions.shape[1] == 1:
        predictions = predictions[:, 0]
    if predictions.ndim == 1 and not _is_score_vector(predictions):
        return Outputs(labels=predictions, scores=None, prefer="label")
    if predictions.dtype.kind not in "biuf":
        raise InputError(
            f"{role} scores have dtype {predictions.dtype}; save numeric scores",
            field=role,
            value=str(predictions.dtype),
        )
    scores = predictions.astype(np.float64)
    bad = ~np.isfinite(scores)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise InputError(
            f"{role} scores have {int(bad.sum())} values that are NaN or infinite "
            f"(first at row {row}, 0-based); save finite scores",
            field=role,
            value=row,
        )
    return Outputs(labels=None, scores=scores, prefer="score")


def _is_score_vector(values: np.ndarray) -> bool:
    if values.dtype.kind != "f":
        return False
    finite = values[np.isfinite(values)]
    return bool(np.any(np.floor(finite) != finite)) or len(finite) < len(values)


def _rows(outputs: Outputs) -> int:
    source = outputs.scores if outputs.scores is not None else outputs.labels
    assert source is not None
    return len(source)
