"""Application factory: settings, storage, routes and error rendering."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from app import __version__
from app.api.routes import router
from app.config import Settings, get_settings
from app.errors import DistilGateError
from app.storage.blobs import BlobStore
from app.storage.db import Database

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the DistilGate application for ``settings`` (default: environment)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = Database(settings)
        database.migrate()
        app.state.settings = settings
        app.state.database = database
        app.state.store = BlobStore(settings.data_dir)
        logger.info(
            "service started version=%s data_dir=%s", __version__, settings.data_dir
        )
        yield
        database.dispose()
        logger.info("service stopped")

    app = FastAPI(
        title="DistilGate",
        version=__version__,
        summary="Quality gate for distilled datasets and distilled models.",
        lifespan=lifespan,
    )
    app.include_router(router)
    app.add_exception_handler(DistilGateError, _render_error)  # type: ignore[arg-type]
    app.add_exception_handler(
        RequestValidationError,
        _render_validation_error,  # type: ignore[arg-type]
    )
    return app


async def _render_error(request: Request, exc: DistilGateError) -> JSONResponse:
    logger.info(
        "request rejected path=%s status=%d field=%s",
        request.url.path,
        exc.status_code,
        exc.field,
    )
    return JSONResponse(
        status_code=exc.status_code, content={"detail": [exc.to_detail()]}
    )


_TAG_ERRORS = {"union_tag_invalid", "union_tag_not_found"}


async def _render_validation_error(
    request: Request, exc: RequestValidationError
) -> JSONResponse:
    """Render request validation errors as FastAPI does, naming ``kind`` for tags.

    pydantic reports a wrong or missing discriminator at the body itself; the
    location is extended with the discriminator field so clients see which
    field to fix.
    """
    errors = []
    for error in exc.errors():
        error = dict(error)
        if error.get("type") in _TAG_ERRORS:
            error["loc"] = (
                *error["loc"],
                error.get("ctx", {}).get("discriminator", "kind").strip("'"),
            )
        error.pop("url", None)
        errors.append(error)
    logger.info(
        "request rejected path=%s status=422 errors=%d", request.url.path, len(errors)
    )
    return JSONResponse(status_code=422, content={"detail": jsonable_encoder(errors)})
