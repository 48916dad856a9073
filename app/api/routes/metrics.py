"""The Prometheus scrape endpoint, with or without a token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import Response

from app.api.deps import Reader, RuntimeDep
from app.runtime import Runtime

# The application includes one of these two routers, by DISTILGATE_METRICS_PUBLIC.
router = APIRouter(tags=["metrics"])
public_router = APIRouter(tags=["metrics"])

Accept = Annotated[str | None, Header()]


@router.get("/metrics")
def get_metrics(runtime: RuntimeDep, caller: Reader, accept: Accept = None) -> Response:
    """Return gate counts, queue depth, durations and upload bytes for Prometheus."""
    return _exposition(runtime, accept)


@public_router.get("/metrics")
def get_public_metrics(runtime: RuntimeDep, accept: Accept = None) -> Response:
    """Return gate counts, queue depth, durations and upload bytes, without a token."""
    return _exposition(runtime, accept)


def _exposition(runtime: Runtime, accept: str | None) -> Response:
    body, content_type = runtime.metrics.render(accept)
    return Response(body, media_type=content_type)
