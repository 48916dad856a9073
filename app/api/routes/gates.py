"""Gate routes: submit gates, read them, their reports, and waive them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Header, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from app import admin
from app.api.deps import Admin, Reader, RuntimeDep, Submitter, reject_unknown_query
from app.api.responses import (
    FAIL_DESCRIPTION,
    GATE_RESPONSES,
    WAIT_DESCRIPTION,
    gate_response,
)
from app.errors import InputError
from app.evaluation.readers import suggest
from app.gates import (
    Upload,
    model_request,
    split_columns,
    validate_filter,
    validate_meta,
    validate_project,
)
from app.reports.junit import render_junit
from app.reports.markdown import render_markdown
from app.schemas import (
    GateKind,
    GatePage,
    GateResult,
    GateStatus,
    MetricsRequest,
    WaiverIn,
)
from app.storage.repository import GateFilter

router = APIRouter(
    prefix="/api/v1/gates",
    tags=["gates"],
    dependencies=[Depends(reject_unknown_query)],
)

COMMON_FIELDS = ("project", "branch", "commit", "policy")
MODEL_FIELDS = frozenset(
    (
        *COMMON_FIELDS,
        "teacher",
        "student",
        "dataset",
        "label_column",
        "teacher_predictions",
        "student_predictions",
        "labels",
    )
)
DATA_FIELDS = frozenset(
    (
        *COMMON_FIELDS,
        "original",
        "subset",
        "original_coverage",
        "subset_coverage",
        "scenario_columns",
        "label_column",
    )
)

# Reports carry text from uploads: browsers must not sniff them into HTML.
REPORT_HEADERS = {"X-Content-Type-Options": "nosniff"}

OptionalFile = Annotated[UploadFile | None, File()]
OptionalText = Annotated[str | None, Form()]
Wait = Annotated[float | None, Query(ge=0, le=600, description=WAIT_DESCRIPTION)]
FailOnVerdict = Annotated[bool, Query(description=FAIL_DESCRIPTION)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        max_length=255,
        description="Retries with the same key return the first result.",
    ),
]


@router.post("/model", response_model=GateResult, responses=GATE_RESPONSES)
async def post_model_gate(
    request: Request,
    runtime: RuntimeDep,
    caller: Submitter,
    teacher: OptionalFile = None,
    student: OptionalFile = None,
    dataset: OptionalFile = None,
    teacher_predictions: OptionalFile = None,
    student_predictions: OptionalFile = None,
    labels: OptionalFile = None,
    project: Annotated[str, Form()] = "default",
    branch: OptionalText = None,
    commit: OptionalText = None,
    label_column: Annotated[str, Form()] = "label",
    policy: OptionalText = None,
    wait: Wait = None,
    fail_on_verdict: FailOnVerdict = False,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Gate a student model against its teacher on a labelled dataset.

    Send `teacher`, `student` and `dataset`, or instead the models' outputs as
    `teacher_predictions` and `student_predictions` with optional `labels`.
    """
    await reject_unknown_fields(request, MODEL_FIELDS)
    meta = validate_meta(project, branch, commit)
    caller.require_project(meta.project)
    models = _uploads(teacher=teacher, student=student, dataset=dataset)
    outputs = _uploads(
        teacher_predictions=teacher_predictions,
        student_predictions=student_predictions,
        labels=labels,
    )
    inputs = model_request(models, outputs, label_column)
    result = await run_in_threadpool(
        runtime.submit_uploads,
        "model",
        models | outputs,
        meta,
        inputs,
        policy,
        idempotency_key,
    )
    return await _answer(runtime, result, caller, wait, fail_on_verdict)


