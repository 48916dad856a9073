"""Odd and hostile requests get a 4xx JSON answer on SQLite and PostgreSQL."""

import json

import httpx
import numpy as np
import pytest

from tests.api.helpers import only_error, post_files

pytestmark = pytest.mark.slow


def model_files(artifacts, dataset):
    return {
        "teacher": artifacts["teacher"],
        "student": artifacts["student_tiny"],
        "dataset": dataset,
    }


def test_labels_outside_model_classes_end_in_error(server, artifacts, tmp_path):
    data = np.load(artifacts["digits_test_npz"])
    shifted = tmp_path / "shifted.npz"
    np.savez(shifted, X=data["X"], y=data["y"] + 100)
    response = post_files(server.url, "model", model_files(artifacts, shifted))
    result = response.json()
    assert response.status_code == 200
    assert result["status"] == "error"
    assert "no dataset label matches a class" in result["error"]


def test_non_finite_features_are_rejected(server, artifacts, tmp_path):
    data = np.load(artifacts["digits_test_npz"])
    features = data["X"].astype(np.float32)
    features[3, 5] = np.nan
    broken = tmp_path / "nan.npz"
    np.savez(broken, X=features, y=data["y"])
    response = post_files(server.url, "model", model_files(artifacts, broken))
    error = only_error(response)
    assert response.status_code == 422
    assert error["loc"] == ["body", "dataset"]
    assert "NaN or infinite" in error["msg"]


def test_misspelt_form_field_is_rejected(server, artifacts):
    files = {
        "original": artifacts["original_csv"],
        "subset": artifacts["subset_good_csv"],
    }
    response = post_files(server.url, "data", files, scenario_colums="ink")
    error = only_error(response)
    assert response.status_code == 422
    assert error["loc"] == ["body", "scenario_colums"]
    assert "did you mean 'scenario_columns'" in error["msg"]


def test_field_sent_twice_is_rejected(server, artifacts):
    original = artifacts["original_csv"].read_bytes()
    response = httpx.post(
        f"{server.url}/api/v1/gates/data",
        files=[
            ("original", ("a.csv", original)),
            ("original", ("b.csv", original)),
            ("subset", ("s.csv", original)),
        ],
    )
    assert response.status_code == 422
    assert "was sent 2 times" in only_error(response)["msg"]


@pytest.mark.parametrize(
    "raw",
    [
        '{"kind": "data", "original": {"coverage": NaN}, "subset": {"coverage": 1}}',
        '{"kind": "data", "original": {"coverage": 1e999}, "subset": {"coverage": 1}}',
        '{"kind": "model", "teacher": {"accuracy": Infinity}, '
        '"student": {"accuracy": 0.9}}',
        '{"kind": "data", "original": {"coverage": true}, "subset": {"coverage": 1}}',
        '{"kind": "data", "original": {"coverage": "0.9"}, "subset": {"coverage": 1}}',
    ],
)
def test_non_numbers_in_metrics_are_422(server, raw):
    response = httpx.post(
        f"{server.url}/api/v1/gates/metrics",
        content=raw,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] == "coverage" or (
        response.json()["detail"][0]["loc"][-1] == "accuracy"
    )


@pytest.mark.parametrize("field", ["project", "branch", "commit"])
def test_lone_surrogate_in_label_is_422(server, field):
    body = {"kind": "data", "original": {"coverage": 1}, "subset": {"coverage": 1}}
    body[field] = "main\ud800"
    response = httpx.post(
        f"{server.url}/api/v1/gates/metrics",
        content=json.dumps(body),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", field]


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"project": "a\x00b"}, ["query", "project"]),
        ({"branch": "a\x00b"}, ["query", "branch"]),
        ({"cursor": "c2VxOjkyMjMzNzIwMzY4NTQ3NzU4MDg"}, ["query", "cursor"]),
    ],
)
def test_bad_history_filters_are_422(server, params, loc):
    response = httpx.get(f"{server.url}/api/v1/gates", params=params)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == loc


def test_gate_id_with_nul_is_404(server):
    response = httpx.get(f"{server.url}/api/v1/gates/a%00b")
    assert response.status_code == 404
    assert response.json()["detail"][0]["loc"] == ["path", "gate_id"]


def test_control_characters_are_escaped_in_log(server):
    response = httpx.get(f"{server.url}/api/v1/gates/nul%00here%1b%5b31m")
    # The server logs the rejection before it sends the response.
    log = server.log_path.read_bytes()
    assert response.status_code == 404
    assert b"path=/api/v1/gates/nul\\x00here\\x1b[31m" in log
    assert b"\x00" not in log


def test_malformed_multipart_is_400_json(server):
    response = httpx.post(
        f"{server.url}/api/v1/gates/data",
        content=b"--x\r\nbroken",
        headers={"content-type": "multipart/form-data"},
    )
    assert response.status_code == 400
    assert response.json()["detail"][0]["type"] == "http_error"
