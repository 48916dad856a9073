"""Both gates end to end through a live server on SQLite and on PostgreSQL."""

import hashlib

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from app import __version__
from tests.api.helpers import checks_by_name, post_files

pytestmark = pytest.mark.slow


def direct_accuracy(model_path, dataset_path):
    data = np.load(dataset_path)
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"input": data["X"].astype(np.float32)})
    return float(np.mean(logits.argmax(axis=1) == data["y"]))


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def model_pass(server, artifacts):
    files = {
        "teacher": artifacts["teacher"],
        "student": artifacts["student"],
        "dataset": artifacts["digits_test_npz"],
    }
    response = post_files(
        server.url, "model", files, project="digits", branch="main", commit="abc123"
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_healthz_reports_version(server):
    response = httpx.get(f"{server.url}/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": __version__}


def test_model_gate_passes_distilled_student(model_pass):
    checks = checks_by_name(model_pass)
    assert model_pass["status"] == "passed"
    assert model_pass["kind"] == "model"
    assert (model_pass["project"], model_pass["branch"], model_pass["commit"]) == (
        "digits",
        "main",
        "abc123",
    )
    assert set(checks) == {
        "accuracy_loss",
        "size_reduction",
        "latency_reduction",
        "memory_reduction",
        "param_ratio",
    }
    assert checks["accuracy_loss"]["status"] == "passed"
    assert checks["param_ratio"]["advisory"] is True
    assert model_pass["policy"]["max_accuracy_loss"] == 0.03


def test_model_gate_accuracy_equals_onnxruntime(model_pass, artifacts):
    dataset = artifacts["digits_test_npz"]
    metrics = model_pass["metrics"]
    assert metrics["teacher_accuracy"] == direct_accuracy(artifacts["teacher"], dataset)
    assert metrics["student_accuracy"] == direct_accuracy(artifacts["student"], dataset)


def test_model_gate_sizes_equal_file_sizes(model_pass, artifacts):
    metrics = model_pass["metrics"]
    assert metrics["teacher_size_bytes"] == artifacts["teacher"].stat().st_size
    assert metrics["student_size_bytes"] == artifacts["student"].stat().st_size


def test_model_gate_records_upload_hashes(model_pass, artifacts):
    stored = model_pass["artifacts"]
    for role, key in (
        ("teacher", "teacher"),
        ("student", "student"),
        ("dataset", "digits_test_npz"),
    ):
        assert stored[role]["sha256"] == sha256(artifacts[key])
        assert stored[role]["filename"] == artifacts[key].name


def test_model_gate_fails_too_small_student(server, artifacts):
    files = {
        "teacher": artifacts["teacher"],
        "student": artifacts["student_tiny"],
        "dataset": artifacts["digits_test_csv"],
    }
    response = post_files(server.url, "model", files, project="digits")
    assert response.status_code == 200, response.text
    result = response.json()
    accuracy = checks_by_name(result)["accuracy_loss"]
    assert result["status"] == "failed"
    assert accuracy["status"] == "failed"
    assert accuracy["message"].startswith("accuracy loss ")
    assert "> 3.0 pp" in accuracy["message"]


def test_data_gate_passes_distilled_subset(server, artifacts):
    files = {
        "original": artifacts["original_csv"],
        "subset": artifacts["subset_good_csv"],
    }
    response = post_files(
        server.url,
        "data",
        files,
        project="digits",
        scenario_columns="ink,width",
        label_column="label",
    )
    assert response.status_code == 200, response.text
    result = response.json()
    checks = checks_by_name(result)
    assert result["status"] == "passed", result["checks"]
    assert {
        "scenario_coverage",
        "pairwise_coverage",
        "feature_coverage",
        "edge_case_share",
    } <= set(checks)
    assert checks["scenario_coverage"]["value"] == 1.0


def test_data_gate_fails_subset_that_lost_classes(server, artifacts):
    files = {
        "original": artifacts["original_parquet"],
        "subset": artifacts["subset_bad_parquet"],
    }
    response = post_files(
        server.url,
        "data",
        files,
        project="digits",
        scenario_columns="ink,width",
        label_column="label",
    )
    assert response.status_code == 200, response.text
    result = response.json()
    missing = result["details"]["missing_scenarios"]
    assert result["status"] == "failed"
    assert checks_by_name(result)["scenario_coverage"]["status"] == "failed"
    assert {3, 8} <= {entry["values"]["label"] for entry in missing}


def test_metrics_gate_model_notes_unchecked_resources(server):
    body = {
        "kind": "model",
        "project": "external",
        "teacher": {"accuracy": 0.98, "latency_ms": 1500, "size_bytes": 200000000},
        "student": {"accuracy": 0.96, "latency_ms": 300, "size_bytes": 20000000},
    }
    response = httpx.post(f"{server.url}/api/v1/gates/metrics", json=body)
    assert response.status_code == 200, response.text
    checks = checks_by_name(response.json())
    assert response.json()["status"] == "passed"
    assert checks["memory_reduction"]["status"] == "skipped"
    assert "memory_bytes was not reported" in checks["memory_reduction"]["message"]


def test_metrics_gate_data_fails_low_retention(server):
    body = {
        "kind": "data",
        "project": "external",
        "original": {"coverage": 0.90},
        "subset": {"coverage": 0.80},
    }
    response = httpx.post(f"{server.url}/api/v1/gates/metrics", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["status"] == "failed"
    assert checks_by_name(result)["coverage_retention"]["value"] == pytest.approx(
        0.80 / 0.90
    )


def test_get_gate_returns_stored_result(server, model_pass):
    response = httpx.get(f"{server.url}/api/v1/gates/{model_pass['id']}")
    assert response.status_code == 200
    assert response.json() == model_pass


def test_get_gate_unknown_id_is_404_json(server):
    response = httpx.get(f"{server.url}/api/v1/gates/doesnotexist")
    assert response.status_code == 404
    assert response.json()["detail"][0]["msg"] == "gate 'doesnotexist' not found"


def test_history_lists_newest_first_with_cursor(server):
    ids = []
    for coverage in (0.91, 0.92, 0.93):
        body = {
            "kind": "data",
            "project": "paging",
            "branch": "b1",
            "original": {"coverage": 1.0},
            "subset": {"coverage": coverage},
        }
        response = httpx.post(f"{server.url}/api/v1/gates/metrics", json=body)
        ids.append(response.json()["id"])
    first = httpx.get(
        f"{server.url}/api/v1/gates", params={"project": "paging", "limit": 2}
    ).json()
    second = httpx.get(
        f"{server.url}/api/v1/gates",
        params={"project": "paging", "limit": 2, "cursor": first["next_cursor"]},
    ).json()
    assert [item["id"] for item in first["items"]] == ids[::-1][:2]
    assert [item["id"] for item in second["items"]] == ids[:1]
    assert second["next_cursor"] is None


def test_history_filters_kind_and_status(server):
    url = f"{server.url}/api/v1/gates/metrics"
    for coverage in (0.5, 0.99):
        body = {
            "kind": "data",
            "project": "filtered",
            "original": {"coverage": 1.0},
            "subset": {"coverage": coverage},
        }
        httpx.post(url, json=body)
    model = {
        "kind": "model",
        "project": "filtered",
        "teacher": {"accuracy": 0.9},
        "student": {"accuracy": 0.5},
    }
    httpx.post(url, json=model)
    params = {"project": "filtered", "kind": "data", "status": "failed"}
    items = httpx.get(f"{server.url}/api/v1/gates", params=params).json()["items"]
    assert len(items) == 1
    assert (items[0]["kind"], items[0]["status"]) == ("data", "failed")


def test_results_survive_server_restart(server, model_pass):
    server.restart()
    response = httpx.get(f"{server.url}/api/v1/gates/{model_pass['id']}")
    listed = httpx.get(f"{server.url}/api/v1/gates", params={"project": "digits"})
    assert response.status_code == 200
    assert response.json() == model_pass
    assert model_pass["id"] in [item["id"] for item in listed.json()["items"]]
