"""Gate service: stores uploads, runs an evaluation and records the verdict.

Routes and the CLI call this module; it knows nothing of HTTP. Evaluation code
lives in ``app.evaluation`` and knows nothing of storage.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO

from app.config import Settings
from app.errors import EvaluationError, InputError
from app.evaluation.data_gate import evaluate_data
from app.evaluation.metrics_gate import DataMetrics, ModelMetrics, evaluate_metrics
from app.evaluation.model_gate import evaluate_model
from app.evaluation.readers import read_labelled, read_table
from app.policy import Policy, parse_policy
from app.results import Evaluation
from app.storage.blobs import BlobStore, StoredBlob
from app.storage.db import Database
from app.storage.models import GateRecord
from app.storage.repository import GateFilter, GateRepository

logger = logging.getLogger(__name__)

PROJECT_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Upload:
    """An uploaded file: its form field, the client's file name and its bytes."""

    field: str
    filename: str | None
    stream: BinaryIO


@dataclass(frozen=True)
class GateMeta:
    """Where a gate run comes from."""

    project: str = "default"
    branch: str | None = None
    commit: str | None = None


@dataclass(frozen=True)
class StoredUpload:
    blob: StoredBlob
    filename: str | None

    def describe(self) -> dict[str, Any]:
        return {
            "sha256": self.blob.sha256,
            "size_bytes": self.blob.size_bytes,
            "filename": self.filename,
        }


def validate_meta(
    project: str | None, branch: str | None, commit: str | None
) -> GateMeta:
    """Check the project, branch and commit labels of a gate run.

    Raises:
        InputError: a label is malformed; the message names it and the fix.
    """
    project = project or "default"
    if not PROJECT_PATTERN.fullmatch(project):
        raise InputError(
            f"project {project!r} is not a valid project name; use 1-200 letters, "
            "digits, '.', '_' or '-', starting with a letter or digit",
            field="project",
            value=project,
        )
    return GateMeta(
        project=project,
        branch=_label(branch, "branch"),
        commit=_label(commit, "commit"),
    )


def _label(value: str | None, field: str) -> str | None:
    if value is None or value == "":
        return None
    if len(value) > 255 or _CONTROL_CHARS.search(value):
        raise InputError(
            f"{field} must be at most 255 printable characters, got {value!r}",
            field=field,
            value=value,
        )
    return value


