"""Run one ONNX model in a child process: predictions, latency and memory.

The parent calls ``run_probe``, which starts::

    python -m app.evaluation.model_probe \\
        --output NAME --kind {label,score} --batch-rows N [--fixed-batch] \\
        --warmup-runs N --min-latency-runs N --max-latency-runs N \\
        --latency-budget-s SECONDS -- MODEL FEATURES PREDICTIONS REPORT

FEATURES is a .npy array already shaped and cast to the model's input type. The
child writes the predicted class of every row to PREDICTIONS (.npy, int64 or a
unicode string array) and a JSON object to REPORT:

- on success, exit code 0 and ``{"status": "ok", "latency_ms", "latency_runs",
  "latency_batch_rows", "memory_bytes", "memory_method", "onnxruntime_version"}``;
- when loading or running the model raises, for example because onnxruntime
  rejects the model or an output has the wrong number of rows, exit code 3 and
  ``{"status": "error", "stage": "load" | "run", "message",
  "onnxruntime_version"}``.

Any other exit, a signal or a timeout means the child crashed. Every model runs
with the same session options: one intra-op and one inter-op thread, sequential
execution and no spin-waiting, so two models are timed under equal conditions.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.errors import EvaluationError, InputError

MODEL_ERROR_EXIT_CODE = 3
SESSION_SETTINGS: dict[str, Any] = {
    "intra_op_num_threads": 1,
    "inter_op_num_threads": 1,
    "execution_mode": "ORT_SEQUENTIAL",
    "allow_spinning": False,
    "graph_optimization_level": "ORT_ENABLE_ALL",
    "providers": ["CPUExecutionProvider"],
}
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]
_STDERR_TAIL_CHARS = 600


@dataclass(frozen=True)
class ProbeSettings:
    """Settings of a model run: batch size, latency sampling and the time limit.

    Latency is the median of timed runs after ``warmup_runs`` discarded ones. The
    child stops timing at ``max_latency_runs`` runs or after ``latency_budget_s``
    seconds, whichever comes first, but never before ``min_latency_runs`` runs.
    """

    batch_rows: int = 256
    warmup_runs: int = 10
    min_latency_runs: int = 20
    max_latency_runs: int = 300
    latency_budget_s: float = 1.5
    timeout_s: float = 600.0

    def __post_init__(self) -> None:
        counts = (self.batch_rows, self.min_latency_runs, self.max_latency_runs)
        if min(counts) < 1 or self.warmup_runs < 0:
            raise ValueError(f"batch and run counts must be positive, got {self}")
        if self.min_latency_runs > self.max_latency_runs:
            raise ValueError(f"min_latency_runs exceeds max_latency_runs in {self}")
        if self.latency_budget_s < 0 or self.timeout_s <= 0:
            raise ValueError(f"time limits must be positive, got {self}")


@dataclass(frozen=True)
class ProbeResult:
    """Predictions and measurements of one model, read from its child process.

    ``memory_bytes`` is the peak resident memory added by loading and running the
    model, or ``None`` when ``/proc/self/status`` is not available.
    """

    predictions: np.ndarray
    latency_ms: float
    latency_runs: int
    latency_batch_rows: int
    memory_bytes: int | None
    memory_method: str
    onnxruntime_version: str


def run_probe(
    role: str,
    model_path: Path,
    features: np.ndarray,
    *,
    output_name: str,
    output_kind: str,
    fixed_batch_rows: int | None,
    settings: ProbeSettings,
    workdir: Path,
) -> ProbeResult:
    """Run the model in a child process and return its predictions and measurements.

    ``workdir`` must be a private directory: the features, predictions and report
    files of ``role`` are written there.

    Raises:
        InputError: loading or running the model raised in the child, for
            example because onnxruntime rejected the model or its input.
        EvaluationError: the child crashed, was killed by a signal or timed out.
    """
    paths = [
        workdir / f"{role}_{name}" for name in ("x.npy", "pred.npy", "report.json")
    ]
    np.save(paths[0], features, allow_pickle=False)
    batch_rows = fixed_batch_rows or settings.batch_rows
    command = [
        sys.executable, "-m", "app.evaluation.model_probe",
        "--output", output_name, "--kind", output_kind,
        "--batch-rows", str(batch_rows),
        "--warmup-runs", str(settings.warmup_runs),
        "--min-latency-runs", str(settings.min_latency_runs),
        "--max-latency-runs", str(settings.max_latency_runs),
        "--latency-budget-s", repr(settings.latency_budget_s),
    ]  # fmt: skip
    if fixed_batch_rows is not None:
        command.append("--fixed-batch")
    # "--" ends the options, so a file name starting with "-" stays a file name.
    command += ["--", str(model_path), *map(str, paths)]
    completed = _run_child(role, command, settings.timeout_s)
    report = _read_report(role, paths[2], completed, model_path)
    predictions = np.load(paths[1], allow_pickle=False)
    if predictions.shape != (len(features),):
        raise EvaluationError(
            f"the {role} model process returned predictions of shape "
            f"{list(predictions.shape)} for {len(features)} rows",
            field=role,
            value=list(predictions.shape),
        )
    return ProbeResult(
        predictions=predictions,
        latency_ms=float(report["latency_ms"]),
        latency_runs=int(report["latency_runs"]),
        latency_batch_rows=int(report["latency_batch_rows"]),
        memory_bytes=report["memory_bytes"],
        memory_method=str(report["memory_method"]),
        onnxruntime_version=str(report["onnxruntime_version"]),
    )


def child_failure(role: str, returncode: int, stderr: str) -> EvaluationError:
    """Describe a child that ended without a report: killed by a signal or crashed."""
    tail = stderr.strip()[-_STDERR_TAIL_CHARS:]
    detail = f"; stderr ends with: {tail}" if tail else ""
    if returncode < 0:
        name = _signal_name(-returncode)
        message = (
            f"the {role} model process was killed by {name} while onnxruntime "
            f"loaded or ran the model{detail}. A SIGSEGV or SIGABRT points to a "
            "model that crashes onnxruntime, a SIGKILL to the system running out "
            "of memory"
        )
    else:
        message = (
            f"the {role} model process exited with code {returncode} without a "
            f"result{detail}"
        )
    return EvaluationError(message, field=role, value=returncode)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _run_child(
    role: str, command: list[str], timeout_s: float
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        item for item in (str(_PACKAGE_ROOT), env.get("PYTHONPATH")) if item
    )
    try:
        return subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, env=env
        )
    except subprocess.TimeoutExpired:
        raise EvaluationError(
            f"the {role} model did not finish predicting and timing within "
            f"{timeout_s:g} s and was stopped; evaluate on fewer rows or raise "
            "the timeout",
            field=role,
            value=timeout_s,
        ) from None


def _read_report(
    role: str,
    path: Path,
    completed: subprocess.CompletedProcess[str],
    model_path: Path,
) -> dict[str, Any]:
    code = completed.returncode
    if code not in (0, MODEL_ERROR_EXIT_CODE) or not path.exists():
        raise child_failure(role, code, completed.stderr)
    report: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if report["status"] != "ok":
        action = "loading" if report["stage"] == "load" else "predicting"
        # Show the upload's file name, never the server's storage path.
        reason = str(report["message"]).replace(str(model_path), model_path.name)
        raise InputError(
            f"the {role} model failed while {action} in onnxruntime "
            f"{report['onnxruntime_version']}: {reason}. Check that "
            "onnxruntime.InferenceSession loads the model on CPU and that it "
            "returns one prediction per input row",
            field=role,
            value=reason,
        )
    return report


# Everything below runs in the child process.


def main(argv: list[str] | None = None) -> int:
    """Run the child side of the protocol above and return the exit code."""
    args = _parse_args(argv)
    import onnxruntime  # imported here so that the parent never loads it

    features = np.load(args.features, allow_pickle=False)
    report: dict[str, Any] = {"onnxruntime_version": onnxruntime.__version__}
    stage = "load"
    try:
        memory = _MemoryMeter()
        session = _create_session(args.model)
        stage = "run"
        predictions = _predict(session, features, args)
        report.update(_time_latency(session, features, args))
        report.update(memory.finish())
    # The child reports every failure of the model to the parent, whatever the
    # exception class, because onnxruntime's errors all derive from Exception.
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"
        report.update(status="error", stage=stage, message=message)
        _write_json(args.report, report)
        return MODEL_ERROR_EXIT_CODE
    np.save(args.predictions, predictions, allow_pickle=False)
    report["status"] = "ok"
    _write_json(args.report, report)
    return 0


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m app.evaluation.model_probe")
    for name in ("model", "features", "predictions", "report"):
        parser.add_argument(name, type=Path)
    parser.add_argument("--output", required=True)
    parser.add_argument("--kind", choices=("label", "score"), required=True)
    parser.add_argument("--batch-rows", type=int, required=True)
    parser.add_argument("--fixed-batch", action="store_true")
    parser.add_argument("--warmup-runs", type=int, default=10)
    parser.add_argument("--min-latency-runs", type=int, default=20)
    parser.add_argument("--max-latency-runs", type=int, default=300)
    parser.add_argument("--latency-budget-s", type=float, default=1.5)
    return parser.parse_args(argv)


def _create_session(model: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = SESSION_SETTINGS["intra_op_num_threads"]
    options.inter_op_num_threads = SESSION_SETTINGS["inter_op_num_threads"]
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(
        str(model), sess_options=options, providers=SESSION_SETTINGS["providers"]
    )


def _batches(features: np.ndarray, rows: int, fixed: bool) -> list[np.ndarray]:
    """Split rows into batches; with a fixed batch size, pad the last one."""
    batches = [
        features[start : start + rows] for start in range(0, len(features), rows)
    ]
    if fixed and len(batches[-1]) < rows:
        last = batches[-1]
        padding = np.repeat(last[-1:], rows - len(last), axis=0)
        batches[-1] = np.concatenate([last, padding])
    return [np.ascontiguousarray(batch) for batch in batches]


def _predict(
    session: Any, features: np.ndarray, args: argparse.Namespace
) -> np.ndarray:
    input_name = session.get_inputs()[0].name
    parts = []
    remaining = len(features)
    for batch in _batches(features, args.batch_rows, args.fixed_batch):
        (output,) = session.run([args.output], {input_name: batch})
        classes = _classes(np.asarray(output), args.output, args.kind, len(batch))
        rows = min(remaining, len(batch))
        # Slicing drops the rows that padded a fixed-size last batch.
        parts.append(classes[:rows])
        remaining -= rows
    return np.concatenate(parts)


def _classes(output: np.ndarray, name: str, kind: str, rows: int) -> np.ndarray:
    """Turn one batch of a label or score output into one class per row."""
    if output.ndim == 0 or output.shape[0] != rows:
        raise ValueError(
            f"output {name!r} has shape {list(output.shape)} for a batch of {rows} rows"
        )
    single_column = output.ndim == 1 or (output.ndim == 2 and output.shape[1] == 1)
    if kind == "label" and single_column:
        flat = output.reshape(rows)
        return flat.astype(str) if flat.dtype == object else flat.astype(np.int64)
    if kind == "score" and single_column:
        return (output.reshape(rows) >= 0.5).astype(np.int64)
    if kind == "score" and output.ndim == 2:
        classes: np.ndarray = np.argmax(output, axis=1).astype(np.int64)
        return classes
    raise ValueError(
        f"output {name!r} has shape {list(output.shape)}; expected [N], [N, 1] "
        "or, for scores, [N, classes]"
    )


def _time_latency(
    session: Any, features: np.ndarray, args: argparse.Namespace
) -> dict[str, Any]:
    """Time the prediction output for one batch: one row, or the fixed batch size."""
    rows = args.batch_rows if args.fixed_batch else 1
    sample = _batches(features[:rows], rows, args.fixed_batch)[0]
    feed = {session.get_inputs()[0].name: sample}
    outputs = [args.output]
    for _ in range(args.warmup_runs):
        session.run(outputs, feed)
    durations: list[int] = []
    deadline = time.perf_counter_ns() + int(args.latency_budget_s * 1e9)
    while len(durations) < args.max_latency_runs and (
        len(durations) < args.min_latency_runs or time.perf_counter_ns() < deadline
    ):
        start = time.perf_counter_ns()
        session.run(outputs, feed)
        durations.append(time.perf_counter_ns() - start)
    return {
        "latency_ms": statistics.median(durations) / 1e6,
        "latency_runs": len(durations),
        "latency_batch_rows": rows,
    }


class _MemoryMeter:
    """Peak resident memory added since construction, read from /proc/self/status.

    The kernel's peak (VmHWM) is reset to the current resident size by writing
    5 to /proc/self/clear_refs (Linux 4.0 and later). Where that write fails, the
    peak covers the whole process life, which includes interpreter start-up.
    """

    def __init__(self) -> None:
        self.baseline = _status_bytes("VmRSS")
        self.method = "vmhwm_after_peak_reset"
        try:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
                handle.write("5")
        except OSError:
            self.method = "vmhwm_since_process_start"

    def finish(self) -> dict[str, Any]:
        peak = _status_bytes("VmHWM")
        if self.baseline is None or peak is None:
            return {"memory_bytes": None, "memory_method": "unavailable"}
        return {
            "memory_bytes": max(peak - self.baseline, 0),
            "memory_method": self.method,
        }


def _status_bytes(key: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _write_json(path: Path, report: dict[str, Any]) -> None:
    path.write_text(json.dumps(report), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
