"""Run models in child processes and read back what they measured.

Each model is loaded and run in its own child process (``model_child``), so a
model that crashes or exhausts memory takes down only its child. The baseline
child and both model children run at the same time, because peak resident
memory is per process and does not depend on what else runs. The timing child
runs alone, after both models ran once, so that timing has the CPU to itself.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.errors import EvaluationError, InputError

MODEL_ERROR_EXIT_CODE = 3
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]
_STDERR_TAIL_CHARS = 600
_SIGNAL_HINTS = {
    "SIGSEGV": "a SIGSEGV or SIGABRT points to a model that crashes its runtime",
    "SIGABRT": "a SIGSEGV or SIGABRT points to a model that crashes its runtime",
    "SIGKILL": "a SIGKILL points to the system running out of memory or to the "
    "hard CPU-time limit",
    "SIGXCPU": "a SIGXCPU means the process used up its CPU-time limit "
    "(ProbeSettings.cpu_limit_s)",
}


@dataclass(frozen=True)
class ProbeSettings:
    """Settings of the child processes: batch sizes, timing rounds and limits.

    Latency is timed in rounds. Each round runs ``runs_per_round`` timed runs of
    each model, the models in a random order drawn from ``seed``. Timing stops
    after ``max_latency_runs`` rounds or ``latency_budget_s`` seconds of timed
    runs, whichever comes first, but never before ``min_latency_runs`` rounds.
    Throughput is timed the same way at ``throughput_rows`` rows per run within
    ``throughput_budget_s``. ``warmup_runs`` runs per model and batch size are
    discarded first.

    Every child gets ``timeout_s`` of wall time. ``cpu_limit_s`` (default: the
    timeout) caps its CPU time with RLIMIT_CPU and ``memory_limit_bytes``
    (default: none) its address space with RLIMIT_AS.
    """

    batch_rows: int = 256
    warmup_runs: int = 10
    min_latency_runs: int = 20
    max_latency_runs: int = 300
    latency_budget_s: float = 1.5
    timeout_s: float = 600.0
    runs_per_round: int = 5
    throughput_rows: int = 64
    throughput_budget_s: float = 0.5
    memory_limit_bytes: int | None = None
    cpu_limit_s: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        counts = (
            self.batch_rows,
            self.min_latency_runs,
            self.max_latency_runs,
            self.runs_per_round,
            self.throughput_rows,
        )
        if min(counts) < 1 or self.warmup_runs < 0:
            raise ValueError(f"batch and run counts must be positive, got {self}")
        if self.min_latency_runs > self.max_latency_runs:
            raise ValueError(f"min_latency_runs exceeds max_latency_runs in {self}")
        budgets = (self.latency_budget_s, self.throughput_budget_s)
        if min(budgets) < 0 or self.timeout_s <= 0:
            raise ValueError(f"time limits must be positive, got {self}")
        limits = (self.memory_limit_bytes, self.cpu_limit_s)
        if any(limit is not None and limit <= 0 for limit in limits):
            raise ValueError(f"resource limits must be positive, got {self}")

    @property
    def limits(self) -> dict[str, Any]:
        """The resource limits as the child's spec carries them."""
        cpu = self.cpu_limit_s if self.cpu_limit_s is not None else self.timeout_s
        return {"memory_bytes": self.memory_limit_bytes, "cpu_s": cpu}


@dataclass(frozen=True)
class Child:
    """One child to run: a subject for messages, the mode and its spec."""

    subject: str
    mode: str
    spec: dict[str, Any]


def run_children(
    children: list[Child], settings: ProbeSettings, workdir: Path
) -> list[dict[str, Any]]:
    """Run the children at the same time and return their reports in order.

    A report with ``"status": "error"`` is returned as it is, for the caller to
    interpret. ``workdir`` must be a private directory.

    Raises:
        EvaluationError: a child crashed, was killed by a signal or timed out.
            The other children are stopped.
    """
    started: list[tuple[Child, subprocess.Popen[bytes], Path, float]] = []
    try:
        for index, child in enumerate(children):
            spec_path = workdir / f"spec_{index}_{child.mode}.json"
            spec = {**child.spec, "limits": settings.limits}
            spec["report"] = str(workdir / f"report_{index}_{child.mode}.json")
            spec_path.write_text(json.dumps(spec), encoding="utf-8")
            process = _start(child.mode, spec_path, workdir, index)
            started.append((child, process, Path(spec["report"]), time.monotonic()))
        return [_finish(item, settings.timeout_s, workdir) for item in started]
    finally:
        for _, process, _, _ in started:
            if process.poll() is None:
                process.kill()
                process.wait()


