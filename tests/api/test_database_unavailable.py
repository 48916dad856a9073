"""A locked or unreachable database gives 503 with Retry-After, never 500."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import LiveServer


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[tuple[LiveServer, Path]]:
    database = tmp_path / "gates.db"
    live = LiveServer(
        f"sqlite:///{database}",
        tmp_path / "data",
        tmp_path / "server.log",
        extra_env={"DISTILGATE_SQLITE_BUSY_TIMEOUT_MS": "200"},
    ).start()
    try:
        yield live, database
    finally:
        live.stop()


def test_locked_database_gives_503(
    sqlite_server: tuple[LiveServer, Path],
) -> None:
    live, database = sqlite_server
    body = {"kind": "data", "original": {"coverage": 0.9}, "subset": {"coverage": 0.88}}
    stored = httpx.post(f"{live.url}/api/v1/gates/metrics", json=body, timeout=30)
    assert stored.status_code == 200, stored.text

    holder = sqlite3.connect(database, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        # The database runs in WAL mode, so reads still succeed. A write waits for the
        # lock, then fails.
        locked = httpx.post(f"{live.url}/api/v1/gates/metrics", json=body, timeout=30)
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    assert locked.status_code == 503, locked.text
    assert locked.headers["Retry-After"] == "5"
    assert locked.json()["detail"][0]["type"] == "service_unavailable"
    listed = httpx.get(f"{live.url}/api/v1/gates", timeout=30).json()
    assert [gate["id"] for gate in listed["items"]] == [stored.json()["id"]]
    assert "Traceback" not in live.log_path.read_text()
