"""Gigabyte lines and oversized bodies are streamed, never held in memory.

The test server caps uploads at 64 MiB. Bodies are sent from generators, so
neither the test nor the server keeps a whole upload in memory.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.evaluation.upload_limits import MAX_LINE_BYTES
from tests.conftest import BACKENDS
from tests.security.corpus import (
    error_of,
    long_line_csv,
    multipart_stream,
    resident_bytes,
)
from tests.servers import LiveServer, live_server

pytestmark = pytest.mark.slow

MAX_UPLOAD_BYTES = 64 * 1024**2
RSS_GROWTH_LIMIT = 500 * 1024**2


@pytest.fixture(scope="module", params=BACKENDS)
def small_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A live server that accepts uploads of at most 64 MiB."""
    root = tmp_path_factory.mktemp(f"small-{request.param}")
    env = {"DISTILGATE_MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES)}
    with live_server(request.param, root, env) as live:
        yield live


def stream_upload(
    server: LiveServer, original: Iterator[bytes], subset: bytes
) -> httpx.Response:
    boundary = uuid.uuid4().hex
    parts = [("original", "long.csv", original), ("subset", "small.csv", [subset])]
    return httpx.post(
        f"{server.url}/api/v1/gates/data",
        content=multipart_stream(boundary, parts),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        timeout=300.0,
    )


def blob_files(server: LiveServer) -> list[Path]:
    data_dir = Path(server.env["DISTILGATE_DATA_DIR"])
    return [path for path in data_dir.rglob("*") if path.is_file()]


def test_long_csv_line_rejected(small_server: LiveServer) -> None:
    before = resident_bytes(small_server.process.pid)
    original = long_line_csv(MAX_LINE_BYTES + 1024)
    response = stream_upload(small_server, original, b"a,b\n1,2\n")
    growth = resident_bytes(small_server.process.pid) - before
    error = error_of(response)
    assert response.status_code == 413
    assert error["loc"] == ["body", "original"]
    assert str(error["msg"]).startswith(
        f"original 'long.csv' has a line longer than {MAX_LINE_BYTES:,} bytes"
    )
    assert growth < RSS_GROWTH_LIMIT


def test_body_over_upload_limit_rejected(small_server: LiveServer) -> None:
    before = resident_bytes(small_server.process.pid)
    original = long_line_csv(2 * MAX_UPLOAD_BYTES)
    response = stream_upload(small_server, original, b"a,b\n1,2\n")
    growth = resident_bytes(small_server.process.pid) - before
    error = error_of(response)
    assert response.status_code == 413
    assert error["loc"] == ["body", "original"]
    assert f"larger than the {MAX_UPLOAD_BYTES:,}-byte upload limit" in str(
        error["msg"]
    )
    assert growth < RSS_GROWTH_LIMIT
    sizes = [path.stat().st_size for path in blob_files(small_server)]
    assert all(size <= MAX_UPLOAD_BYTES for size in sizes)


def test_server_healthy_after_streams(small_server: LiveServer) -> None:
    response = httpx.get(f"{small_server.url}/healthz", timeout=10.0)
    assert response.status_code == 200
