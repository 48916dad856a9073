"""Request limits on a live server: body size, form shape, rates, job queue."""

import select
import socket

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.api.helpers import only_error
from tests.security.helpers import ADMIN, METRICS, bearer
from tests.servers import live_server

pytestmark = pytest.mark.slow

MAX_REQUEST = 4 << 20
RATE = 5
ENV = {
    "DISTILGATE_ADMIN_TOKEN": ADMIN,
    "DISTILGATE_MAX_REQUEST_BYTES": str(MAX_REQUEST),
    "DISTILGATE_RATE_LIMIT_PER_MINUTE": str(RATE),
    "DISTILGATE_JOB_WORKERS": "1",
    "DISTILGATE_MAX_PENDING_JOBS": "1",
}
CHUNK = 64 * 1024


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def limited(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"limits-{request.param}")
    with live_server(request.param, root, dict(ENV)) as live:
        yield live


def submit_token(server):
    response = httpx.post(
        f"{server.url}/api/v1/tokens",
        json={"name": "ci", "scopes": ["submit", "read"]},
        headers=bearer(ADMIN),
    )
    assert response.status_code == 201, response.text
    return response.json()["token"]


def multipart_opening(field="original"):
    return (
        b"--limit\r\nContent-Disposition: form-data; "
        + f'name="{field}"; filename="big.csv"\r\n\r\n'.encode()
    )


def read_answer(sock):
    """Read a response until the server closes the connection."""
    data = b""
    while len(data) < 1 << 20:
        try:
            part = sock.recv(65536)
        except OSError:
            break
        if not part:
            break
        data += part
    return data


