"""Talk to a running DistilGate service: submit a gate, wait, fetch reports."""

from __future__ import annotations

import argparse
import logging
import math
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from app.errors import DistilGateError, InputError

logger = logging.getLogger(__name__)

TIMEOUT = httpx.Timeout(connect=10.0, read=120.0, write=300.0, pool=10.0)
POST_WAIT_S = 10
POLL_WAIT_S = 30
TERMINAL = frozenset({"passed", "failed", "error", "inconclusive", "waived"})

Progress = Callable[[dict[str, Any]], None]


class ServerError(DistilGateError):
    """The server could not be reached or responded with an error."""

    error_type = "server_error"


class Client:
    """A small client of the DistilGate REST API."""

    def __init__(self, server: str, token: str | None = None):
        self.server = server.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(
            base_url=self.server, headers=headers, timeout=TIMEOUT
        )

    def close(self) -> None:
        self._client.close()

    def submit(
        self,
        kind: str,
        files: dict[str, Path],
        form: dict[str, str],
        policy_text: str | None,
        *,
        wait_s: float = POST_WAIT_S,
    ) -> dict[str, Any]:
        """Upload the files of a gate and return the stored result so far."""
        return self.post_files(
            f"/api/v1/gates/{kind}", files, form, policy_text, wait_s=wait_s
        )

    def post_files(
        self,
        path: str,
        files: dict[str, Path],
        form: dict[str, str],
        policy_text: str | None,
        *,
        wait_s: float = POST_WAIT_S,
    ) -> dict[str, Any]:
        """Post files and form fields to ``path`` and return the stored gate so far.

        The server waits up to ``wait_s`` seconds, capped at ``POST_WAIT_S``,
        for the verdict before it responds.
        """
        data = dict(form)
        if policy_text is not None:
            data["policy"] = policy_text
        with ExitStack() as stack:
            parts = {
                field: (path.name, stack.enter_context(path.open("rb")))
                for field, path in files.items()
            }
            response = self._send(
                "POST",
                path,
                data=data,
                files=parts,
                params={"wait": min(wait_s, POST_WAIT_S)},
            )
        return _result(response)

    def wait(
        self,
        result: dict[str, Any],
        *,
        timeout_s: float,
        progress: Progress | None,
        started: float | None = None,
    ) -> dict[str, Any]:
        """Long-poll a gate until it is terminal or ``timeout_s`` has passed.

        The timeout counts from ``started``, a ``time.monotonic()`` value, or
        from now. Pass the time taken before the upload to include the upload.
        """
        deadline = (time.monotonic() if started is None else started) + timeout_s
        while result["status"] not in TERMINAL:
            if progress is not None:
                progress(result)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ServerError(
                    f"gate {result['id']} is still {result['status']} after "
                    f"{timeout_s:g} s; raise --wait-timeout or look it up later "
                    f"at {self.server}/api/v1/gates/{result['id']}"
                )
            wait = min(POLL_WAIT_S, remaining)
            response = self._send(
                "GET", f"/api/v1/gates/{result['id']}", params={"wait": wait}
            )
            result = _result(response)
        return result

    def fetch(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        """GET ``path`` and raise ServerError unless the response is a success."""
        response = self._send("GET", path, params=params)
        if not response.is_success:
            raise _error(response)
        return response

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._client.request(method, path, **kwargs)
        except httpx.InvalidURL as exc:
            raise InputError(
                f"--server {self.server!r} is not a valid URL: {exc}",
                field="server",
                value=self.server,
            ) from None
        except httpx.HTTPError as exc:
            raise ServerError(
                f"cannot reach the DistilGate server at {self.server}: {exc}; check "
                "--server and that the service runs (distilgate serve)",
                field="server",
                value=self.server,
            ) from None


def wait_timeout(text: str) -> float:
    """Parse ``--wait-timeout``: a finite number of seconds, 0 or more."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds >= 0; write for example "
            "--wait-timeout 600"
        )
    return seconds


def _result(response: httpx.Response) -> dict[str, Any]:
    body = _json(response)
    if (
        response.status_code in (200, 202)
        and isinstance(body, dict)
        and "status" in body
    ):
        return body
    raise _error(response)


def _error(response: httpx.Response) -> ServerError:
    return ServerError(
        f"the server responded with HTTP {response.status_code}: "
        f"{_describe(_json(response), response)}"
    )


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _describe(body: Any, response: httpx.Response) -> str:
    if isinstance(body, dict) and isinstance(body.get("detail"), list):
        messages = []
        for item in body["detail"]:
            location = ".".join(str(part) for part in item.get("loc", [])[1:])
            message = str(item.get("msg"))
            messages.append(f"{location}: {message}" if location else message)
        return "; ".join(messages)
    return response.text[:500]
