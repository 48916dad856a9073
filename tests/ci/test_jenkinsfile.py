"""The Jenkinsfile's shell steps, run with bash against a live server."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ci.pipeline_files import ROOT, jenkins_environment, jenkins_steps

pytestmark = pytest.mark.slow


def run_pipeline(server, artifacts, tmp_path, **overrides):
    env = {
        **os.environ,
        **jenkins_environment(),
        "DISTILGATE_URL": server.url,
        "ARTIFACTS": str(artifacts["teacher"].parent),
        "REPORTS": str(tmp_path / "reports"),
        "BUILD_OPTIONS": "--quick --reuse",
        "DISTILGATE_CLI": str(Path(sys.executable).parent / "distilgate"),
        "BRANCH_NAME": "main",
        "GIT_COMMIT": "jenkins-test",
        **overrides,
    }
    outcomes = {}
    for step in jenkins_steps():
        shell = (
            ["bash", "-c"] if step.script.startswith("#!/bin/bash") else ["sh", "-ec"]
        )
        completed = subprocess.run(
            [*shell, step.script],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=900,
        )
        outcomes[step.stage] = completed
    return outcomes


def test_jenkinsfile_has_the_expected_stages():
    stages = [step.stage for step in jenkins_steps()]
    assert stages == ["Build artifacts", "Gates with curl", "Gates with the CLI"]


def test_jenkins_pipeline_passes_good_artifacts(server, artifacts, tmp_path):
    outcomes = run_pipeline(server, artifacts, tmp_path)
    reports = tmp_path / "reports"
    for stage, completed in outcomes.items():
        assert completed.returncode == 0, (stage, completed.stdout, completed.stderr)
    assert "accuracy\\_loss | passed" in outcomes["Gates with curl"].stdout
    for name in ("curl-model", "curl-data", "cli-model", "cli-data"):
        assert (reports / f"{name}.xml").read_text().startswith("<?xml")
        assert "DistilGate" in (reports / f"{name}.md").read_text()


def test_jenkins_pipeline_fails_bad_student_and_subset(server, artifacts, tmp_path):
    outcomes = run_pipeline(
        server,
        artifacts,
        tmp_path,
        STUDENT_MODEL="student_tiny.onnx",
        SUBSET_FILE="subset_bad.csv",
    )
    curl_stage = outcomes["Gates with curl"]
    cli_stage = outcomes["Gates with the CLI"]
    assert outcomes["Build artifacts"].returncode == 0
    assert curl_stage.returncode != 0
    assert cli_stage.returncode != 0
    assert "model gate: FAILED" in curl_stage.stdout
    assert "data gate: FAILED" in curl_stage.stdout
    assert "<failure" in (tmp_path / "reports" / "curl-model.xml").read_text()
    assert "<failure" in (tmp_path / "reports" / "cli-data.xml").read_text()


def test_jenkins_curl_step_fails_when_server_is_down(artifacts, tmp_path):
    from tests.servers import free_port

    class Down:
        url = f"http://127.0.0.1:{free_port()}"

    outcomes = run_pipeline(Down, artifacts, tmp_path)
    assert outcomes["Gates with curl"].returncode != 0
    assert "Failed to connect" in outcomes["Gates with curl"].stderr
