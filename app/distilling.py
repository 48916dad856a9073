"""Distillation jobs: choose a subset of an uploaded original, gate it, store it.

A distillation is stored as a data gate whose ``request.source`` is ``distill``,
so it is listed, reported and compared like any data gate. Its job chooses the
rows with ``app.evaluation.distill``, writes them to the blob store in the
requested format and records that blob in ``details.distill.subset``, from where
the subset is downloaded. This module does not import the web framework.
"""

from __future__ import annotations

import io
import json
import logging
import math
import re
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, NoReturn

import pandas as pd

from app.errors import ConflictError, InputError, NotFoundError
from app.evaluation.distill import distill, row_budget
from app.evaluation.readers import detect_format, read_table, reading_notes
from app.evaluation.required import validate_rules
from app.evaluation.validation import scenario_columns as listed_columns
from app.evaluation.validation import validate_tables
from app.gate_inputs import ArtifactRef, Runner
from app.gates import GateMeta, GateService, Intake, Upload, fingerprint
from app.job_progress import ProgressSaver, progress_reporter
from app.policy import Policy
from app.projects import resolve_policy
from app.results import Evaluation
from app.schemas import TERMINAL_STATUSES, GateResult
from app.storage.blobs import BlobStore

logger = logging.getLogger(__name__)

SOURCE = "distill"
MEDIA_TYPES = {
    "csv": "text/csv",
    "jsonl": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
}
SUFFIXES = {"csv": ".csv", "jsonl": ".jsonl", "parquet": ".parquet"}
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class SubsetFile:
    """A stored subset ready to send: its path, download name and media type."""

    path: Path
    filename: str
    media_type: str


def distill_request(
    *,
    size: str | int | None,
    fraction: str | float | None,
    scenario_columns: list[str],
    label_column: str | None,
    output_format: str | None,
) -> dict[str, Any]:
    """Check the non-file inputs of a distillation and return its stored request.

    ``output_format`` None means the original's format, or CSV when the original
    is a NumPy file.

    Raises:
        InputError: size or fraction is not a number, both or neither are given,
            or the format is not csv, jsonl or parquet.
    """
    parsed_size = _parse_number(size, "size", int)
    parsed_fraction = _parse_number(fraction, "fraction", float)
    if (parsed_size is None) == (parsed_fraction is None):
        raise InputError(
            "send exactly one of size (a row count) and fraction (of the "
            f"original's rows); got size={size!r} and fraction={fraction!r}",
            field="size",
            value=size,
        )
    if output_format is not None and output_format not in MEDIA_TYPES:
        raise InputError(
            f"format {output_format!r} is not supported for the subset; use "
            f"{', '.join(MEDIA_TYPES)}",
            field="format",
            value=output_format,
        )
    return {
        "source": SOURCE,
        "size": parsed_size,
        "fraction": parsed_fraction,
        "scenario_columns": scenario_columns,
        "label_column": label_column or None,
        "format": output_format,
    }


def _parse_number(value: Any, field: str, kind: type[int] | type[float]) -> Any:
    if value is None or value == "":
        return None
    # bool is an int, and int(2.5) would drop the fraction without a word.
    if isinstance(value, bool) or (kind is int and isinstance(value, float)):
        _not_a_number(value, field, kind)
    try:
        number = kind(value)
    except (TypeError, ValueError):
        _not_a_number(value, field, kind)
    if isinstance(number, float) and not math.isfinite(number):
        _not_a_number(value, field, kind)
    return number


def _not_a_number(value: Any, field: str, kind: type[int] | type[float]) -> NoReturn:
    if kind is int:
        expected = "a whole number of rows, such as 200"
    else:
        expected = "a number above 0 and at most 1, such as 0.2"
    raise InputError(
        f"{field} must be {expected}; got {value!r}", field=field, value=value
    )


class DistillService(GateService):
    """Stores distillation requests; outcomes are written like any gate's."""

    def intake_distill(
        self,
        original: Upload,
        meta: GateMeta,
        request: dict[str, Any],
        policy_raw: str | None,
        save_progress: ProgressSaver | None = None,
        idempotency_key: str | None = None,
    ) -> Intake:
        """Store the original, check the request against it and build the job.

        Raises:
            InputError: the original is unreadable, a column is unknown or the
                size or fraction is out of range for its row count.
        """
        resolved = resolve_policy(self.projects, meta.project, policy_raw)
        artifacts = self._store_all({"original": original}, ("original",))
        ref, described = artifacts["original"]
        record = self._new_record("data", meta, resolved.policy.model_dump(mode="json"))
        record.policy_version = resolved.version
        record.artifacts = {"original": described}
        record.request = request
        record.fingerprint = fingerprint(
            "data", request, record.artifacts, record.policy
        )
        replay = self._replay(meta.project, idempotency_key, record.fingerprint)
        if replay is not None:
            return replay
        report = progress_reporter(record.id, save_progress)
        runner = prepare_distill(request, ref, resolved.policy, self.store, report)
        return self._add(record, runner, idempotency_key)


