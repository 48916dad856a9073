"""Measure the model gate's overhead and the stability of its verdicts.

Run from the repository root::

    .venv/bin/python -m bench.model_gate [--repeats 10] [--overhead-repeats 3]

Overhead: the gate's wall time divided by the wall time of the same inference
work done with bare onnxruntime sessions in this process (same session options;
load both models, predict every row in batches, the same warm-up runs and the
same number of timed runs at batch 1 and at the throughput batch). The gate's
extra cost is starting two child processes and their imports (overlapped
with the inspection of the models), the inspection itself (parsing, checking
and shape inference of each ONNX file), passing commands and rows between
processes, and the bootstrap intervals. Gate and bare runs alternate
``--overhead-repeats`` times per pair, and the median of the per-pair ratios
is reported, because other jobs on a shared machine shift single runs. The
same ratio of CPU time (this process and its children, user and system) is
printed too. It moves less than wall time when other jobs compete for the
cores, and it counts the children's imports even where they overlap.

Each gate after the first takes the two spare children that the one before
left (``model_spares``), so it does not wait for their imports. The bench
sleeps 1 s after each gate, so that those imports do not overlap the bare run.
The CPU ratio counts them in the gate that uses the children.

Stability: the same pair gated ``--repeats`` times, on an idle machine and with
a busy loop on another core (started here and stopped at the end). Verdicts
must be identical and each reduction within 5% of its median.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app.evaluation.model_gate import evaluate_model
from app.evaluation.model_probe import ProbeSettings
from app.evaluation.model_runtime import create_session
from app.policy import Policy
from app.results import Evaluation
from examples.artifacts import build_model_artifacts

LARGE_HIDDEN = (4096, 4096, 1024)
REDUCTIONS = ("size_reduction", "latency_reduction", "memory_reduction")
# Longer than a spare child takes to import numpy and onnxruntime (0.3 s).
SPARE_START_S = 1.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--overhead-repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        paths = build_model_artifacts(root / "small", quick=True)
        data = np.load(paths["digits_test_npz"])
        X, y = data["X"], data["y"]
        large = _large_teacher(root / "large_teacher.onnx")
        pairs = {
            "small (digits teacher 6.7M -> student 7k parameters)": (
                paths["teacher"],
                paths["student"],
            ),
            "large (teacher 21.3M parameters, untrained -> student)": (
                large,
                paths["student"],
            ),
        }
        print("## Overhead: gate wall time / bare onnxruntime wall time")
        for name, (teacher, student) in pairs.items():
            _overhead(name, teacher, student, X, y, args.overhead_repeats)
        print("\n## Stability over repeated gates (small pair)")
        _stability("idle", paths["teacher"], paths["student"], X, y, args.repeats)
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            _stability("loaded", paths["teacher"], paths["student"], X, y, args.repeats)
        finally:
            busy.kill()
            busy.wait()


def _large_teacher(path: Path) -> Path:
    torch.manual_seed(0)
    widths = [64, *LARGE_HIDDEN, 10]
    layers: list[torch.nn.Module] = []
    for n_in, n_out in zip(widths[:-1], widths[1:], strict=True):
        layers += [torch.nn.Linear(n_in, n_out), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1]).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model, (torch.zeros(1, 64),), str(path), input_names=["input"],
            output_names=["logits"], dynamic_axes={"input": {0: "batch"}},
            opset_version=17, dynamo=False,
        )  # fmt: skip
    return path


def _overhead(
    name: str, teacher: Path, student: Path, X: Any, y: Any, repeats: int
) -> None:
    settings = ProbeSettings()
    walls: dict[str, list[float]] = {"gate": [], "bare": []}
    cpus: dict[str, list[float]] = {"gate": [], "bare": []}
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), _cpu_seconds()
        result = evaluate_model(
            teacher, student, X, y, policy=Policy(), settings=settings
        )
        walls["gate"].append(time.perf_counter() - start)
        cpus["gate"].append(_cpu_seconds() - cpu_start)
        # The gate leaves two spare children importing their runtimes; they
        # finish before the bare run starts, so that they do not slow it.
        time.sleep(SPARE_START_S)
        cpu_start = _cpu_seconds()
        walls["bare"].append(_bare(teacher, student, X, result, settings))
        cpus["bare"].append(_cpu_seconds() - cpu_start)
    print(
        f"{name}: status {result.status}, latency rounds "
        f"{result.details['teacher']['latency']['rounds']}, teacher parameters "
        f"{result.metrics['teacher_parameters']:,}"
    )
    for label, series in (("wall", walls), ("CPU", cpus)):
        ratios = [g / b for g, b in zip(series["gate"], series["bare"], strict=True)]
        ratio = float(np.median(ratios))
        print(
            f"  {label}: gate {_seconds(series['gate'])}, bare "
            f"{_seconds(series['bare'])}, ratios "
            f"{', '.join(f'{value:.2f}' for value in ratios)}, median ratio "
            f"{ratio:.2f} (overhead {ratio - 1:+.0%})"
        )


def _cpu_seconds() -> float:
    """Return the user and system CPU time of this process and its reaped children.

    The gate waits for every child it starts, so its children's CPU time is
    counted once the gate returns.
    """
    total = 0.0
    for scope in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(scope)
        total += usage.ru_utime + usage.ru_stime
    return total


def _seconds(values: list[float]) -> str:
    return "/".join(f"{value:.2f}" for value in values) + " s"


def _bare(
    teacher: Path, student: Path, X: Any, result: Evaluation, settings: ProbeSettings
) -> float:
    """Do the gate's inference work with plain sessions and return its wall time."""
    features = X.astype(np.float32)
    rounds = {
        "latency": result.details["teacher"]["latency"]["rounds"],
        "throughput": result.details["teacher"]["throughput"]["rounds"],
    }
    start = time.perf_counter()
    sessions = [create_session(path) for path in (teacher, student)]
    for session in sessions:
        for begin in range(0, len(features), settings.batch_rows):
            session.run(None, {"input": features[begin : begin + settings.batch_rows]})
    for kind, rows in (("latency", 1), ("throughput", settings.throughput_rows)):
        feed = {"input": features[:rows]}
        for session in sessions:
            for _ in range(settings.warmup_runs):
                session.run(None, feed)
        for _ in range(rounds[kind]):
            for session in sessions:
                for _ in range(settings.runs_per_round):
                    session.run(None, feed)
    return time.perf_counter() - start


def _stability(
    label: str, teacher: Path, student: Path, X: Any, y: Any, repeats: int
) -> None:
    verdicts: list[tuple[str, ...]] = []
    values: dict[str, list[float]] = {name: [] for name in REDUCTIONS}
    for _ in range(repeats):
        result = evaluate_model(teacher, student, X, y, policy=Policy())
        verdicts.append(tuple(f"{c.name}={c.status}" for c in result.checks))
        for check in result.checks:
            if check.name in values and check.value is not None:
                values[check.name].append(check.value)
    print(f"{label}: {repeats} gates, identical verdicts: {len(set(verdicts)) == 1}")
    print(f"  verdict: {', '.join(verdicts[0])}")
    for name, series in values.items():
        array = np.array(series)
        median = float(np.median(array))
        spread = float(np.max(np.abs(array - median) / abs(median)))
        print(
            f"  {name}: median {median:.4f}, min {array.min():.4f}, max "
            f"{array.max():.4f}, max deviation from median {spread:.2%}"
        )


if __name__ == "__main__":
    main()
