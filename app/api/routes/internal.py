"""Internal routes for DistilGate workers: artifact downloads by sha256."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import FileResponse

from app.api.deps import RuntimeDep
from app.artifact_transfer import authorize_worker, stored_blob

router = APIRouter(prefix="/api/v1/internal", tags=["internal"])


@router.get("/artifacts/{sha256}", include_in_schema=False)
def get_artifact(
    runtime: RuntimeDep,
    sha256: str,
    authorization: Annotated[str | None, Header()] = None,
) -> FileResponse:
    """Stream a stored artifact to a worker that sends the internal token."""
    authorize_worker(runtime.settings.internal_token, authorization)
    path = stored_blob(runtime.store, sha256)
    # Uploaded bytes go out as a download that browsers must not sniff.
    return FileResponse(
        path,
        media_type="application/octet-stream",
        filename=sha256,
        content_disposition_type="attachment",
        headers={"X-Content-Type-Options": "nosniff"},
    )