@router.post("/data", response_model=GateResult, responses=GATE_RESPONSES)
async def post_data_gate(
    request: Request,
    runtime: RuntimeDep,
    caller: Submitter,
    original: OptionalFile = None,
    subset: OptionalFile = None,
    original_coverage: OptionalFile = None,
    subset_coverage: OptionalFile = None,
    project: Annotated[str, Form()] = "default",
    branch: OptionalText = None,
    commit: OptionalText = None,
    scenario_columns: OptionalText = None,
    label_column: OptionalText = None,
    policy: OptionalText = None,
    wait: Wait = None,
    fail_on_verdict: FailOnVerdict = False,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Gate a distilled subset against its original dataset.

    Send `original` and `subset`, or the coverage reports of test runs on each
    as `original_coverage` and `subset_coverage`, or all four.
    """
    await reject_unknown_fields(request, DATA_FIELDS)
    meta = validate_meta(project, branch, commit)
    caller.require_project(meta.project)
    uploads = _uploads(
        original=original,
        subset=subset,
        original_coverage=original_coverage,
        subset_coverage=subset_coverage,
    )
    inputs = {
        "scenario_columns": split_columns(scenario_columns),
        "label_column": label_column or None,
    }
    result = await run_in_threadpool(
        runtime.submit_uploads,
        "data",
        uploads,
        meta,
        inputs,
        policy,
        idempotency_key,
    )
    return await _answer(runtime, result, caller, wait, fail_on_verdict)


@router.post("/metrics", response_model=GateResult, responses=GATE_RESPONSES)
async def post_metrics_gate(
    runtime: RuntimeDep,
    caller: Submitter,
    body: MetricsRequest,
    wait: Wait = None,
    fail_on_verdict: FailOnVerdict = False,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Gate accuracy, resource or coverage numbers measured elsewhere."""
    meta = validate_meta(body.project, body.branch, body.commit)
    caller.require_project(meta.project)
    measured = body.model_dump(
        mode="json", include={"kind", "teacher", "student", "original", "subset"}
    )
    result = await run_in_threadpool(
        runtime.submit_metrics,
        body.kind,
        measured,
        meta,
        body.policy,
        idempotency_key,
    )
    return await _answer(runtime, result, caller, wait, fail_on_verdict)


@router.get("/{gate_id}", response_model=GateResult, responses=GATE_RESPONSES)
async def get_gate(
    runtime: RuntimeDep,
    caller: Reader,
    gate_id: str,
    wait: Annotated[float, Query(ge=0, le=600, description=WAIT_DESCRIPTION)] = 0,
    fail_on_verdict: FailOnVerdict = False,
) -> JSONResponse:
    """Return one stored gate result, long-polling up to `wait` seconds."""
    result = await run_in_threadpool(runtime.get, gate_id, caller)
    return await gate_response(
        runtime, result, caller, wait_s=wait, fail_on_verdict=fail_on_verdict
    )


@router.get("")
def list_gates(
    runtime: RuntimeDep,
    caller: Reader,
    project: str | None = None,
    branch: str | None = None,
    kind: GateKind | None = None,
    status: GateStatus | None = None,
    commit: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> GatePage:
    """List stored gate results, newest first, one page at a time."""
    if project:
        validate_project(project, location="query")
    branch = validate_filter(branch, "branch")
    commit = validate_filter(commit, "commit")
    filters = GateFilter(
        project=project or None,
        branch=branch,
        kind=kind,
        status=status,
        commit=commit,
        since=since,
        until=until,
        projects=caller.projects,
    )
    items, next_cursor = runtime.history(filters, limit=limit, cursor=cursor)
    return GatePage(items=items, next_cursor=next_cursor)


@router.get("/{gate_id}/junit.xml", response_class=Response)
def get_junit(runtime: RuntimeDep, caller: Reader, gate_id: str) -> Response:
    """Return the result as JUnit XML: one test case per check."""
    result = runtime.get(gate_id, caller)
    headers = {
        **REPORT_HEADERS,
        "Content-Disposition": f'attachment; filename="{gate_id}.junit.xml"',
    }
    return Response(render_junit(result), media_type="application/xml", headers=headers)


@router.get("/{gate_id}/report.md", response_class=Response)
def get_report(
    runtime: RuntimeDep,
    caller: Reader,
    request: Request,
    gate_id: str,
    max_bytes: Annotated[int, Query(ge=1024, le=1_000_000)] = 200_000,
) -> Response:
    """Return the result as a Markdown report, cut to `max_bytes`."""
    result = runtime.get(gate_id, caller)
    url = _public_url(runtime, request, f"/api/v1/gates/{gate_id}")
    text = render_markdown(result, max_bytes=max_bytes, url=url)
    return Response(
        text, media_type="text/markdown; charset=utf-8", headers=REPORT_HEADERS
    )


@router.post("/{gate_id}/waive")
def waive_gate(
    runtime: RuntimeDep, caller: Admin, gate_id: str, body: WaiverIn
) -> GateResult:
    """Accept a failed gate until its expiry; it shows as waived, never passed."""
    return admin.waive(runtime, gate_id, body, caller)


async def _answer(
    runtime: RuntimeDep,
    result: GateResult,
    caller: Submitter,
    wait: float | None,
    fail_on_verdict: bool,
) -> JSONResponse:
    wait_s = runtime.settings.default_wait_s if wait is None else wait
    return await gate_response(
        runtime, result, caller, wait_s=wait_s, fail_on_verdict=fail_on_verdict
    )


async def reject_unknown_fields(request: Request, allowed: frozenset[str]) -> None:
    """Reject form fields this gate does not take, and fields sent twice.

    A misspelt field would otherwise be dropped and its check silently skipped.
    """
    form = await request.form()
    names = list(form.keys())
    for name in names:
        if name not in allowed:
            hint = suggest(name, sorted(allowed))
            raise InputError(
                f"unknown form field {name!r}{hint}; this gate takes "
                f"{', '.join(sorted(allowed))}",
                field=name,
            )
        if len(form.getlist(name)) > 1:
            raise InputError(
                f"form field {name!r} was sent {len(form.getlist(name))} times; "
                "send it once",
                field=name,
            )


def _uploads(**files: UploadFile | None) -> dict[str, Upload]:
    return {
        field: Upload(field=field, filename=upload.filename, stream=upload.file)
        for field, upload in files.items()
        if upload is not None
    }


def _public_url(runtime: RuntimeDep, request: Request, path: str) -> str:
    base = runtime.settings.public_url or str(request.base_url)
    return base.rstrip("/") + path
