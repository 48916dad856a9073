"""Tests of the model child processes and of timing in interleaved rounds."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto

from app.errors import EvaluationError
from app.evaluation.model_probe import ChildProcess, ProbeSettings, started_children
from app.evaluation.model_timing import ChildReportedError, time_models
from tests.evaluation.onnx_fixtures import linear_model

pytestmark = pytest.mark.slow

SETTINGS = ProbeSettings(
    warmup_runs=2,
    min_latency_runs=4,
    max_latency_runs=4,
    runs_per_round=3,
    latency_budget_s=0.0,
    throughput_rows=8,
    throughput_budget_s=0.0,
    timeout_s=60.0,
)
CHILDREN = ("teacher", "student")


def probe_spec(model: Path, rows: Path, workdir: Path, role: str) -> dict[str, Any]:
    return {
        "command": "probe",
        "role": role,
        "format": "onnx",
        "model": str(model),
        "features": str(rows),
        "input_name": "x",
        "label": None,
        "scores": "scores",
        "score_kind": "tensor",
        "batch_rows": 16,
        "fixed_batch": False,
        "warmup_runs": SETTINGS.warmup_runs,
        "labels_out": str(workdir / f"{role}_labels.npy"),
        "scores_out": str(workdir / f"{role}_scores.npy"),
        "latency_rows": 1,
        "throughput_rows": SETTINGS.throughput_rows,
    }


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    model = linear_model(tmp_path / "linear.onnx", input_type=TensorProto.FLOAT)
    rows = tmp_path / "x.npy"
    np.save(rows, np.arange(40 * 4, dtype=np.float32).reshape(40, 4))
    return model, rows


def test_child_process_probes_then_times_one_model(
    inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    model, rows = inputs
    with started_children(("teacher",), SETTINGS, tmp_path) as children:
        child = children["teacher"]
        probe = child.request(probe_spec(model, rows, tmp_path, "teacher"))
        warmup = child.request({"command": "warmup", "rows_key": "latency_rows"})
        timed = child.request({"command": "time", "runs": 7})
        assert child.process.poll() is None
    assert probe["status"] == "ok"
    assert "runtime_limits" not in probe
    assert list(probe["memory"]) == ["ready", "load", "first_run", "steady"]
    scores = np.load(tmp_path / "teacher_scores.npy")
    assert scores.shape == (40, 3)
    assert warmup["status"] == "ok"
    assert timed["status"] == "ok"
    assert len(timed["durations_ns"]) == 7
    assert min(timed["durations_ns"]) > 0
    assert child.process.returncode == -signal.SIGKILL


def test_child_process_model_too_new_reports_runtime_opset(
    inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    model_path, rows = inputs
    model = onnx.load(str(model_path))
    model.opset_import[0].version = 99
    future = tmp_path / "future.onnx"
    onnx.save(model, str(future))
    with started_children(("student",), SETTINGS, tmp_path) as children:
        report = children["student"].request(
            probe_spec(future, rows, tmp_path, "student")
        )
    assert report["status"] == "error"
    assert report["stage"] == "load"
    assert 17 <= report["runtime_limits"]["opset"] < 99
    assert report["versions"]["onnxruntime"] == onnxruntime.__version__


def test_child_process_time_before_probe_reports_error(tmp_path: Path) -> None:
    with started_children(("student",), SETTINGS, tmp_path) as children:
        report = children["student"].request({"command": "time", "runs": 1})
    assert report["status"] == "error"
    assert report["stage"] == "load"
    assert report["message"] == "KeyError: 'runner'"


def test_child_process_killed_child_names_signal(tmp_path: Path) -> None:
    child = ChildProcess("student", SETTINGS, tmp_path)
    try:
        os.kill(child.process.pid, signal.SIGKILL)
        with pytest.raises(EvaluationError) as caught:
            child.request({"command": "time", "runs": 1})
    finally:
        child.stop()
    assert caught.value.message.startswith(
        "the student model process was killed by SIGKILL while it loaded or ran "
        "the model"
    )
    assert caught.value.field == "student"


def test_probe_settings_cpu_limit_covers_startup() -> None:
    assert ProbeSettings(timeout_s=1.0).limits["cpu_s"] == 3.0
    assert ProbeSettings(timeout_s=1.0, cpu_limit_s=0.5).limits["cpu_s"] == 0.5


def test_child_process_leaves_no_stderr_file(tmp_path: Path) -> None:
    with started_children(CHILDREN, SETTINGS, tmp_path) as children:
        assert all(child.process.poll() is None for child in children.values())
    assert list(tmp_path.iterdir()) == []


def test_child_process_deadline_stops_child(tmp_path: Path) -> None:
    settings = ProbeSettings(timeout_s=0.5)
    child = ChildProcess("teacher", settings, tmp_path)
    with pytest.raises(EvaluationError) as caught:
        # No command was sent, so no report ever comes.
        child.receive()
    assert caught.value.message == (
        "the teacher model process did not finish within 0.5 s and was stopped; "
        "evaluate on fewer rows or raise the timeout"
    )
    assert child.process.returncode == -signal.SIGKILL


def test_started_children_stops_every_child_on_error(tmp_path: Path) -> None:
    started: list[ChildProcess] = []
    with (
        pytest.raises(RuntimeError, match="inspection failed"),
        started_children(CHILDREN, SETTINGS, tmp_path) as children,
    ):
        started.extend(children.values())
        raise RuntimeError("inspection failed")
    assert len(started) == 2
    assert [child.process.returncode for child in started] == [-signal.SIGKILL] * 2


def test_time_models_rounds_per_model(
    inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    model, rows = inputs
    roles = ("teacher", "student")
    with started_children(roles, SETTINGS, tmp_path) as children:
        for role in roles:
            report = children[role].request(probe_spec(model, rows, tmp_path, role))
            assert report["status"] == "ok"
        pids = {role: children[role].process.pid for role in roles}
        specs = {role: probe_spec(model, rows, tmp_path, role) for role in roles}
        timing = time_models(children, specs, SETTINGS)
        assert {role: children[role].process.pid for role in roles} == pids
    for role in roles:
        # min_latency_runs rounds (the budget is 0 s), runs_per_round runs each.
        assert timing.latency[role].shape == (4, 3)
        assert timing.throughput[role].shape == (4, 3)
        assert timing.latency_rows[role] == 1
        assert timing.throughput_rows[role] == 8
        assert (timing.latency[role] > 0).all()


def test_time_models_child_error_names_role(
    inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    model, rows = inputs
    with started_children(("teacher", "student"), SETTINGS, tmp_path) as children:
        report = children["teacher"].request(
            probe_spec(model, rows, tmp_path, "teacher")
        )
        assert report["status"] == "ok"
        specs = {
            role: probe_spec(model, rows, tmp_path, role)
            for role in ("teacher", "student")
        }
        # The student never loaded a model, so its warm-up fails.
        with pytest.raises(ChildReportedError) as caught:
            time_models(children, specs, SETTINGS)
    assert caught.value.role == "student"
    assert caught.value.report["message"] == "KeyError: 'spec'"


def test_probe_settings_reject_one_latency_round() -> None:
    # One round gives the round-resampling bootstrap a zero-width interval.
    with pytest.raises(ValueError, match="min_latency_runs must be at least 2"):
        ProbeSettings(min_latency_runs=1)
    assert ProbeSettings(min_latency_runs=2).min_latency_runs == 2
