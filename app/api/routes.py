"""REST routes. Each one parses its request and calls one service method."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, UploadFile

from app import __version__
from app.api.deps import ServiceDep
from app.api.schemas import (
    GateKind,
    GatePage,
    GateResult,
    GateStatus,
    Health,
    MetricsRequest,
)
from app.errors import NotFoundError
from app.gates import Upload, validate_meta
from app.storage.repository import GateFilter

router = APIRouter()
gates = APIRouter(prefix="/api/v1/gates", tags=["gates"])

OptionalFile = Annotated[UploadFile | None, File()]
OptionalText = Annotated[str | None, Form()]


@router.get("/healthz", tags=["health"])
def healthz() -> Health:
    """Report that the service is up, with its version."""
    return Health(status="ok", version=__version__)


@gates.post("/model")
def post_model_gate(
    service: ServiceDep,
    teacher: OptionalFile = None,
    student: OptionalFile = None,
    dataset: OptionalFile = None,
    project: Annotated[str, Form()] = "default",
    branch: OptionalText = None,
    commit: OptionalText = None,
    label_column: Annotated[str, Form()] = "label",
    policy: OptionalText = None,
) -> GateResult:
    """Gate a student ONNX model against its teacher on a labelled dataset."""
    meta = validate_meta(project, branch, commit)
    uploads = _uploads(teacher=teacher, student=student, dataset=dataset)
    record = service.run_model_gate(
        uploads, meta, label_column=label_column, policy_text=policy
    )
    return GateResult.from_record(record)


@gates.post("/data")
def post_data_gate(
    service: ServiceDep,
    original: OptionalFile = None,
    subset: OptionalFile = None,
    project: Annotated[str, Form()] = "default",
    branch: OptionalText = None,
    commit: OptionalText = None,
    scenario_columns: OptionalText = None,
    label_column: OptionalText = None,
    policy: OptionalText = None,
) -> GateResult:
    """Gate a distilled subset against its original dataset."""
    meta = validate_meta(project, branch, commit)
    uploads = _uploads(original=original, subset=subset)
    record = service.run_data_gate(
        uploads,
        meta,
        scenario_columns=scenario_columns,
        label_column=label_column,
        policy_text=policy,
    )
    return GateResult.from_record(record)


@gates.post("/metrics")
def post_metrics_gate(service: ServiceDep, body: MetricsRequest) -> GateResult:
    """Gate accuracy, resource or coverage numbers measured elsewhere."""
    meta = validate_meta(body.project, body.branch, body.commit)
    record = service.run_metrics_gate(body, meta, body.policy)
    return GateResult.from_record(record)


@gates.get("/{gate_id}")
def get_gate(service: ServiceDep, gate_id: str) -> GateResult:
    """Return one stored gate result."""
    record = service.find(gate_id)
    if record is None:
        raise NotFoundError(
            f"gate {gate_id!r} not found", field="gate_id", value=gate_id
        )
    return GateResult.from_record(record)


@gates.get("")
def list_gates(
    service: ServiceDep,
    project: str | None = None,
    branch: str | None = None,
    kind: GateKind | None = None,
    status: GateStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> GatePage:
    """List stored gate results, newest first, one page at a time."""
    filters = GateFilter(project=project, branch=branch, kind=kind, status=status)
    records, next_cursor = service.history(filters, limit=limit, cursor=cursor)
    items = [GateResult.from_record(record) for record in records]
    return GatePage(items=items, next_cursor=next_cursor)


def _uploads(**files: UploadFile | None) -> dict[str, Upload]:
    return {
        field: Upload(field=field, filename=upload.filename, stream=upload.file)
        for field, upload in files.items()
        if upload is not None
    }


router.include_router(gates)
