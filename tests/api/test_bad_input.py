"""Bad requests get a 4xx JSON body naming the field, and store nothing."""

import io

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.api.helpers import only_error, post_files

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, artifacts):
    root = tmp_path_factory.mktemp("bad")
    original = pd.read_csv(artifacts["original_csv"])
    files = {
        "empty": root / "empty.csv",
        "not_onnx": root / "model.onnx",
        "unsupported": root / "data.bin",
        "fewer_columns": root / "fewer.csv",
        "narrow": root / "narrow.npz",
    }
    files["empty"].write_bytes(b"")
    files["not_onnx"].write_text("label,p0\n1,2\n")
    files["unsupported"].write_bytes(b"\x00\x01\x02GIF89a-not-a-table\xff\xfe" * 10)
    original.drop(columns=["ink"]).head(50).to_csv(files["fewer_columns"], index=False)
    np.savez(files["narrow"], X=np.zeros((10, 30), np.float32), y=np.zeros(10, int))
    return files


def gate_count(server):
    response = httpx.get(f"{server.url}/api/v1/gates", params={"limit": 500})
    return len(response.json()["items"])


def model_files(artifacts, **replace):
    files = {
        "teacher": artifacts["teacher"],
        "student": artifacts["student"],
        "dataset": artifacts["digits_test_npz"],
    }
    return {**files, **replace}


def data_files(artifacts, **replace):
    files = {
        "original": artifacts["original_csv"],
        "subset": artifacts["subset_good_csv"],
    }
    return {**files, **replace}


def test_missing_file_names_field(server, artifacts):
    files = model_files(artifacts)
    del files["dataset"]
    response = post_files(server.url, "model", files)
    error = only_error(response)
    assert response.status_code == 422
    assert error["loc"] == ["body", "dataset"]
    assert "missing file 'dataset'" in error["msg"]


def test_empty_file_names_field(server, artifacts, bad_files):
    response = post_files(
        server.url, "data", data_files(artifacts, subset=bad_files["empty"])
    )
    error = only_error(response)
    assert response.status_code == 422
    assert error["loc"] == ["body", "subset"]
    assert "empty" in error["msg"]


def test_unsupported_format_names_field(server, artifacts, bad_files):
    response = post_files(
        server.url, "data", data_files(artifacts, original=bad_files["unsupported"])
    )
    error = only_error(response)
    assert response.status_code in (415, 422)
    assert error["loc"] == ["body", "original"]


def test_different_columns_are_listed(server, artifacts, bad_files):
    response = post_files(
        server.url, "data", data_files(artifacts, subset=bad_files["fewer_columns"])
    )
    error = only_error(response)
    assert response.status_code == 422
    assert error["loc"] == ["body", "subset"]
    assert "ink" in error["msg"]


def test_unknown_scenario_column_is_named(server, artifacts):
    response = post_files(
        server.url, "data", data_files(artifacts), scenario_columns="ink,colour"
    )
    error = only_error(response)
    assert response.status_code == 422
    assert error["loc"] == ["body", "scenario_columns"]
    assert "colour" in error["msg"]


def test_unknown_label_column_is_named(server, artifacts):
    files = model_files(artifacts, dataset=artifacts["digits_test_csv"])
    response = post_files(server.url, "model", files, label_column="digit")
    error = only_error(response)
    assert response.status_code == 422
    assert error["loc"] == ["body", "label_column"]
    assert "digit" in error["msg"]


def test_dataset_width_mismatch_is_named(server, artifacts, bad_files):
    response = post_files(
        server.url, "model", model_files(artifacts, dataset=bad_files["narrow"])
    )
    error = only_error(response)
    assert response.status_code == 422
    assert error["loc"] == ["body", "dataset"]
    assert "30" in error["msg"]
    assert "64" in error["msg"]


def test_non_onnx_model_is_named(server, artifacts, bad_files):
    response = post_files(
        server.url, "model", model_files(artifacts, student=bad_files["not_onnx"])
    )
    error = only_error(response)
    assert response.status_code == 422
    assert error["loc"] == ["body", "student"]
    assert "not an ONNX model" in error["msg"]


@pytest.mark.parametrize(
    ("policy", "loc", "pattern"),
    [
        ('{"min_coverage": 95}', ["body", "policy", "min_coverage"], "not 95"),
        ('{"coverage": 0.9}', ["body", "policy", "coverage"], "unknown policy key"),
        ("not json", ["body", "policy"], "not valid JSON"),
    ],
)
def test_bad_policy_is_named(server, artifacts, policy, loc, pattern):
    response = post_files(server.url, "data", data_files(artifacts), policy=policy)
    error = only_error(response)
    assert response.status_code == 422
    assert error["loc"] == loc
    assert pattern in error["msg"]


@pytest.mark.parametrize(
    ("body", "loc_tail"),
    [
        (
            {
                "kind": "model",
                "teacher": {"accuracy": 98},
                "student": {"accuracy": 0.9},
            },
            "accuracy",
        ),
        ({"kind": "data", "original": {"coverage": 0.9}}, "subset"),
        ({"kind": "speed"}, "kind"),
        (
            {
                "kind": "data",
                "original": {"coverage": 1},
                "subset": {"coverage": 1},
                "policy": {"min_coverage": 95},
            },
            "min_coverage",
        ),
        (
            {
                "kind": "data",
                "project": "../etc",
                "original": {"coverage": 1},
                "subset": {"coverage": 1},
            },
            "project",
        ),
    ],
)
def test_metrics_gate_rejects_bad_body(server, body, loc_tail):
    response = httpx.post(f"{server.url}/api/v1/gates/metrics", json=body)
    assert response.status_code == 422
    errors = response.json()["detail"]
    assert any(str(error["loc"][-1]) == loc_tail for error in errors), errors


def test_bad_requests_store_nothing(server, artifacts, bad_files):
    before = gate_count(server)
    post_files(server.url, "data", data_files(artifacts, subset=bad_files["empty"]))
    post_files(server.url, "model", model_files(artifacts, dataset=bad_files["narrow"]))
    httpx.post(
        f"{server.url}/api/v1/gates/metrics",
        content=io.BytesIO(b"{").read(),
        headers={"content-type": "application/json"},
    )
    assert gate_count(server) == before