def test_chunked_upload_over_limit_is_413(limited):
    def body():
        yield multipart_opening()
        for _ in range(2 * MAX_REQUEST // CHUNK):
            yield b"a" * CHUNK

    response = httpx.post(
        f"{limited.url}/api/v1/gates/data",
        content=body(),
        headers={
            **bearer(ADMIN),
            "content-type": "multipart/form-data; boundary=limit",
        },
        timeout=60,
    )
    error = only_error(response)
    assert response.status_code == 413
    assert "DISTILGATE_MAX_REQUEST_BYTES" in error["msg"]
    assert str(MAX_REQUEST) in error["msg"]


def test_chunked_upload_is_cut_off_while_streaming(limited):
    """The 413 arrives while the client is still sending, long before the end."""
    total = 64 * MAX_REQUEST
    head = (
        "POST /api/v1/gates/data HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{limited.port}\r\n"
        f"Authorization: Bearer {ADMIN}\r\n"
        "Content-Type: multipart/form-data; boundary=limit\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    opening = multipart_opening()
    sent = 0
    with socket.create_connection(("127.0.0.1", limited.port), timeout=30) as sock:
        sock.sendall(head + f"{len(opening):x}\r\n".encode() + opening + b"\r\n")
        chunk = f"{CHUNK:x}\r\n".encode() + b"a" * CHUNK + b"\r\n"
        while sent < total:
            if select.select([sock], [], [], 0)[0]:
                break
            try:
                sock.sendall(chunk)
            except OSError:
                break
            sent += CHUNK
        answer = read_answer(sock)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < total // 4


def test_declared_length_over_limit_is_413_unread(limited):
    head = (
        "POST /api/v1/gates/data HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{limited.port}\r\n"
        "Content-Type: multipart/form-data; boundary=limit\r\n"
        f"Content-Length: {10 * MAX_REQUEST}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", limited.port), timeout=30) as sock:
        sock.sendall(head)
        answer = read_answer(sock)
    status, _, rest = answer.partition(b"\r\n")
    assert status == b"HTTP/1.1 413 Request Entity Too Large"
    assert b"application/json" in rest
    assert f"(Content-Length {10 * MAX_REQUEST})".encode() in rest


def test_too_many_files_is_400(limited):
    files = [("original", (f"{n}.csv", b"a\n1\n")) for n in range(17)]
    response = httpx.post(
        f"{limited.url}/api/v1/gates/data", files=files, headers=bearer(ADMIN)
    )
    assert response.status_code == 400
    assert "Maximum number of files is 16" in only_error(response)["msg"]


def test_too_many_fields_is_400(limited):
    fields = {f"field{n}": "x" for n in range(33)}
    response = httpx.post(
        f"{limited.url}/api/v1/gates/data",
        data=fields,
        files={"original": ("a.csv", b"a\n1\n")},
        headers=bearer(ADMIN),
    )
    assert response.status_code == 400
    assert "Maximum number of fields is 32" in only_error(response)["msg"]


def test_oversized_text_field_is_400(limited):
    response = httpx.post(
        f"{limited.url}/api/v1/gates/data",
        data={"policy": "x" * (1 << 20 | 1)},
        files={"original": ("a.csv", b"a\n1\n")},
        headers=bearer(ADMIN),
    )
    assert response.status_code == 400
    assert "exceeded maximum size" in only_error(response)["msg"]


def test_submissions_are_rate_limited_per_token(limited):
    first, second = submit_token(limited), submit_token(limited)
    url = f"{limited.url}/api/v1/gates/metrics"
    allowed = [
        httpx.post(url, json=METRICS, headers=bearer(first), timeout=60).status_code
        for _ in range(RATE)
    ]
    limited_response = httpx.post(url, json=METRICS, headers=bearer(first))
    other = httpx.post(url, json=METRICS, headers=bearer(second), timeout=60)
    error = only_error(limited_response)
    assert allowed == [200] * RATE
    assert limited_response.status_code == 429
    assert 1 <= int(limited_response.headers["retry-after"]) <= 60
    assert error["type"] == "rate_limited"
    assert f"the limit is {RATE} per minute per token" in error["msg"]
    assert "DISTILGATE_RATE_LIMIT_PER_MINUTE" in error["msg"]
    assert other.status_code == 200


def test_full_job_queue_is_503(limited, tmp_path):
    rng = np.random.default_rng(7)
    table = pd.DataFrame(rng.normal(size=(15_000, 8)), columns=list("abcdefgh"))
    table["label"] = rng.integers(0, 4, len(table))
    original, subset = tmp_path / "original.csv", tmp_path / "subset.csv"
    table.to_csv(original, index=False)
    table.sample(frac=0.4, random_state=1).to_csv(subset, index=False)
    token = submit_token(limited)

    running = httpx.post(
        f"{limited.url}/api/v1/gates/data",
        params={"wait": 0},
        files={"original": original.read_bytes(), "subset": subset.read_bytes()},
        headers=bearer(token),
        timeout=60,
    )
    retried_request = {
        "url": f"{limited.url}/api/v1/gates/metrics",
        "json": {**METRICS, "project": "queue-full"},
        "headers": {**bearer(token), "Idempotency-Key": "queue-full-1"},
        "timeout": 60,
    }
    rejected = httpx.post(params={"wait": 0}, **retried_request)
    stored = httpx.get(
        f"{limited.url}/api/v1/gates",
        params={"project": "queue-full"},
        headers=bearer(token),
    )

    finished = httpx.get(
        f"{limited.url}/api/v1/gates/{running.json()['id']}",
        params={"wait": 120},
        headers=bearer(token),
        timeout=130,
    )
    retried = httpx.post(params={"wait": 30}, **retried_request)

    assert running.status_code == 202, running.text
    assert rejected.status_code == 503
    assert rejected.headers["retry-after"] == "30"
    assert "job queue is full (1 gates pending" in only_error(rejected)["msg"]
    assert "DISTILGATE_MAX_PENDING_JOBS" in only_error(rejected)["msg"]
    assert stored.json()["items"] == []
    assert finished.json()["status"] in ("passed", "failed", "inconclusive")
    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] != "error"
    assert retried.json()["error"] is None
