"""ASGI middleware that gives every HTTP request an id for its log lines."""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observability.context import LogContext, enter, leave, request_id_from

REQUEST_ID_HEADER = "X-Request-ID"


class RequestIdMiddleware:
    """Bind a request id to the log context and echo it in the response.

    The client's ``X-Request-ID`` is kept when it is a safe short id. Any
    other value is replaced by a new random one.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(Headers(scope=scope).get(REQUEST_ID_HEADER))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        token = enter(LogContext(request_id=request_id))
        await self.app(scope, receive, send_with_id)
        # Not reset when the app raises, so the error handler outside this
        # middleware still logs the id. ASGI servers run each request in its own
        # task, whose context ends with the request.
        leave(token)
