"""Dependencies shared by the routes: the runtime and the authenticated caller."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Header, Request

from app.auth import Principal
from app.runtime import Runtime


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(_runtime)]


def _caller(scope: str) -> Callable[..., Principal]:
    def dependency(
        runtime: RuntimeDep,
        authorization: Annotated[str | None, Header()] = None,
    ) -> Principal:
        principal = runtime.principal(authorization, read_only=scope == "read")
        principal.require(scope)
        return principal

    return dependency


Reader = Annotated[Principal, Depends(_caller("read"))]
Submitter = Annotated[Principal, Depends(_caller("submit"))]
Admin = Annotated[Principal, Depends(_caller("admin"))]
