"""The artifact store under races, crashes and a full disk.

A full disk is a 2 MiB tmpfs mounted on the server's data directory. Mounting
needs root, so without it those tests are skipped with the reason.
"""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.storage.blobs import BlobStore, StoredBlob
from tests.conftest import BACKENDS
from tests.databases import database_url_for
from tests.security.corpus import csv_table, error_of, post_gate
from tests.servers import LiveServer

THREADS = 16
TMPFS_BYTES = 2 * 1024**2


def final_path(root: Path, content: bytes) -> Path:
    digest = hashlib.sha256(content).hexdigest()
    return root / digest[:2] / digest[2:4] / digest


def files_under(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


# Races


def test_racing_identical_uploads_store_one_blob(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    content = os.urandom(3 * 1024**2)
    barrier = threading.Barrier(THREADS)
    results: list[StoredBlob] = []
    errors: list[BaseException] = []

    def upload() -> None:
        barrier.wait()
        try:
            results.append(
                store.put(io.BytesIO(content), field="original", max_bytes=1 << 30)
            )
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=upload) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(results) == THREADS
    assert {result.path for result in results} == {final_path(tmp_path, content)}
    assert files_under(tmp_path) == [final_path(tmp_path, content)]
    assert final_path(tmp_path, content).read_bytes() == content


# Crashes

WRITER = """
import sys, time
from pathlib import Path
from app.storage.blobs import BlobStore

class SlowStream:
    def __init__(self):
        self.sent = 0
    def read(self, size):
        if self.sent >= 4:
            time.sleep(60)  # the test kills the writer here
            return b""
        self.sent += 1
        return b"x" * 65536

BlobStore(Path(sys.argv[1])).put(SlowStream(), field="original", max_bytes=1 << 30)
"""


def test_killed_writer_leaves_no_blob(tmp_path: Path) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)],
        cwd=Path(__file__).resolve().parents[2],
    )
    incoming = tmp_path / "incoming"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            partial = [p for p in incoming.glob("*") if p.stat().st_size >= 4 * 65536]
            if partial:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the writer never wrote its first chunks")
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=10)
    assert writer.returncode == -signal.SIGKILL
    # The only file left is the temporary one; no file carries a sha256 name.
    assert [path.parent for path in files_under(tmp_path)] == [incoming]
    assert final_path(tmp_path, b"x" * 4 * 65536).exists() is False


def test_failing_stream_leaves_nothing(tmp_path: Path) -> None:
    class Broken(io.RawIOBase):
        def __init__(self) -> None:
            self.calls = 0

        def read(self, size: int = -1) -> bytes:
            self.calls += 1
            if self.calls > 2:
                raise ConnectionResetError("client went away")
            return b"y" * 1000

    store = BlobStore(tmp_path)
    with pytest.raises(ConnectionResetError):
        store.put(Broken(), field="subset", max_bytes=1 << 20)  # type: ignore[arg-type]
    assert files_under(tmp_path) == []


# Full disk


@pytest.fixture(scope="module", params=BACKENDS)
def full_disk_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A live server whose artifact store is a 2 MiB tmpfs."""
    root = tmp_path_factory.mktemp(f"full-{request.param}")
    data_dir = root / "data"
    data_dir.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES}", "tmpfs", str(data_dir)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {mounted.stderr.strip()}")
    try:
        with database_url_for(request.param, root) as url:
            live = LiveServer(url, data_dir, root / "server.log").start()
            try:
                yield live
            finally:
                live.stop()
    finally:
        subprocess.run(["umount", str(data_dir)], check=True)


def gate_count(server: LiveServer) -> int:
    response = httpx.get(f"{server.url}/api/v1/gates", params={"limit": 500})
    return len(response.json()["items"])


def small_table(seed: int) -> bytes:
    return csv_table(["a", "b"], [[i % 3, (i * seed) % 5] for i in range(30)])


@pytest.mark.slow
def test_full_disk_is_507_and_records_nothing(full_disk_server: LiveServer) -> None:
    data_dir = Path(full_disk_server.env["DISTILGATE_DATA_DIR"])
    before = gate_count(full_disk_server)
    big = b"a,b\n" + b"1,2\n" * (TMPFS_BYTES // 4 + 1024)
    files = {"original": ("big.csv", big), "subset": ("small.csv", small_table(3))}
    response = post_gate(full_disk_server.url, "data", files)
    error = error_of(response)
    assert response.status_code == 507
    assert error["type"] == "insufficient_storage"
    assert error["loc"] == ["body", "original"]
    assert "out of disk space" in str(error["msg"])
    assert gate_count(full_disk_server) == before
    assert files_under(data_dir) == []


@pytest.mark.slow
def test_store_recovers_after_full_disk(full_disk_server: LiveServer) -> None:
    files = {
        "original": ("original.csv", small_table(3)),
        "subset": ("subset.csv", small_table(3)),
    }
    response = post_gate(full_disk_server.url, "data", files)
    result = response.json()
    assert response.status_code == 200, result
    assert result["artifacts"]["original"]["size_bytes"] == len(small_table(3))


@pytest.mark.parametrize(
    "name", ["../../etc/passwd", "..", "", "A" * 64, "0" * 63 + "/", "0" * 65]
)
def test_store_path_rejects_non_hash(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="not a sha256 hex digest"):
        BlobStore(tmp_path).path_for(name)
