"""The request id middleware inside a real Starlette app and error handler."""

from __future__ import annotations

import asyncio

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from app.api.middleware import RequestIdMiddleware
from app.observability import context


def get(app: Starlette, path: str, headers: dict[str, str] | None = None):
    """Send GETs to ``app`` in this process, without a server."""

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://app"
        ) as client:
            return await client.get(path, headers=headers)

    return asyncio.run(send())


def build_app(seen: list[str | None]) -> Starlette:
    async def ok(request: Request) -> PlainTextResponse:
        seen.append(context.current().request_id)
        return PlainTextResponse("ok")

    async def crash(request: Request) -> PlainTextResponse:
        raise RuntimeError("boom")

    async def on_crash(request: Request, exc: Exception) -> JSONResponse:
        seen.append(context.current().request_id)
        return JSONResponse({"detail": "internal"}, status_code=500)

    app = Starlette(
        routes=[Route("/ok", ok), Route("/crash", crash)],
        exception_handlers={Exception: on_crash},
    )
    app.add_middleware(RequestIdMiddleware)
    return app


def test_middleware_binds_request_id():
    seen: list[str | None] = []
    response = get(build_app(seen), "/ok", {"X-Request-ID": "abc-1"})
    assert response.headers["x-request-id"] == "abc-1"
    assert seen == ["abc-1"]


def test_middleware_unbinds_after_request():
    app = build_app([])

    async def request_then_read_context() -> str | None:
        # ASGITransport awaits the app in this task, so a binding left behind
        # by the middleware would be visible here.
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://app"
        ) as client:
            await client.get("/ok", headers={"X-Request-ID": "first"})
        return context.current().request_id

    assert asyncio.run(request_then_read_context()) is None


def test_error_handler_sees_request_id():
    seen: list[str | None] = []
    response = get(build_app(seen), "/crash", {"X-Request-ID": "crash-1"})
    assert response.status_code == 500
    assert seen == ["crash-1"]
