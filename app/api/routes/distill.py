"""Distillation routes: distil an uploaded original, download the subset."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse

from app.api.deps import Reader, RuntimeDep, Submitter, reject_unknown_query
from app.api.responses import GATE_RESPONSES, gate_response
from app.api.routes.gates import (
    COMMON_FIELDS,
    FailOnVerdict,
    IdempotencyKey,
    OptionalText,
    Wait,
    reject_unknown_fields,
)
from app.distilling import distill_request, subset_file
from app.gates import Upload, split_columns, validate_meta
from app.schemas import GateResult

router = APIRouter(
    prefix="/api/v1/distill",
    tags=["distill"],
    dependencies=[Depends(reject_unknown_query)],
)

DISTILL_FIELDS = frozenset(
    (
        *COMMON_FIELDS,
        "original",
        "size",
        "fraction",
        "scenario_columns",
        "label_column",
        "format",
    )
)


@router.post("", response_model=GateResult, responses=GATE_RESPONSES)
async def post_distill(
    request: Request,
    runtime: RuntimeDep,
    caller: Submitter,
    original: Annotated[UploadFile, File()],
    size: OptionalText = None,
    fraction: OptionalText = None,
    scenario_columns: OptionalText = None,
    label_column: OptionalText = None,
    output_format: Annotated[str | None, Form(alias="format")] = None,
    project: Annotated[str, Form()] = "default",
    branch: OptionalText = None,
    commit: OptionalText = None,
    policy: OptionalText = None,
    wait: Wait = None,
    fail_on_verdict: FailOnVerdict = False,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Choose `size` rows, or `fraction` of the rows, of `original` and gate them.

    The result is a data gate; its subset downloads from
    `GET /api/v1/distill/{id}/subset` once the gate has finished.
    """
    await reject_unknown_fields(request, DISTILL_FIELDS)
    meta = validate_meta(project, branch, commit)
    caller.require_project(meta.project)
    inputs = distill_request(
        size=size,
        fraction=fraction,
        scenario_columns=split_columns(scenario_columns),
        label_column=label_column,
        output_format=output_format,
    )
    upload = Upload(field="original", filename=original.filename, stream=original.file)
    result = await run_in_threadpool(
        runtime.submit_distill, upload, meta, inputs, policy, idempotency_key
    )
    wait_s = runtime.settings.default_wait_s if wait is None else wait
    return await gate_response(
        runtime, result, caller, wait_s=wait_s, fail_on_verdict=fail_on_verdict
    )


@router.get("/{gate_id}/subset", response_class=FileResponse)
def get_subset(runtime: RuntimeDep, caller: Reader, gate_id: str) -> FileResponse:
    """Download the subset a finished distillation chose, as an attachment."""
    found = subset_file(runtime.get(gate_id, caller), runtime.store)
    return FileResponse(
        found.path,
        media_type=found.media_type,
        filename=found.filename,
        content_disposition_type="attachment",
        headers={"X-Content-Type-Options": "nosniff"},
    )