def prepare_distill(
    request: Mapping[str, Any],
    original: ArtifactRef,
    policy: Policy,
    store: BlobStore,
    progress: Callable[[str, float], None] | None = None,
) -> Runner:
    """Read and check the original now, and return the job that distils it.

    Raises:
        InputError: the original is unreadable, a named column is missing, or
            the size or fraction does not fit its row count.
    """
    table = read_table(original.path, field="original", filename=original.filename)
    columns = list(request.get("scenario_columns") or [])
    label_column = request.get("label_column") or None
    validate_tables(table, None, listed_columns(columns, label_column), label_column)
    validate_rules(policy.required_scenarios, list(table.columns))
    # NOTE: whether the budget has room for every required row is known only
    # after cleaning, in the job. A too small size therefore ends the gate as
    # ``error`` with the reason, not as a 4xx response here.
    row_budget(request.get("size"), request.get("fraction"), len(table))
    output_format = request.get("format") or _default_format(original)

    def run() -> Evaluation:
        started = time.monotonic()
        result = distill(
            table,
            size=request.get("size"),
            fraction=request.get("fraction"),
            scenario_columns=columns,
            label_column=label_column,
            policy=policy,
            progress=progress,
        )
        stored = store_subset(store, result.subset, output_format, original.filename)
        evaluation = result.evaluation
        evaluation.details["distill"] = {
            "subset": stored,
            "rows": len(result.subset),
            "requested_rows": result.requested_rows,
            "original_rows": len(table),
            "seconds": round(time.monotonic() - started, 3),
        }
        if len(result.subset) < result.requested_rows:
            evaluation.details["distill"]["note"] = (
                f"{len(result.subset)} rows, fewer than the "
                f"{result.requested_rows} requested: the original has "
                f"{result.cleaned_rows} rows left after removing invalid rows "
                "and duplicates, and only those are chosen"
            )
        notes = reading_notes(table)
        if notes:
            evaluation.details["reader_notes"] = {"original": notes}
        return evaluation

    return run


def _default_format(original: ArtifactRef) -> str:
    found = detect_format(original.path, field="original", filename=original.filename)
    return found if found in MEDIA_TYPES else "csv"


def store_subset(
    store: BlobStore,
    subset: pd.DataFrame,
    output_format: str,
    original_name: str | None,
) -> dict[str, Any]:
    """Write ``subset`` to the blob store and return its sha256, size, name, format."""
    data = encode_table(subset, output_format)
    # The subset has at most the original's rows, which passed the upload limit.
    # Its CSV can still outgrow a Parquet original, so no limit applies here.
    blob = store.put(io.BytesIO(data), field="subset", max_bytes=sys.maxsize)
    logger.info(
        "subset stored sha256=%s format=%s rows=%d",
        blob.sha256,
        output_format,
        len(subset),
    )
    return {
        "sha256": blob.sha256,
        "size_bytes": blob.size_bytes,
        "filename": subset_filename(original_name, output_format),
        "format": output_format,
    }


def encode_table(table: pd.DataFrame, output_format: str) -> bytes:
    """Return ``table`` as CSV, JSON Lines or Parquet bytes, without its index.

    Floats keep every digit, so each row reads back equal to its original row.
    """
    if output_format == "parquet":
        buffer = io.BytesIO()
        table.to_parquet(buffer, index=False)
        return buffer.getvalue()
    if output_format == "jsonl":
        return _jsonl(table)
    return str(table.to_csv(index=False)).encode("utf-8")


def _jsonl(table: pd.DataFrame) -> bytes:
    # json.dumps writes the shortest text that reads back as the same double,
    # while pandas' to_json rounds to at most 15 significant digits.
    values = table.astype(object).where(table.notna(), None)
    lines = [
        json.dumps(row, ensure_ascii=False, allow_nan=False, default=str)
        for row in values.to_dict(orient="records")
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")


def subset_filename(original_name: str | None, output_format: str) -> str:
    """Return a download name such as ``orders-subset.csv``, safe in any header."""
    stem = ""
    if original_name:
        stem = PurePosixPath(PureWindowsPath(original_name).name).stem
    stem = _UNSAFE_NAME.sub("_", stem).strip("._")[:100] or "original"
    return f"{stem}-subset{SUFFIXES[output_format]}"


def _no_subset_message(result: GateResult) -> str:
    if result.error:
        return (
            f"gate {result.id} has no subset: it ended with status "
            f"{result.status!r} (error: {result.error})"
        )
    return (
        f"gate {result.id} has no subset: it is a {result.kind} gate, not a "
        "distillation; only gates created by POST /api/v1/distill have a subset"
    )


def subset_file(result: GateResult, store: BlobStore) -> SubsetFile:
    """Return the stored subset of a finished distillation.

    Raises:
        NotFoundError: the gate is not a distillation, or it ended without a
            subset (see its ``error``).
        ConflictError: the distillation is still running.
    """
    if result.status not in TERMINAL_STATUSES:
        raise ConflictError(
            f"distillation {result.id} is still {result.status}; wait for it with "
            f"GET /api/v1/gates/{result.id}?wait=60, then download the subset",
            field="gate_id",
            value=result.id,
            location="path",
        )
    stored = (result.details.get("distill") or {}).get("subset")
    if not isinstance(stored, dict):
        raise NotFoundError(
            _no_subset_message(result),
            field="gate_id",
            value=result.id,
            location="path",
        )
    path = store.path_for(stored["sha256"])
    if not path.is_file():
        # NOTE: a worker that does not share the API's data directory stores
        # the subset on its own disk, where this server cannot read it.
        logger.warning(
            "subset blob missing gate_id=%s sha256=%s", result.id, stored["sha256"]
        )
        raise NotFoundError(
            f"the subset of gate {result.id} is not in this server's store "
            f"(sha256 {stored['sha256']}); it was written by a worker that does "
            "not share DISTILGATE_DATA_DIR with the API, so distil again with a "
            "shared data directory",
            field="gate_id",
            value=result.id,
            location="path",
        )
    return SubsetFile(
        path=path,
        filename=stored["filename"],
        media_type=MEDIA_TYPES[stored["format"]],
    )
