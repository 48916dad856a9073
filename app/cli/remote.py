"""Post a gate to a running DistilGate service."""

from __future__ import annotations

import logging
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from app.errors import DistilGateError, InputError

logger = logging.getLogger(__name__)

TIMEOUT = httpx.Timeout(connect=10.0, read=900.0, write=300.0, pool=10.0)


class ServerError(DistilGateError):
    """The server could not be reached or answered with an error."""

    error_type = "server_error"


def submit(
    server: str,
    kind: str,
    files: dict[str, Path],
    form: dict[str, str],
    policy_text: str | None,
) -> dict[str, Any]:
    """Upload the files of a gate and return the server's result."""
    url = f"{server.rstrip('/')}/api/v1/gates/{kind}"
    data = dict(form)
    if policy_text is not None:
        data["policy"] = policy_text
    with ExitStack() as stack:
        parts = {
            field: (path.name, stack.enter_context(path.open("rb")))
            for field, path in files.items()
        }
        response = _post(url, data, parts)
    return _result(response)


def _post(url: str, data: dict[str, str], parts: dict[str, Any]) -> httpx.Response:
    try:
        return httpx.post(url, data=data, files=parts, timeout=TIMEOUT)
    except httpx.InvalidURL as exc:
        raise InputError(
            f"--server {url!r} is not a valid URL: {exc}", field="server", value=url
        ) from None
    except httpx.HTTPError as exc:
        raise ServerError(
            f"cannot reach the DistilGate server at {url}: {exc}; check --server "
            "and that the service runs (distilgate serve)",
            field="server",
            value=url,
        ) from None


def _result(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.is_success and isinstance(body, dict) and "status" in body:
        return body
    raise ServerError(
        f"the server answered HTTP {response.status_code}: {_describe(body, response)}"
    )


def _describe(body: Any, response: httpx.Response) -> str:
    if isinstance(body, dict) and isinstance(body.get("detail"), list):
        messages = []
        for item in body["detail"]:
            location = ".".join(str(part) for part in item.get("loc", [])[1:])
            messages.append(
                f"{location}: {item.get('msg')}" if location else str(item.get("msg"))
            )
        return "; ".join(messages)
    return response.text[:500]
