"""Application factory: runtime, routes and error rendering."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import __version__
from app.api.deps import FORM_LIMITS
from app.api.limits import BodySizeLimit
from app.api.middleware import RequestIdMiddleware
from app.api.routes import admin, distill, gates, internal, projects
from app.api.routes import metrics as metrics_routes
from app.auth import AuthenticationError, QueryTokenFilter
from app.config import Settings, get_settings
from app.errors import (
    DistilGateError,
    ServiceUnavailableError,
    json_safe,
    loggable,
    printable,
)
from app.ratelimit import RateLimitedError
from app.runtime import Runtime
from app.schemas import Health
from app.storage.db import UNAVAILABLE_ERRORS

logger = logging.getLogger(__name__)

# Seconds a client waits before retrying while the database is unavailable.
DATABASE_RETRY_AFTER_S = 5

health = APIRouter(tags=["health"])


@health.get("/healthz")
def healthz() -> Health:
    """Report that the service is up, with its version."""
    return Health(status="ok", version=__version__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the DistilGate application for ``settings`` (default: environment)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = Runtime(settings)
        runtime.start()
        app.state.runtime = runtime
        if not runtime.auth_enabled:
            logger.warning(
                "authentication is off: set DISTILGATE_ADMIN_TOKEN to require tokens"
            )
        logger.info(
            "service started version=%s data_dir=%s", __version__, settings.data_dir
        )
        yield
        runtime.stop()
        logger.info("service stopped")

    app = FastAPI(
        title="DistilGate",
        version=__version__,
        summary="Quality gate for distilled datasets and distilled models.",
        lifespan=lifespan,
        form_limits=FORM_LIMITS,
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    _mask_query_tokens()
    routers = (health, gates.router, distill.router, projects.router, admin.router)
    for router in routers:
        app.include_router(router)
    app.include_router(internal.router)
    public_metrics = settings.metrics_public
    app.include_router(
        metrics_routes.public_router if public_metrics else metrics_routes.router
    )
    app.add_middleware(RequestIdMiddleware)
    app.add_exception_handler(DistilGateError, _render_error)  # type: ignore[arg-type]
    app.add_exception_handler(
        RequestValidationError,
        _render_validation_error,  # type: ignore[arg-type]
    )
    app.add_exception_handler(StarletteHTTPException, _render_http_error)  # type: ignore[arg-type]
    for error in UNAVAILABLE_ERRORS:
        app.add_exception_handler(error, _database_unavailable)
    app.add_exception_handler(Exception, _render_unexpected)
    return app


def _mask_query_tokens() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, QueryTokenFilter) for f in access.filters):
        access.addFilter(QueryTokenFilter())


async def _render_error(request: Request, exc: DistilGateError) -> JSONResponse:
    logger.info(
        "request rejected path=%s status=%d field=%s",
        loggable(request.url.path),
        exc.status_code,
        loggable(str(exc.field)),
    )
    headers = {}
    if isinstance(exc, AuthenticationError):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, ServiceUnavailableError | RateLimitedError):
        headers["Retry-After"] = str(exc.retry_after_s)
    return JSONResponse(
        status_code=exc.status_code,
        content={"detail": [exc.to_detail()]},
        headers=headers,
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
            discriminator = error.get("ctx", {}).get("discriminator", "kind")
            error["loc"] = (*error["loc"], discriminator.strip("'"))
        error.pop("url", None)
        errors.append(json_safe(jsonable_encoder(error, sqlalchemy_safe=True)))
    logger.info(
        "request rejected path=%s status=422 errors=%d",
        loggable(request.url.path),
        len(errors),
    )
    return JSONResponse(status_code=422, content={"detail": errors})


async def _render_http_error(
    request: Request, exc: StarletteHTTPException
) -> JSONResponse:
    """Render framework errors, such as a malformed multipart body, in our shape."""
    detail = {
        "type": "http_error",
        "loc": ["body"] if exc.status_code == 400 else [],
        "msg": printable(str(exc.detail)),
        "input": None,
    }
    return JSONResponse(
        status_code=exc.status_code,
        content={"detail": [detail]},
        headers=getattr(exc, "headers", None),
    )


async def _render_unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.error("unexpected error path=%s", loggable(request.url.path), exc_info=exc)
    detail: dict[str, object] = {
        "type": "internal_error",
        "loc": [],
        "msg": "internal error; the server log has the details",
        "input": None,
    }
    return JSONResponse(status_code=500, content={"detail": [detail]})


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    logger.warning(
        "database unavailable path=%s error=%s",
        loggable(request.url.path),
        type(exc).__name__,
    )
    detail: dict[str, object] = {
        "type": "service_unavailable",
        "loc": [],
        "msg": "the database is unavailable or busy; retry later",
        "input": None,
    }
    return JSONResponse(
        status_code=503,
        content={"detail": [detail]},
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
    )
