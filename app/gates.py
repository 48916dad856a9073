"""Gate service: validates and stores gate requests, and records their outcomes.

A request is validated and stored as a ``queued`` gate within the request. The
evaluation itself runs later in a job (``app.jobs``). Routes and the CLI call
this module, which does not import the web framework.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

from app.comparison import compare_with
from app.config import Settings
from app.errors import ConflictError, InputError
from app.gate_inputs import (
    OPTIONAL_ROLES,
    UPLOAD_ROLES,
    ArtifactRef,
    Runner,
    data_roles,
    prepare,
)
from app.job_progress import ProgressSaver, progress_reporter
from app.policy import Policy
from app.projects import resolve_policy
from app.results import Evaluation
from app.storage.blobs import BlobStore
from app.storage.models import GateRecord
from app.storage.projects import ProjectRepository
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
    """Project, branch and commit labels of a gate run."""

    project: str = "default"
    branch: str | None = None
    commit: str | None = None


@dataclass(frozen=True)
class Limits:
    """Limits the service applies to every gate."""

    max_upload_bytes: int
    model_timeout_s: float
    job_timeout_s: float
    allow_torchscript: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_upload_bytes=settings.max_upload_bytes,
            model_timeout_s=settings.model_timeout_s,
            job_timeout_s=settings.job_timeout_s,
            allow_torchscript=settings.allow_torchscript,
        )


@dataclass(frozen=True)
class Intake:
    """A stored gate request, and the evaluation to run unless it is a replay."""

    record: GateRecord
    runner: Runner | None
    replayed: bool = False


def validate_meta(
    project: str | None, branch: str | None, commit: str | None
) -> GateMeta:
    """Check the project, branch and commit labels of a gate run.

    Raises:
        InputError: a label is malformed; the message names it and the fix.
    """
    return GateMeta(
        project=validate_project(project or "default"),
        branch=_label(branch, "branch"),
        commit=_label(commit, "commit"),
    )


def validate_project(
    project: str, field: str = "project", location: str = "body"
) -> str:
    """Check a project name against the rule every stored project follows.

    Raises:
        InputError: the name breaks the rule; the message states the rule.
    """
    if not PROJECT_PATTERN.fullmatch(project) or not project.isascii():
        raise InputError(
            f"project {project!r} is not a valid project name; use 1-200 letters, "
            "digits, '.', '_' or '-', starting with a letter or digit",
            field=field,
            value=project,
            location=location,
        )
    return project


def _label(value: str | None, field: str, location: str = "body") -> str | None:
    if value is None or value == "":
        return None
    if len(value) > 255 or _CONTROL_CHARS.search(value) or not _encodable(value):
        raise InputError(
            f"{field} must be at most 255 printable UTF-8 characters, got {value!r}",
            field=field,
            value=value,
            location=location,
        )
    return value


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def validate_filter(
    value: str | None, field: str, location: str = "query"
) -> str | None:
    """Check a filter value given in the query string or the path.

    Raises:
        InputError: the value contains control characters or is too long.
    """
    return _label(value, field, location=location)


def model_request(
    models: Mapping[str, Upload], outputs: Mapping[str, Upload], label_column: str
) -> dict[str, Any]:
    """Return the request of a model gate that sends models or predictions.

    Raises:
        InputError: both models and predictions were sent.
    """
    if models and outputs:
        raise InputError(
            f"send either model files ({', '.join(models)}) or predictions "
            f"({', '.join(outputs)}), not both",
            field=next(iter(outputs)),
        )
    if outputs:
        return {"source": "predictions"}
    return {"label_column": label_column}


def split_columns(text: str | None) -> list[str]:
    """Split a comma-separated column list, dropping blanks around names."""
    if not text:
        return []
    return [name.strip() for name in text.split(",") if name.strip()]


class GateService:
    """Stores gate requests and outcomes within one database session."""

    def __init__(self, repository: GateRepository, store: BlobStore, limits: Limits):
        self.repository = repository
        self.projects = ProjectRepository(repository.session)
        self.store = store
        self.limits = limits

    def intake_uploads(
        self,
        kind: str,
        uploads: Mapping[str, Upload],
        meta: GateMeta,
        request: dict[str, Any],
        policy_raw: str | None,
        idempotency_key: str | None = None,
        save_progress: ProgressSaver | None = None,
    ) -> Intake:
        """Validate and store a model or data gate that uploads its artifacts.

        ``save_progress(gate_id, progress)`` stores a data gate's progress.
        """
        resolved = resolve_policy(self.projects, meta.project, policy_raw)
        request = {"source": "upload", **request}
        variant = "predictions" if request["source"] == "predictions" else kind
        roles = data_roles(uploads) if variant == "data" else UPLOAD_ROLES[variant]
        artifacts = self._store_all(uploads, roles, OPTIONAL_ROLES.get(variant, ()))
        refs = {role: ref for role, (ref, _) in artifacts.items()}
        described = {role: info for role, (_, info) in artifacts.items()}
        record = self._new_record(kind, meta, resolved.policy.model_dump(mode="json"))
        record.policy_version = resolved.version
        record.artifacts = described
        record.request = request
        record.fingerprint = fingerprint(kind, request, described, record.policy)
        replay = self._replay(meta.project, idempotency_key, record.fingerprint)
        if replay is not None:
            return replay
        runner = prepare(
            kind,
            request,
            refs,
            resolved.policy,
            model_timeout_s=self.limits.model_timeout_s,
            allow_torchscript=self.limits.allow_torchscript,
            progress=progress_reporter(record.id, save_progress),
        )
        return self._add(record, runner, idempotency_key)

    def intake_metrics(
        self,
        kind: str,
        measured: dict[str, Any],
        meta: GateMeta,
        policy_raw: Mapping[str, Any] | None,
        idempotency_key: str | None = None,
    ) -> Intake:
        """Validate and store a gate on numbers measured outside DistilGate."""
        resolved = resolve_policy(self.projects, meta.project, policy_raw)
        request = {"source": "metrics", "measured": measured}
        record = self._new_record(kind, meta, resolved.policy.model_dump(mode="json"))
        record.policy_version = resolved.version
        record.artifacts = {}
        record.request = request
        record.fingerprint = fingerprint(kind, request, {}, record.policy)
        replay = self._replay(meta.project, idempotency_key, record.fingerprint)
        if replay is not None:
            return replay
        runner = prepare(kind, request, {}, resolved.policy, model_timeout_s=0)
        return self._add(record, runner, idempotency_key)

    def runner_for(
        self,
        record: GateRecord,
        save_progress: ProgressSaver | None = None,
    ) -> Runner:
        """Rebuild the evaluation of a stored gate from its stored inputs.

        ``save_progress(gate_id, progress)`` stores the progress of a data gate
        or a distillation.
        """
        refs = {
            role: ArtifactRef(self.store.path_for(info["sha256"]), info["filename"])
            for role, info in record.artifacts.items()
        }
        policy = Policy.model_validate(record.policy)
        report = progress_reporter(record.id, save_progress)
        if (record.request or {}).get("source") == "distill":
            # Imported here because app.distilling builds on this module.
            from app.distilling import prepare_distill

            assert record.request is not None
            return prepare_distill(
                record.request, refs["original"], policy, self.store, report
            )
        return prepare(
            record.kind,
            record.request or {},
            refs,
            policy,
            model_timeout_s=self.limits.model_timeout_s,
            allow_torchscript=self.limits.allow_torchscript,
            progress=report,
        )

    def find(self, gate_id: str, projects: frozenset[str] | None) -> GateRecord | None:
        """Return a gate if it exists and ``projects`` (None: all) includes it."""
        record = self.repository.find(gate_id)
        if record is None or (projects is not None and record.project not in projects):
            return None
        return record

    def history(
        self, filters: GateFilter, *, limit: int, cursor: str | None
    ) -> tuple[list[GateRecord], str | None]:
        return self.repository.page(filters, limit=limit, cursor=cursor)

    def claim(self, gate_id: str, lease_s: float | None = None) -> int | None:
        """Start a gate and return its attempt number; None when it is taken.

        With ``lease_s`` the claim lapses after that many seconds unless renewed,
        and another job may then claim the gate again.
        """
        now = _now()
        until = None if lease_s is None else now + timedelta(seconds=lease_s)
        return self.repository.claim(gate_id, now, until)

    def finish(
        self,
        gate_id: str,
        outcome: Evaluation | None,
        error: str | None = None,
        attempt: int | None = None,
    ) -> GateRecord | None:
        """Write a running gate's outcome and comparison; None if it already ended.

        With ``attempt``, only that claim of the gate may write the outcome.
        """
        record = self.repository.find(gate_id)
        if record is None or record.status != "running":
            return None
        values = _outcome_values(outcome, error)
        values["comparison"] = compare_with(
            record,
            values["metrics"],
            values["status"],
            self.repository.last_before(record, status="passed", same_commit=False),
            self._previous_run(record),
        )
        if not self.repository.finish(gate_id, values, attempt):
            return None
        self.repository.session.refresh(record)
        logger.info(
            "gate finished gate_id=%s project=%s kind=%s status=%s",
            gate_id,
            record.project,
            record.kind,
            record.status,
        )
        return record

    def _previous_run(self, record: GateRecord) -> GateRecord | None:
        if record.commit is None:
            return None
        return self.repository.last_before(record, same_commit=True)

    def _new_record(
        self, kind: str, meta: GateMeta, policy: dict[str, Any]
    ) -> GateRecord:
        now = _now()
        return GateRecord(
            id=uuid.uuid4().hex,
            kind=kind,
            status="queued",
            project=meta.project,
            branch=meta.branch,
            commit=meta.commit,
            created_at=now,
            deadline_at=now + timedelta(seconds=self.limits.job_timeout_s),
            policy=policy,
            metrics={},
            checks=[],
            details={},
        )

    def _replay(
        self, project: str, key: str | None, request_fingerprint: str
    ) -> Intake | None:
        if key is None:
            return None
        earlier = self.repository.find_by_idempotency_key(project, key)
        if earlier is None:
            return None
        if earlier.fingerprint != request_fingerprint:
            raise ConflictError(
                f"Idempotency-Key {key!r} was already used for a different request "
                f"(gate {earlier.id}); send a new key for new inputs",
                field="Idempotency-Key",
                value=key,
                location="header",
            )
        logger.info("idempotent replay gate_id=%s project=%s", earlier.id, project)
        return Intake(record=earlier, runner=None, replayed=True)

    def _add(self, record: GateRecord, runner: Runner, key: str | None) -> Intake:
        record.idempotency_key = key
        if key is None:
            self.repository.add(record)
            return Intake(record=record, runner=runner)
        if self.repository.add_unless_duplicate(record) is None:
            replay = self._replay(record.project, key, record.fingerprint or "")
            assert replay is not None
            return replay
        return Intake(record=record, runner=runner)

    def _store_all(
        self,
        uploads: Mapping[str, Upload],
        roles: tuple[str, ...],
        optional: tuple[str, ...] = (),
    ) -> dict[str, tuple[ArtifactRef, dict[str, Any]]]:
        missing = [role for role in roles if role not in uploads]
        if missing:
            raise InputError(
                f"missing file {missing[0]!r}; send it as a multipart file field "
                f"(this gate needs {', '.join(roles)})",
                field=missing[0],
            )
        present = roles + tuple(role for role in optional if role in uploads)
        return {role: self._store(uploads[role]) for role in present}

    def _store(self, upload: Upload) -> tuple[ArtifactRef, dict[str, Any]]:
        blob = self.store.put(
            upload.stream, field=upload.field, max_bytes=self.limits.max_upload_bytes
        )
        if blob.size_bytes == 0:
            raise InputError(
                f"{upload.field} is empty (file {upload.filename!r} has 0 bytes); "
                "send the file's content",
                field=upload.field,
                value=upload.filename,
            )
        self.repository.record_artifact(blob.sha256, blob.size_bytes, _now())
        described = {
            "sha256": blob.sha256,
            "size_bytes": blob.size_bytes,
            "filename": upload.filename,
        }
        return ArtifactRef(blob.path, upload.filename), described


def fingerprint(
    kind: str,
    request: Mapping[str, Any],
    artifacts: Mapping[str, Mapping[str, Any]],
    policy: Mapping[str, Any],
) -> str:
    """Hash what decides a verdict: kind, inputs, artifact sha256s and policy."""
    content = {
        "kind": kind,
        "request": request,
        "artifacts": {role: info["sha256"] for role, info in artifacts.items()},
        "policy": policy,
    }
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _outcome_values(outcome: Evaluation | None, error: str | None) -> dict[str, Any]:
    values: dict[str, Any] = {"finished_at": _now(), "progress": None}
    if outcome is None:
        return values | {
            "status": "error",
            "metrics": {},
            "checks": [],
            "details": {},
            "error": error or "the evaluation failed",
        }
    return values | {
        "status": outcome.status,
        "metrics": outcome.metrics,
        "checks": [check.to_dict() for check in outcome.checks],
        "details": outcome.details,
        "error": None,
    }


def _now() -> datetime:
    return datetime.now(UTC)