def child_failure(role: str, returncode: int, stderr: str) -> EvaluationError:
    """Describe a child that ended without a report: killed by a signal or crashed."""
    tail = stderr.strip()[-_STDERR_TAIL_CHARS:]
    detail = f"; stderr ends with: {tail}" if tail else ""
    subject = _subject(role)
    if returncode < 0:
        name = _signal_name(-returncode)
        hint = _SIGNAL_HINTS.get(name, "the process was stopped from outside")
        message = (
            f"{subject} process was killed by {name} while it loaded or ran the "
            f"model{detail}. {hint[0].upper()}{hint[1:]}"
        )
    else:
        message = (
            f"{subject} process exited with code {returncode} without a result{detail}"
        )
    return EvaluationError(message, field=role, value=returncode)


def model_failure(
    role: str, report: dict[str, Any], model_path: Path, settings: ProbeSettings
) -> InputError | EvaluationError:
    """Turn a child's error report into the error the gate raises.

    Running out of memory under the configured limit is an evaluation error,
    anything else the model's fault: an input error naming the model.
    """
    action = "loading" if report.get("stage") == "load" else "predicting"
    # Show the upload's file name, never the server's storage path.
    reason = str(report["message"]).replace(str(model_path), model_path.name)
    if report.get("out_of_memory"):
        limit = settings.memory_limit_bytes
        shown = "no limit" if limit is None else f"the limit of {limit:,} bytes"
        return EvaluationError(
            f"the {role} model ran out of memory while {action} ({shown}, "
            f"RLIMIT_AS): {reason}. Raise ProbeSettings.memory_limit_bytes or "
            "evaluate a smaller model",
            field=role,
            value=limit,
        )
    runtime = ", ".join(f"{k} {v}" for k, v in report.get("versions", {}).items())
    return InputError(
        f"the {role} model failed while {action} ({runtime}): {reason}. Check "
        "that the model loads on CPU and that it returns one prediction per "
        "input row",
        field=role,
        value=reason,
    )


def _start(
    mode: str, spec_path: Path, workdir: Path, index: int
) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        item for item in (str(_PACKAGE_ROOT), env.get("PYTHONPATH")) if item
    )
    # Both streams go to files: a pipe that is not read while the parent waits
    # for another child could fill up and block the child.
    stderr = (workdir / f"stderr_{index}_{mode}.txt").open("wb")
    with stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "app.evaluation.model_child", mode, str(spec_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=env,
        )


def _finish(
    item: tuple[Child, subprocess.Popen[bytes], Path, float],
    timeout_s: float,
    workdir: Path,
) -> dict[str, Any]:
    child, process, report_path, started = item
    remaining = max(0.0, started + timeout_s - time.monotonic())
    try:
        code = process.wait(timeout=remaining)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise EvaluationError(
            f"{_subject(child.subject)} process did not finish within {timeout_s:g} s "
            "and "
            "was stopped; evaluate on fewer rows or raise the timeout",
            field=child.subject,
            value=timeout_s,
        ) from None
    if code not in (0, MODEL_ERROR_EXIT_CODE) or not report_path.exists():
        index = report_path.name.split("_")[1]
        stderr_path = workdir / f"stderr_{index}_{child.mode}.txt"
        stderr = stderr_path.read_text(encoding="utf-8", errors="replace")
        raise child_failure(child.subject, code, stderr)
    report: dict[str, Any] = json.loads(report_path.read_text(encoding="utf-8"))
    return report


def _subject(role: str) -> str:
    if role in ("teacher", "student"):
        return f"the {role} model"
    return f"the {role}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
