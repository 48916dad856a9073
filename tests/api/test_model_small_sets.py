"""Model gates on tiny evaluation sets and on unusable model uploads."""

import zipfile

import numpy as np
import pytest

from tests.api.helpers import checks_by_name, only_error, post_files

pytestmark = pytest.mark.slow


def first_rows(artifacts, tmp_path, rows):
    with np.load(artifacts["digits_test_npz"]) as data:
        features, labels = data["X"][:rows], data["y"][:rows]
    path = tmp_path / f"digits_{rows}.npz"
    np.savez(path, X=features, y=labels)
    return path


@pytest.mark.parametrize("rows", [1, 10])
def test_model_gate_tiny_set_not_passed(server, artifacts, tmp_path, rows):
    files = {
        "teacher": artifacts["teacher"],
        "student": artifacts["student"],
        "dataset": first_rows(artifacts, tmp_path, rows),
    }
    response = post_files(server.url, "model", files, project="digits")
    assert response.status_code == 200, response.text
    result = response.json()
    accuracy = checks_by_name(result)["accuracy_loss"]
    low, high = accuracy["interval"]
    assert accuracy["status"] == "inconclusive", accuracy["message"]
    assert result["status"] == "inconclusive"
    assert high - low > 0.4
    details = result["details"]["accuracy_loss"]
    assert details["rows"] == rows
    assert details["rows_needed_for_decisive_verdict"] > 10 * rows


def test_model_gate_garbage_onnx_named_by_filename(server, artifacts, tmp_path):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07this is not a protobuf model" * 4)
    files = {
        "teacher": garbage,
        "student": artifacts["student"],
        "dataset": artifacts["digits_test_npz"],
    }
    response = post_files(server.url, "model", files, project="digits")
    assert response.status_code == 422, response.text
    error = only_error(response)
    assert error["loc"] == ["body", "teacher"]
    assert "teacher file 'garbage.onnx' is not an ONNX model" in error["msg"]
    assert error["input"] == "garbage.onnx"


def test_model_gate_torchscript_named_by_filename(server, artifacts, tmp_path):
    scripted = tmp_path / "scripted.pt"
    with zipfile.ZipFile(scripted, "w") as archive:
        archive.writestr("scripted/data.pkl", b"\x80\x02}q\x00.")
        archive.writestr("scripted/constants.pkl", b"\x80\x02).")
        archive.writestr("scripted/code/__torch__/model.py", "class Model: pass\n")
    files = {
        "teacher": artifacts["teacher"],
        "student": scripted,
        "dataset": artifacts["digits_test_npz"],
    }
    response = post_files(server.url, "model", files, project="digits")
    assert response.status_code == 422, response.text
    error = only_error(response)
    assert error["loc"] == ["body", "student"]
    assert "student file 'scripted.pt' is a TorchScript archive" in error["msg"]
    assert error["input"] == "scripted.pt"


def digits_files(artifacts, dataset=None):
    return {
        "teacher": artifacts["teacher"],
        "student": artifacts["student"],
        "dataset": dataset or artifacts["digits_test_npz"],
    }


@pytest.mark.parametrize("task", ["regression", "binary"])
def test_model_gate_task_mismatch_rejected(server, artifacts, task):
    response = post_files(
        server.url, "model", digits_files(artifacts), policy={"task": task}
    )
    assert response.status_code == 422, response.text
    error = only_error(response)
    assert error["loc"] == ["body", "teacher"]
    assert f"the {task} task (set by policy.task)" in error["msg"]
    assert error["input"].endswith(", 10]")
    assert error["input"] in error["msg"]


def test_model_gate_float_labels_rejected(server, artifacts, tmp_path):
    with np.load(artifacts["digits_test_npz"]) as data:
        features, labels = data["X"], data["y"] + 0.5
    dataset = tmp_path / "continuous.npz"
    np.savez(dataset, X=features, y=labels)
    response = post_files(server.url, "model", digits_files(artifacts, dataset))
    assert response.status_code == 422, response.text
    error = only_error(response)
    assert "the regression task (inferred: the labels are continuous" in error["msg"]
    assert error["input"].endswith(", 10]")
