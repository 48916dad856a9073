"""JSON log lines of a live server: request ids, gate ids, and no tokens."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest

from tests.servers import live_server

pytestmark = pytest.mark.slow

ADMIN = "bootstrap-admin-secret-for-logs"
REDACTED = "[REDACTED]"
GATE = {
    "kind": "data",
    "project": "logs",
    "original": {"coverage": 0.9},
    "subset": {"coverage": 0.89},
}


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """A server with tokens on that writes JSON log lines at DEBUG level."""
    root = tmp_path_factory.mktemp("request-logs")
    env = {
        "DISTILGATE_ADMIN_TOKEN": ADMIN,
        "DISTILGATE_LOG_FORMAT": "json",
        "DISTILGATE_LOG_LEVEL": "DEBUG",
    }
    with live_server("sqlite", root, env) as live:
        yield live


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def log_lines(server):
    lines = []
    for text in server.log_path.read_text().splitlines():
        assert text.startswith("{"), f"not a JSON log line: {text!r}"
        lines.append(json.loads(text))
    return lines


def lines_until(server, found, timeout_s=20.0):
    """Read the log until ``found(lines)`` is true, or give up after ``timeout_s``.

    A job's last lines may be written just after the response is sent.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        lines = log_lines(server)
        if found(lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


def test_request_id_echoed_when_safe(logged):
    request_id = f"ci-{uuid.uuid4().hex[:8]}.step_3"
    response = httpx.get(
        f"{logged.url}/healthz", headers={"X-Request-ID": request_id}, timeout=30
    )
    assert response.headers["x-request-id"] == request_id


@pytest.mark.parametrize("sent", ["has spaces", "x" * 65, "../etc", None])
def test_request_id_generated_when_unsafe_or_missing(logged, sent):
    headers = {"X-Request-ID": sent} if sent is not None else {}
    response = httpx.get(f"{logged.url}/healthz", headers=headers, timeout=30)
    generated = response.headers["x-request-id"]
    assert generated != sent
    assert len(generated) == 32
    assert int(generated, 16) >= 0


def test_request_id_on_error_responses(logged):
    response = httpx.get(
        f"{logged.url}/api/v1/gates", headers={"X-Request-ID": "no-token-1"}, timeout=30
    )
    assert response.status_code == 401
    assert response.headers["x-request-id"] == "no-token-1"


def test_log_lines_carry_request_and_gate_ids(logged):
    request_id = f"gate-{uuid.uuid4().hex[:12]}"
    response = httpx.post(
        f"{logged.url}/api/v1/gates/metrics",
        json=GATE,
        headers={**bearer(ADMIN), "X-Request-ID": request_id},
        timeout=60,
    )
    gate_id = response.json()["id"]

    def job_finished(lines):
        return any(
            line.get("gate_id") == gate_id and "job finished" in line["message"]
            for line in lines
        )

    ours = [
        line
        for line in lines_until(logged, job_finished)
        if line.get("request_id") == request_id
    ]
    access = [line for line in ours if line["logger"] == "uvicorn.access"]
    job = [line for line in ours if line["logger"] == "app.observability.jobs"]
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == request_id
    assert len(access) == 1
    assert access[0]["gate_id"] == gate_id
    assert access[0]["project"] == "logs"
    assert [line["message"].split(" gate_id")[0] for line in job] == [
        "job started",
        "job finished",
    ]
    assert all(line["gate_id"] == gate_id for line in job)
    assert all(line["project"] == "logs" for line in job)
    assert all(
        {"timestamp", "level", "logger", "message"} <= set(line) for line in ours
    )


def test_tokens_never_logged(logged):
    created = httpx.post(
        f"{logged.url}/api/v1/tokens",
        json={"name": "ci", "scopes": ["submit", "read"], "projects": ["*"]},
        headers=bearer(ADMIN),
        timeout=30,
    ).json()["token"]

    wrong = "dg_" + uuid.uuid4().hex + uuid.uuid4().hex[:11]
    calls = [
        ("POST", "/api/v1/gates/metrics", bearer(created), GATE),
        ("GET", "/api/v1/gates", bearer(wrong), None),
        ("GET", "/api/v1/gates", {"Authorization": created}, None),
        ("GET", "/metrics", {**bearer(ADMIN), "X-Request-ID": ADMIN}, None),
        ("GET", "/healthz", {"X-Request-ID": created}, None),
    ]
    for method, path, headers, body in calls:
        httpx.request(
            method, f"{logged.url}{path}", headers=headers, json=body, timeout=60
        )

    text = logged.log_path.read_text()
    redacted_paths = {
        line["message"].split('"')[1].split()[1]
        for line in log_lines(logged)
        if line["logger"] == "uvicorn.access"
        and REDACTED in (line.get("request_id") or "")
    }
    assert ADMIN not in text
    assert created not in text
    assert wrong not in text
    assert created[:20] not in text
    # The two requests that sent a secret as their id were logged, redacted.
    assert {"/metrics", "/healthz"} <= redacted_paths
