"""Run models in child processes and exchange commands with them over pipes.

Each model is loaded and run in its own child process (``model_child``), so a
model that crashes or exhausts memory takes down only its child. A child lives
for the whole gate: it loads its model once, predicts every row, and then runs
the timed batches the parent requests, one command at a time.

Children are fresh interpreters started with ``subprocess``, so each starts
from the same state and its peak memory counts only what it loaded itself.
The gate starts them before it inspects the models, so that their imports of
numpy and onnxruntime (about 0.2 s of CPU each, measured with onnxruntime 1.32
on x86-64 Linux) overlap with that inspection.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Pipe
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from app.errors import EvaluationError, InputError

if TYPE_CHECKING:
    from app.evaluation.model_spares import SparePool

logger = logging.getLogger(__name__)

_PACKAGE_ROOT = Path(__file__).resolve().parents[2]
_STDERR_TAIL_CHARS = 600
# CPU time a child may spend on its start-up, about 0.3 s for its imports, on
# top of the timeout. A child that started before the gate's first command has
# spent it already, and a single-threaded child then reaches the wall-clock
# timeout, whose message names the setting to raise, before its CPU limit.
STARTUP_CPU_S = 2.0
# How long a child whose pipe closed may take to exit.
_EXIT_WAIT_S = 5.0
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
    runs, whichever comes first, but never before ``min_latency_runs`` rounds
    (at least 2). Throughput is timed the same way at ``throughput_rows`` rows
    per run within ``throughput_budget_s``. ``warmup_runs`` runs per model and
    batch size are discarded first.

    Every child gets ``timeout_s`` of wall time for all its work (loading,
    predicting and timing), counted from its first command. ``cpu_limit_s``
    (default: the timeout plus ``STARTUP_CPU_S``) caps its CPU time with
    RLIMIT_CPU and ``memory_limit_bytes`` (default: none) its address space
    with RLIMIT_AS.

    With ``spare_children`` a gate takes children started at the end of the
    previous gate, whose imports are done (see ``model_spares``), and leaves
    two started children for the next one.
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
    spare_children: bool = True

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
        if self.min_latency_runs < 2:
            # The latency interval resamples rounds, so one round would give
            # a zero-width interval.
            raise ValueError(f"min_latency_runs must be at least 2, got {self}")
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
        cpu = self.cpu_limit_s
        if cpu is None:
            cpu = self.timeout_s + STARTUP_CPU_S
        return {"memory_bytes": self.memory_limit_bytes, "cpu_s": cpu}


class ChildProcess:
    """A child process that runs ``model_child`` commands sent over a pipe.

    ``subject`` names the child in messages: ``teacher`` or ``student``. The
    child has ``settings.timeout_s`` of wall time for all its commands
    together, counted from the first command, and the resource limits of
    ``settings``. Its stderr goes to an unnamed temporary file in ``workdir``,
    which disappears with the process even when it is killed, so that a crash
    report can quote it.
    """

    def __init__(self, subject: str, settings: ProbeSettings, workdir: Path) -> None:
        self.subject = subject
        self.timeout_s = settings.timeout_s
        # Closed by stop(), which every owner of a child calls.
        self.stderr = tempfile.TemporaryFile(dir=workdir)  # noqa: SIM115
        self.connection, child_end = Pipe()
        try:
            self.process = _start(child_end.fileno(), settings, self.stderr)
        except OSError:
            self.stderr.close()
            self.connection.close()
            raise
        finally:
            child_end.close()
        self.deadline = time.monotonic() + settings.timeout_s
        self.commands = 0
        logger.debug("model_child.started subject=%s pid=%d", subject, self.process.pid)

    def request(self, command: dict[str, Any]) -> dict[str, Any]:
        """Send one command and wait for its report."""
        self.send(command)
        return self.receive()

    def send(self, command: dict[str, Any]) -> None:
        """Send one command without waiting for its report.

        Raises:
            EvaluationError: the child has already exited.
        """
        if self.commands == 0:
            # The child may have started well before its first command, while
            # the gate inspected the models, and that wait is not its work.
            self.deadline = time.monotonic() + self.timeout_s
        self.commands += 1
        try:
            self.connection.send(command)
        except (BrokenPipeError, ConnectionResetError):
            raise self._crash() from None

    def receive(self) -> dict[str, Any]:
        """Wait for the report of the last command, until the child's deadline.

        A report with ``"status": "error"`` is returned as it is, for the
        caller to interpret.

        Raises:
            EvaluationError: the child crashed, was killed by a signal or did
                not send a report before its deadline. The child is stopped.
        """
        remaining = max(0.0, self.deadline - time.monotonic())
        if not self.connection.poll(remaining):
            self.stop()
            raise EvaluationError(
                f"{_subject(self.subject)} process did not finish within "
                f"{self.timeout_s:g} s and was stopped; evaluate on fewer rows "
                "or raise the timeout",
                field=self.subject,
                value=self.timeout_s,
            )
        try:
            report: dict[str, Any] = self.connection.recv()
        except (EOFError, ConnectionResetError):
            raise self._crash() from None
        return report

    def stop(self) -> None:
        """Kill the child if it still runs and release the pipe and stderr file."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.connection.close()
        self.stderr.close()

    def _stderr_tail(self) -> str:
        # The child shares the file's offset, so seek before reading.
        self.stderr.seek(0, os.SEEK_END)
        self.stderr.seek(max(0, self.stderr.tell() - 4 * _STDERR_TAIL_CHARS))
        return self.stderr.read().decode("utf-8", errors="replace")

    def _crash(self) -> EvaluationError:
        try:
            code: int | None = self.process.wait(_EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            code = None
        stderr = self._stderr_tail()
        self.stop()
        logger.info(
            "model_child.crashed subject=%s pid=%s exit_code=%s",
            self.subject,
            self.process.pid,
            code,
        )
        return child_failure(
            self.subject, -signal.SIGKILL if code is None else code, stderr
        )


@contextmanager
def started_children(
    subjects: tuple[str, ...],
    settings: ProbeSettings,
    workdir: Path,
    *,
    spares: SparePool | None = None,
) -> Iterator[dict[str, ChildProcess]]:
    """Start one child per subject and stop them all when the block ends.

    With ``spares``, waiting children are taken from that pool where it has
    them, and the pool starts replacements when the block ends.
    ``workdir`` must be a private directory.
    """
    children: dict[str, ChildProcess] = {}
    try:
        for subject in subjects:
            spare = spares.take(subject, settings) if spares is not None else None
            children[subject] = spare or ChildProcess(subject, settings, workdir)
        yield children
    finally:
        for child in children.values():
            child.stop()
        if spares is not None:
            spares.refill(subjects, settings)


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
    descriptor: int, settings: ProbeSettings, stderr: IO[bytes]
) -> subprocess.Popen[bytes]:
    """Start ``model_child`` on the pipe end ``descriptor``, with the limits."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        item for item in (str(_PACKAGE_ROOT), env.get("PYTHONPATH")) if item
    )
    limits = json.dumps(settings.limits)
    command = [sys.executable, "-m", "app.evaluation.model_child", str(descriptor)]
    command.append(limits)
    # stdout is discarded and stderr goes to a file, because an unread pipe
    # could fill up and block the child while the parent waits on another.
    return subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        env=env,
        pass_fds=(descriptor,),
    )


def _subject(role: str) -> str:
    if role in ("teacher", "student"):
        return f"the {role} model"
    return f"the {role}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
