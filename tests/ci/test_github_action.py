"""The GitHub action's run steps, run with bash against a live server."""

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.ci.pipeline_files import ROOT, action, substitute

pytestmark = pytest.mark.slow


def run_action(server, tmp_path, **inputs):
    definition = action()
    github = {
        "github.action_path": str(ROOT / "ci" / "github"),
        "github.event.repository.name": "shop",
        "github.head_ref || github.ref_name": "main",
        "github.sha": "0123abc",
    }
    values = {
        name: substitute(str(spec.get("default", "")), github)
        for name, spec in definition["inputs"].items()
    }
    values.update({"server": server.url, "install": "false", "project": "actions"})
    values.update(inputs)
    context = {f"inputs.{name}": value for name, value in values.items()} | github
    files = {name: tmp_path / name for name in ("output", "summary", "env")}
    for path in files.values():
        path.write_text("")
    base_env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "RUNNER_TEMP": str(tmp_path),
        "GITHUB_OUTPUT": str(files["output"]),
        "GITHUB_STEP_SUMMARY": str(files["summary"]),
        "GITHUB_ENV": str(files["env"]),
    }
    completed = None
    for step in definition["runs"]["steps"]:
        condition = step.get("if")
        if condition == "inputs.install == 'true'" and values["install"] != "true":
            continue
        env = {**base_env}
        for name, value in (step.get("env") or {}).items():
            env[name] = substitute(str(value), context)
        completed = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            cwd=tmp_path,
        )
        if completed.returncode != 0:
            break
    outputs = dict(
        line.split("=", 1) for line in files["output"].read_text().splitlines() if line
    )
    return completed, outputs, files["summary"].read_text()


def model_inputs(artifacts, student="student"):
    return {
        "kind": "model",
        "teacher": str(artifacts["teacher"]),
        "student": str(artifacts[student]),
        "dataset": str(artifacts["digits_test_npz"]),
        "branch": "feature",
        "commit": "abc123",
    }


def test_action_defaults_use_repository_context(server, artifacts, tmp_path):
    inputs = model_inputs(artifacts)
    del inputs["branch"], inputs["commit"]
    _, outputs, _ = run_action(server, tmp_path, **inputs)
    stored = httpx.get(f"{server.url}/api/v1/gates/{outputs['gate-id']}").json()
    assert (stored["branch"], stored["commit"]) == ("main", "0123abc")


def test_action_declares_outputs_from_gate_step():
    outputs = action()["outputs"]
    assert set(outputs) == {"status", "gate-id", "url", "junit-file"}
    assert outputs["gate-id"]["value"] == "${{ steps.gate.outputs.gate-id }}"


def test_action_passes_good_student(server, artifacts, tmp_path):
    completed, outputs, summary = run_action(
        server, tmp_path, **model_inputs(artifacts)
    )
    stored = httpx.get(f"{server.url}/api/v1/gates/{outputs['gate-id']}").json()
    assert completed.returncode == 0, completed.stderr
    assert outputs["status"] == "passed"
    assert outputs["url"] == f"{server.url}/api/v1/gates/{outputs['gate-id']}"
    assert stored["project"] == "actions"
    assert stored["commit"] == "abc123"
    assert summary.startswith("## DistilGate model gate: PASSED")


def test_action_fails_job_on_failed_gate(server, artifacts, tmp_path):
    completed, outputs, summary = run_action(
        server, tmp_path, **model_inputs(artifacts, student="student_tiny")
    )
    assert completed.returncode == 1
    assert outputs["status"] == "failed"
    assert "::error::DistilGate model gate did not pass" in completed.stdout
    assert "FAILED" in summary


def test_action_data_gate_summary_stays_small(server, artifacts, tmp_path):
    completed, outputs, summary = run_action(
        server,
        tmp_path,
        kind="data",
        original=str(artifacts["original_csv"]),
        subset=str(artifacts["subset_bad_csv"]),
        **{
            "scenario-columns": "ink,width",
            "label-column": "label",
            "summary-bytes": "700",
        },
    )
    assert completed.returncode == 1
    assert len(summary.encode()) <= 700
    assert "Report truncated" in summary
    assert outputs["url"] in summary


def test_action_rejects_unknown_kind(server, tmp_path):
    completed, outputs, _ = run_action(server, tmp_path, kind="speed")
    assert completed.returncode == 2
    assert "kind must be model or data" in completed.stdout
    assert outputs == {}
