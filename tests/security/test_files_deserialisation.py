"""Nothing from an upload is unpickled: pickle payloads leave their canary absent.

Each payload calls ``pathlib.Path.touch`` on a canary when unpickled. The live
server (SQLite, then PostgreSQL) must return 4xx naming the format, and the
canary must not exist afterwards. No YAML is read from any upload, so there is
no YAML case.
"""

from __future__ import annotations

import pickle
import uuid
from pathlib import Path

import numpy as np
import pytest

from tests.security.corpus import (
    TouchOnLoad,
    error_of,
    npy_bytes,
    object_npy,
    object_npz,
    pickle_payload,
    post_gate,
    torch_save_zip,
    torchscript_zip,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    return tmp_path / f"unpickled-{uuid.uuid4().hex}"


def dataset_npz() -> bytes:
    import io

    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    np.savez(buffer, X=rng.random((8, 4), dtype=np.float32), y=np.arange(8) % 3)
    return buffer.getvalue()


def model_upload(teacher: tuple[str, bytes]) -> dict[str, tuple[str, bytes]]:
    return {
        "teacher": teacher,
        "student": teacher,
        "dataset": ("eval.npz", dataset_npz()),
    }


def test_payload_runs_when_unpickled(canary: Path) -> None:
    # The payload must work, or the canary checks below prove nothing.
    pickle.loads(pickle_payload(canary))
    assert canary.exists()


def test_object_npy_dataset_not_unpickled(server, canary: Path) -> None:
    payload = ("original.npy", object_npy(canary))
    files = {"original": payload, "subset": ("subset.npy", object_npy(canary))}
    response = post_gate(server.url, "data", files)
    error = error_of(response)
    assert response.status_code == 422
    assert error["loc"] == ["body", "original"]
    assert "has dtype object (Python objects), which is never unpickled" in str(
        error["msg"]
    )
    assert not canary.exists()


def test_object_npz_dataset_not_unpickled(server, tmp_path: Path, canary: Path) -> None:
    student = ("student.onnx", b"not read before the dataset")
    files = {
        "teacher": student,
        "student": student,
        "dataset": ("eval.npz", object_npz(canary)),
    }
    response = post_gate(server.url, "model", files)
    error = error_of(response)
    assert response.status_code == 422
    assert error["loc"] == ["body", "dataset"]
    assert "array 'X' has dtype object" in str(error["msg"])
    assert not canary.exists()


def test_object_npy_predictions_not_unpickled(server, canary: Path) -> None:
    files = {
        "teacher_predictions": ("teacher.npy", object_npy(canary)),
        "student_predictions": ("student.npy", npy_bytes(np.array([0, 1]))),
    }
    response = post_gate(server.url, "model", files)
    error = error_of(response)
    assert response.status_code == 422
    assert error["loc"] == ["body", "teacher_predictions"]
    assert "which is never unpickled" in str(error["msg"])
    assert not canary.exists()


@pytest.mark.parametrize("name", ["model.joblib", "model.pkl", "model.onnx"])
def test_pickled_model_not_unpickled(server, canary: Path, name: str) -> None:
    response = post_gate(
        server.url, "model", model_upload((name, pickle_payload(canary)))
    )
    error = error_of(response)
    assert response.status_code == 422
    assert error["loc"] == ["body", "teacher"]
    assert "which DistilGate does not unpickle" in str(error["msg"])
    assert not canary.exists()


def test_torch_save_zip_not_unpickled(server, canary: Path) -> None:
    response = post_gate(
        server.url, "model", model_upload(("model.pt", torch_save_zip(canary)))
    )
    error = error_of(response)
    assert response.status_code == 422
    assert "was saved with torch.save" in str(error["msg"])
    assert "which DistilGate does not unpickle" in str(error["msg"])
    assert not canary.exists()


def test_torchscript_refused_unless_enabled(server, canary: Path) -> None:
    response = post_gate(
        server.url, "model", model_upload(("model.pt", torchscript_zip(canary)))
    )
    error = error_of(response)
    assert response.status_code == 422
    assert "is a TorchScript archive, but this server does not run TorchScript" in (
        str(error["msg"])
    )
    assert not canary.exists()


def test_pickle_named_csv_is_plain_text(server, canary: Path) -> None:
    # Protocol 0 pickles are printable text, so they sniff as CSV. pandas reads
    # them as a one-column table of text and never unpickles.
    payload = pickle.dumps(TouchOnLoad(canary), protocol=0)
    files = {
        "original": ("original.csv", payload),
        "subset": ("subset.csv", payload),
    }
    response = post_gate(server.url, "data", files)
    result = response.json()
    assert response.status_code == 200, result
    assert result["metrics"]["original_rows"] == len(payload.splitlines()) - 1
    assert not canary.exists()
