"""Dependencies shared by the routes: the runtime and the authenticated caller."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, TypedDict

from fastapi import Depends, Header, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from app.auth import AuthenticationError, Principal, reject_query_tokens
from app.errors import InputError, loggable
from app.evaluation.readers import suggest
from app.runtime import Runtime

logger = logging.getLogger(__name__)


class FormLimits(TypedDict, total=False):
    """Limits FastAPI applies when it parses a multipart form."""

    max_files: int
    max_fields: int
    max_part_size: int


# A gate takes at most 6 files and 10 text fields. Files are bounded by
# DISTILGATE_MAX_REQUEST_BYTES, each text field by ``max_part_size`` bytes.
FORM_LIMITS: FormLimits = {"max_files": 16, "max_fields": 32, "max_part_size": 1 << 20}


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(_runtime)]


def client_address(request: Request) -> str:
    """Return the peer address of the connection (a proxy's, behind a proxy)."""
    return request.client.host if request.client else "unknown"


def _caller(scope: str) -> Callable[..., Principal]:
    def dependency(
        request: Request,
        runtime: RuntimeDep,
        authorization: Annotated[str | None, Header()] = None,
    ) -> Principal:
        reject_query_tokens(request.query_params.keys())
        client = client_address(request)
        limits = runtime.rate_limits
        limits.check_auth_allowed(client)
        try:
            principal = runtime.principal(authorization, read_only=scope == "read")
        except AuthenticationError:
            # Only a wrong token counts towards the limit: a request without
            # one guesses nothing.
            if authorization is not None:
                limits.auth_failures.record(client)
            logger.info(
                "authentication failed client=%s path=%s",
                client,
                loggable(request.url.path),
            )
            raise
        principal.require(scope)
        if scope == "submit":
            limits.check_submission(principal.token_id or f"client:{client}")
        return principal

    return dependency


def reject_unknown_query(request: Request) -> None:
    """Reject query parameters the matched route does not declare.

    FastAPI ignores undeclared names, so a misspelt filter would silently
    return unfiltered results.
    """
    names = list(request.query_params.keys())
    reject_query_tokens(names)
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    allowed = _query_names(route.dependant)
    for name in names:
        if name not in allowed:
            choices = sorted(allowed)
            takes = ", ".join(choices) if choices else "no query parameters"
            raise InputError(
                f"unknown query parameter {name!r}{suggest(name, choices)}; "
                f"this route takes {takes}",
                field=name,
                value=request.query_params[name],
                location="query",
            )


def _query_names(dependant: Dependant) -> set[str]:
    """Collect the query parameter names of a route and its dependencies."""
    names = {param.alias for param in dependant.query_params}
    for dependency in dependant.dependencies:
        names |= _query_names(dependency)
    return names


Reader = Annotated[Principal, Depends(_caller("read"))]
Submitter = Annotated[Principal, Depends(_caller("submit"))]
Admin = Annotated[Principal, Depends(_caller("admin"))]
