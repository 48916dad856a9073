"""Models run in a confined child: resource limits, no network, bounded time.

``confine`` is run in a fresh interpreter, as a model child runs it, and the
test checks each limit from inside. A live server (SQLite, then PostgreSQL)
then gets a model that never finishes: the gate ends as ``error`` and the
service still serves requests.
"""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.conftest import BACKENDS
from tests.evaluation.onnx_fixtures import linear_model
from tests.evaluation.test_model_forms import endless_model
from tests.servers import LiveServer, live_server

REPO = Path(__file__).resolve().parents[2]
MODEL_TIMEOUT_S = 3

PROBE = """
import errno, json, os, resource, sys
from app.evaluation.model_child import confine

port = int(sys.argv[1])
scratch = sys.argv[2]
result = {"network": confine({"memory_bytes": 2 << 30, "cpu_s": 30,
                              "file_bytes": 65536, "open_files": 64})}
result["limits"] = {
    name: resource.getrlimit(getattr(resource, name))[0]
    for name in ("RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_NOFILE")
}
import socket
import ssl  # subclasses socket.socket at import, as torch's imports do
result["ssl_imported"] = issubclass(ssl.SSLSocket, socket.socket)
try:
    socket.create_connection(("127.0.0.1", port), timeout=2)
    result["python_socket"] = "connected"
except OSError as exc:
    result["python_socket"] = type(exc).__name__
import _socket
raw = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
raw.settimeout(2)
try:
    raw.connect(("127.0.0.1", port))
    result["raw_socket"] = "connected"
except OSError as exc:
    result["raw_socket"] = errno.errorcode.get(exc.errno, str(exc.errno))
try:
    with open(os.path.join(scratch, "big"), "wb") as handle:
        handle.write(b"x" * 131072)
    result["big_file"] = "written"
except OSError as exc:
    result["big_file"] = errno.errorcode[exc.errno]
handles = []
try:
    for index in range(100):
        handles.append(open(os.path.join(scratch, f"f{index}"), "wb"))
    result["open_files"] = "all opened"
except OSError as exc:
    result["open_files"] = errno.errorcode[exc.errno]
print(json.dumps(result))
"""


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP listener on 127.0.0.1 that the confined child must not reach."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server


@pytest.fixture
def confined(listener: socket.socket, tmp_path: Path) -> dict[str, object]:
    port = listener.getsockname()[1]
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, str(port), str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    result: dict[str, object] = json.loads(completed.stdout)
    return result


def test_child_limits_applied(confined: dict[str, object]) -> None:
    assert confined["limits"] == {
        "RLIMIT_AS": 2 << 30,
        "RLIMIT_CPU": 30,
        "RLIMIT_FSIZE": 65536,
        "RLIMIT_NOFILE": 64,
    }


def test_child_file_size_capped(confined: dict[str, object]) -> None:
    assert confined["big_file"] == "EFBIG"


def test_child_open_files_capped(confined: dict[str, object]) -> None:
    assert confined["open_files"] == "EMFILE"


def test_child_python_sockets_refused(confined: dict[str, object]) -> None:
    assert confined["python_socket"] == "PermissionError"


def test_child_socket_guard_keeps_imports(confined: dict[str, object]) -> None:
    assert confined["ssl_imported"] is True


def test_child_network_namespace_empty(confined: dict[str, object]) -> None:
    if confined["network"] != "namespace":
        pytest.skip("no CAP_SYS_ADMIN here: only the Python socket guard applies")
    # In a new network namespace even loopback is down.
    assert confined["raw_socket"] == "ENETUNREACH"


# Live server


@pytest.fixture(scope="module", params=BACKENDS)
def quick_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A live server that gives each model child a few seconds."""
    root = tmp_path_factory.mktemp(f"limits-{request.param}")
    env = {"DISTILGATE_MODEL_TIMEOUT_S": str(MODEL_TIMEOUT_S)}
    with live_server(request.param, root, env) as live:
        yield live


def npz(features: np.ndarray, labels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, X=features, y=labels)
    return buffer.getvalue()


@pytest.mark.slow
def test_endless_model_ends_as_error(quick_server: LiveServer, tmp_path: Path) -> None:
    teacher = linear_model(tmp_path / "teacher.onnx", input_type=1, features=64)
    student = endless_model(tmp_path / "endless.onnx")
    rng = np.random.default_rng(0)
    files = {
        "teacher": ("teacher.onnx", teacher.read_bytes()),
        "student": ("endless.onnx", student.read_bytes()),
        "dataset": (
            "eval.npz",
            npz(rng.random((20, 64), dtype=np.float32), np.arange(20) % 3),
        ),
    }

    started = time.monotonic()
    response = httpx.post(
        f"{quick_server.url}/api/v1/gates/model",
        files=files,
        params={"wait": 0},
        timeout=60.0,
    )
    assert response.status_code == 202, response.json()
    location = response.headers["location"]

    # The service serves requests while the endless model runs.
    health = httpx.get(f"{quick_server.url}/healthz", timeout=5.0)
    assert health.status_code == 200

    result = httpx.get(
        f"{quick_server.url}{location}", params={"wait": 120}, timeout=180.0
    ).json()
    assert result["status"] == "error"
    assert "did not finish within 3 s" in result["error"]
    assert time.monotonic() - started < 120
    health = httpx.get(f"{quick_server.url}/healthz", timeout=5.0)
    assert health.status_code == 200
