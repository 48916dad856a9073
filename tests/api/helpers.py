"""Requests against a live DistilGate server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

TIMEOUT = 300.0


def post_files(
    server_url: str, kind: str, files: dict[str, Path], **form: Any
) -> httpx.Response:
    """Post a multipart gate request with the given files and form fields."""
    data = {
        key: json.dumps(value) if isinstance(value, dict) else value
        for key, value in form.items()
    }
    handles = {field: (path.name, path.read_bytes()) for field, path in files.items()}
    return httpx.post(
        f"{server_url}/api/v1/gates/{kind}", files=handles, data=data, timeout=TIMEOUT
    )


def checks_by_name(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {check["name"]: check for check in result["checks"]}


def only_error(response: httpx.Response) -> dict[str, Any]:
    """Return the single error entry of a 4xx body."""
    body = response.json()
    assert len(body["detail"]) == 1, body
    return body["detail"][0]