class GateService:
    """Runs gates and reads their history within one database session."""

    def __init__(
        self,
        repository: GateRepository,
        store: BlobStore,
        *,
        max_upload_bytes: int,
        model_timeout_s: float,
    ):
        self.repository = repository
        self.store = store
        self.max_upload_bytes = max_upload_bytes
        self.model_timeout_s = model_timeout_s

    def run_model_gate(
        self,
        uploads: Mapping[str, Upload],
        meta: GateMeta,
        *,
        label_column: str | None,
        policy_text: str | None,
    ) -> GateRecord:
        """Gate a student model against its teacher on a labelled dataset."""
        policy = parse_policy(policy_text)
        label_column = label_column or "label"
        stored = self._store_all(uploads, ("teacher", "student", "dataset"))
        dataset = stored["dataset"]
        features, labels = read_labelled(
            dataset.blob.path,
            field="dataset",
            label_column=label_column,
            filename=dataset.filename,
        )

        def evaluate() -> Evaluation:
            return evaluate_model(
                stored["teacher"].blob.path,
                stored["student"].blob.path,
                features,
                labels,
                policy=policy,
                timeout_s=self.model_timeout_s,
            )

        return self._record("model", meta, policy, stored, evaluate)

    def run_data_gate(
        self,
        uploads: Mapping[str, Upload],
        meta: GateMeta,
        *,
        scenario_columns: str | None,
        label_column: str | None,
        policy_text: str | None,
    ) -> GateRecord:
        """Gate a distilled subset against its original dataset."""
        policy = parse_policy(policy_text)
        columns = split_columns(scenario_columns)
        stored = self._store_all(uploads, ("original", "subset"))
        tables = {
            role: read_table(item.blob.path, field=role, filename=item.filename)
            for role, item in stored.items()
        }

        def evaluate() -> Evaluation:
            return evaluate_data(
                tables["original"],
                tables["subset"],
                policy=policy,
                scenario_columns=columns,
                label_column=label_column or None,
            )

        return self._record("data", meta, policy, stored, evaluate)

    def run_metrics_gate(
        self,
        measured: ModelMetrics | DataMetrics,
        meta: GateMeta,
        policy_overrides: dict[str, Any] | None,
    ) -> GateRecord:
        """Gate numbers that were measured outside DistilGate."""
        policy = parse_policy(policy_overrides)
        return self._record(
            measured.kind,
            meta,
            policy,
            {},
            lambda: evaluate_metrics(measured, policy),
        )

    def find(self, gate_id: str) -> GateRecord | None:
        return self.repository.find(gate_id)

    def history(
        self, filters: GateFilter, *, limit: int, cursor: str | None
    ) -> tuple[list[GateRecord], str | None]:
        return self.repository.page(filters, limit=limit, cursor=cursor)

    def _store_all(
        self, uploads: Mapping[str, Upload], roles: tuple[str, ...]
    ) -> dict[str, StoredUpload]:
        missing = [role for role in roles if role not in uploads]
        if missing:
            raise InputError(
                f"missing file {missing[0]!r}; send it as a multipart file field "
                f"(this gate needs {', '.join(roles)})",
                field=missing[0],
            )
        return {role: self._store(uploads[role]) for role in roles}

    def _store(self, upload: Upload) -> StoredUpload:
        blob = self.store.put(
            upload.stream, field=upload.field, max_bytes=self.max_upload_bytes
        )
        if blob.size_bytes == 0:
            raise InputError(
                f"{upload.field} is empty (file {upload.filename!r} has 0 bytes); "
                "send the file's content",
                field=upload.field,
                value=upload.filename,
            )
        self.repository.record_artifact(blob.sha256, blob.size_bytes, _now())
        return StoredUpload(blob=blob, filename=upload.filename)

    def _record(
        self,
        kind: str,
        meta: GateMeta,
        policy: Policy,
        stored: Mapping[str, StoredUpload],
        evaluate: Callable[[], Evaluation],
    ) -> GateRecord:
        gate_id = uuid.uuid4().hex
        record = GateRecord(
            id=gate_id,
            kind=kind,
            project=meta.project,
            branch=meta.branch,
            commit=meta.commit,
            created_at=_now(),
            policy=policy.model_dump(mode="json"),
            artifacts={role: item.describe() for role, item in stored.items()},
        )
        try:
            outcome = evaluate()
        except EvaluationError as exc:
            logger.warning(
                "gate evaluation failed gate_id=%s project=%s kind=%s error=%s",
                gate_id,
                meta.project,
                kind,
                exc.message,
            )
            _fill_error(record, exc.message)
        else:
            _fill(record, outcome)
        logger.info(
            "gate recorded gate_id=%s project=%s kind=%s status=%s",
            gate_id,
            meta.project,
            kind,
            record.status,
        )
        return self.repository.add(record)


def split_columns(text: str | None) -> list[str]:
    """Split a comma-separated column list, dropping blanks around names."""
    if not text:
        return []
    return [name.strip() for name in text.split(",") if name.strip()]


def _fill(record: GateRecord, outcome: Evaluation) -> None:
    record.status = outcome.status
    record.metrics = outcome.metrics
    record.checks = [check.to_dict() for check in outcome.checks]
    record.details = outcome.details
    record.error = None


def _fill_error(record: GateRecord, message: str) -> None:
    record.status = "error"
    record.metrics = {}
    record.checks = []
    record.details = {}
    record.error = message


def _now() -> datetime:
    return datetime.now(UTC)


@contextmanager
def service_scope(
    database: Database, store: BlobStore, settings: Settings
) -> Iterator[GateService]:
    """Yield a gate service in one unit of work: commit on success, else roll back."""
    with database.session() as session:
        yield GateService(
            GateRepository(session),
            store,
            max_upload_bytes=settings.max_upload_bytes,
            model_timeout_s=settings.model_timeout_s,
        )
