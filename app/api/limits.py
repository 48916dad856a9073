"""Request body limit, enforced while the body streams in.

A request whose declared ``Content-Length`` is over the limit gets 413 before
any body is read. A chunked body, or one whose length was understated, is counted
as it arrives and cut off with 413 as soon as it passes the limit, so the
server never reads or spools more than the limit.
"""

from __future__ import annotations

import logging

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

LIMIT_SETTING = "DISTILGATE_MAX_REQUEST_BYTES"


class BodyTooLargeError(HTTPException):
    """A request body passed the server's limit while it was being read."""

    def __init__(self, max_bytes: int):
        super().__init__(413, too_large_message(max_bytes))


def too_large_message(max_bytes: int, declared: int | None = None) -> str:
    size = "" if declared is None else f" (Content-Length {declared})"
    return (
        f"request body{size} is larger than the server accepts: {max_bytes} "
        f"bytes, set by {LIMIT_SETTING}; send smaller files"
    )


class BodySizeLimit:
    """ASGI middleware that rejects request bodies over ``max_bytes`` with 413."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            logger.info(
                "request body rejected path=%s content_length=%d max_bytes=%d",
                scope.get("path"),
                declared,
                self.max_bytes,
            )
            detail = {
                "type": "payload_too_large",
                "loc": ["header", "Content-Length"],
                "msg": too_large_message(self.max_bytes, declared),
                "input": declared,
            }
            response = JSONResponse({"detail": [detail]}, status_code=413)
            await response(scope, receive, send)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    logger.info(
                        "request body cut off path=%s received=%d max_bytes=%d",
                        scope.get("path"),
                        received,
                        self.max_bytes,
                    )
                    raise BodyTooLargeError(self.max_bytes)
            return message

        await self.app(scope, limited_receive, send)


def _content_length(scope: Scope) -> int | None:
    value = Headers(scope=scope).get("content-length")
    if value is None or not value.isdigit():
        return None
    return int(value)
