"""Conversion of a gate result into an HTTP response: wait, 200, 202 or 412."""

from __future__ import annotations

import asyncio
import time

from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from app.auth import Principal
from app.runtime import Runtime
from app.schemas import TERMINAL_STATUSES, GateResult

POLL_INTERVAL_S = 0.2
VERDICT_ERROR_STATUS = 412
PENDING_ERROR_STATUS = 408
_NOT_PASSING = frozenset({"failed", "error", "inconclusive"})

WAIT_DESCRIPTION = (
    "Seconds to wait for the verdict (0-600). When the gate is still running "
    "after that, the answer is 202 with Location and Retry-After."
)
FAIL_DESCRIPTION = (
    "Answer 412 when the verdict is failed, error or inconclusive, and 408 when "
    "it is not ready within `wait`, so that `curl --fail-with-body` fails the step."
)
GATE_RESPONSES: dict[int | str, dict[str, object]] = {
    202: {"model": GateResult, "description": "Accepted; the gate is still running."},
    408: {"model": GateResult, "description": "Not ready within `wait`."},
    412: {"model": GateResult, "description": "A verdict other than passed."},
}


async def wait_for_verdict(
    runtime: Runtime, gate_id: str, principal: Principal, wait_s: float
) -> GateResult:
    """Poll the stored gate until it is terminal or ``wait_s`` has passed."""
    deadline = time.monotonic() + wait_s
    while True:
        result = await run_in_threadpool(runtime.get, gate_id, principal)
        remaining = deadline - time.monotonic()
        if result.status in TERMINAL_STATUSES or remaining <= 0:
            return result
        await asyncio.sleep(min(POLL_INTERVAL_S, remaining))


async def gate_response(
    runtime: Runtime,
    result: GateResult,
    principal: Principal,
    *,
    wait_s: float,
    fail_on_verdict: bool,
) -> JSONResponse:
    """Return the verdict once ready, or a 202 response when it is not ready in time."""
    if result.status not in TERMINAL_STATUSES and wait_s > 0:
        result = await wait_for_verdict(runtime, result.id, principal, wait_s)
    body = result.model_dump(mode="json")
    location = f"/api/v1/gates/{result.id}"
    if result.status not in TERMINAL_STATUSES:
        status = PENDING_ERROR_STATUS if fail_on_verdict else 202
        headers = {"Location": location, "Retry-After": "2"}
        return JSONResponse(body, status_code=status, headers=headers)
    failing = fail_on_verdict and result.status in _NOT_PASSING
    status = VERDICT_ERROR_STATUS if failing else 200
    return JSONResponse(body, status_code=status, headers={"Location": location})
