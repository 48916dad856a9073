"""The child side of a model measurement: ``python -m app.evaluation.model_child``.

The parent (``model_probe``) writes a JSON spec and starts::

    python -m app.evaluation.model_child {baseline,probe,timing} SPEC

Every mode writes a JSON report to ``spec["report"]``:

- ``baseline`` imports the same runtimes as the model children and loads the
  same feature file, but no model. Its peak resident memory is subtracted from
  the model children's. It also reports library versions and the newest opset
  the installed onnxruntime loads.
- ``probe`` loads one model, records peak memory after each phase (``ready``,
  ``load``, ``first_run``, ``steady``), predicts every row in batches and saves
  labels and scores as ``.npy`` files.
- ``timing`` loads teacher and student, warms both up, and then times them in
  interleaved rounds in a random order from a fixed seed, at batch 1 and at a
  larger batch for throughput.

On success the report has ``"status": "ok"`` and the exit code is 0. When
loading or running a model raises, the report has ``"status": "error"`` with
``stage`` (``load`` or ``run``), ``message`` and ``out_of_memory``, and the exit
code is 3. Any other exit, a signal or a timeout means the child crashed.
"""

from __future__ import annotations

import json
import math
import os
import resource
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from app.evaluation.model_runtime import Runner

MODEL_ERROR_EXIT_CODE = 3
# onnxruntime reports a failed allocation as an exception whose text contains
# one of these; Python raises MemoryError.
_OUT_OF_MEMORY_MARKERS = ("bad_alloc", "Failed to allocate", "out of memory")


def _die_with_parent() -> None:
    """Ask Linux to kill this child when the thread that started it exits.

    A service killed in the middle of a gate would otherwise leave its model
    children running until their CPU limit. Elsewhere this does nothing.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:
        # The parent died before the request took effect.
        os._exit(1)


def main(argv: list[str] | None = None) -> int:
    """Run one mode of the protocol above and return the exit code."""
    mode, spec_path = (argv if argv is not None else sys.argv[1:])[:2]
    spec: dict[str, Any] = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    # The limits apply before numpy or a runtime is imported, so they cover
    # everything the child loads.
    _limit_resources(spec["limits"])
    _die_with_parent()
    report: dict[str, Any] = {"status": "ok"}
    try:
        {"baseline": _baseline, "probe": _probe, "timing": _timing}[mode](spec, report)
    # The child reports every failure of a model to the parent, whatever the
    # exception class, because onnxruntime's and torch's errors derive from
    # Exception without a common base of their own.
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"
        out_of_memory = isinstance(exc, MemoryError) or any(
            marker in message for marker in _OUT_OF_MEMORY_MARKERS
        )
        report.update(status="error", message=message, out_of_memory=out_of_memory)
        report.setdefault("stage", "load")
        _write(spec["report"], report)
        return MODEL_ERROR_EXIT_CODE
    _write(spec["report"], report)
    return 0


def _limit_resources(limits: dict[str, Any]) -> None:
    """Apply the address-space and CPU-time limits of the spec to this process.

    The CPU limit's soft value sends SIGXCPU; the hard value, 5 s later,
    SIGKILL. An address-space limit makes allocations fail, which onnxruntime
    and Python report as errors the child classifies as out of memory.
    """
    if limits.get("memory_bytes") is not None:
        size = int(limits["memory_bytes"])
        resource.setrlimit(resource.RLIMIT_AS, (size, size))
    if limits.get("cpu_s") is not None:
        seconds = math.ceil(limits["cpu_s"])
        resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 5))


def _baseline(spec: dict[str, Any], report: dict[str, Any]) -> None:
    import numpy as np

    from app.evaluation.model_runtime import import_runtime, peak_memory, runtime_limits

    report["versions"] = import_runtime(set(spec["formats"]))
    np.load(spec["features"], allow_pickle=False)
    if "onnx" in spec["formats"]:
        report["runtime_limits"] = runtime_limits()
    report["memory"] = {"ready": peak_memory()}


def _probe(spec: dict[str, Any], report: dict[str, Any]) -> None:
    import numpy as np

    from app.evaluation.model_runtime import import_runtime, load_runner, peak_memory

    report["versions"] = import_runtime({spec["format"]})
    features = np.load(spec["features"], allow_pickle=False)
    memory: dict[str, Any] = {"ready": peak_memory()}
    report["memory"] = memory
    report["stage"] = "load"
    runner = load_runner(spec)
    report["parameters"] = runner.parameters
    memory["load"] = peak_memory()
    report["stage"] = "run"
    single = _batches(features[:1], spec["batch_rows"], spec["fixed_batch"])[0]
    _check_outputs(runner.run(single), spec, len(single))
    memory["first_run"] = peak_memory()
    labels, scores, classes = _predict(runner, features, spec)
    for _ in range(spec["warmup_runs"]):
        runner.run(single)
    memory["steady"] = peak_memory()
    if labels is not None:
        np.save(spec["labels_out"], labels, allow_pickle=False)
    if scores is not None:
        np.save(spec["scores_out"], scores, allow_pickle=False)
    report["classes"] = classes
    del report["stage"]


def _predict(
    runner: Runner, features: np.ndarray, spec: dict[str, Any]
) -> tuple[np.ndarray | None, np.ndarray | None, list[Any] | None]:
    import numpy as np

    label_parts: list[np.ndarray] = []
    score_parts: list[np.ndarray] = []
    classes = None
    remaining = len(features)
    for batch in _batches(features, spec["batch_rows"], spec["fixed_batch"]):
        labels, scores, classes = _check_outputs(runner.run(batch), spec, len(batch))
        rows = min(remaining, len(batch))
        # Slicing drops the rows that padded a fixed-size last batch.
        if labels is not None:
            label_parts.append(labels[:rows])
        if scores is not None:
            score_parts.append(scores[:rows])
        remaining -= rows
    return (
        np.concatenate(label_parts) if label_parts else None,
        np.concatenate(score_parts) if score_parts else None,
        classes,
    )


def _check_outputs(
    outputs: tuple[Any, Any, list[Any] | None], spec: dict[str, Any], rows: int
) -> tuple[np.ndarray | None, np.ndarray | None, list[Any] | None]:
    import numpy as np

    labels, scores, classes = outputs
    names = spec.get("label") or "label", spec.get("scores") or "output"
    if labels is not None:
        labels = _rows_of(np.asarray(labels), names[0], rows, max_rank=2)
        labels = labels.reshape(rows)
        labels = labels.astype(str) if labels.dtype.kind in "OSU" else labels
        labels = labels.astype(np.int64) if labels.dtype.kind in "biu" else labels
    if scores is not None:
        scores = _rows_of(np.asarray(scores), names[1], rows, max_rank=2)
        scores = scores.astype(np.float64)
    return labels, scores, classes


def _rows_of(output: np.ndarray, name: str, rows: int, *, max_rank: int) -> np.ndarray:
    if output.ndim == 0 or output.shape[0] != rows:
        raise ValueError(
            f"output {name!r} has shape {list(output.shape)} for a batch of {rows} rows"
        )
    if output.ndim > max_rank:
        raise ValueError(
            f"output {name!r} has shape {list(output.shape)}; expected [N], [N, 1] "
            "or, for scores, [N, classes]"
        )
    return output


def _batches(features: np.ndarray, rows: int, fixed: bool) -> list[np.ndarray]:
    """Split rows into batches; with a fixed batch size, pad the last one."""
    import numpy as np

    batches = [
        features[start : start + rows] for start in range(0, len(features), rows)
    ]
    if fixed and len(batches[-1]) < rows:
        last = batches[-1]
        padding = np.repeat(last[-1:], rows - len(last), axis=0)
        batches[-1] = np.concatenate([last, padding])
    return [np.ascontiguousarray(batch) for batch in batches]


def _timing(spec: dict[str, Any], report: dict[str, Any]) -> None:
    import numpy as np

    from app.evaluation.model_runtime import import_runtime, load_runner

    models = spec["models"]
    report["versions"] = import_runtime({model["format"] for model in models})
    runners = [load_runner(model) for model in models]
    features = [np.load(model["features"], allow_pickle=False) for model in models]
    report["stage"] = "run"
    rng = np.random.default_rng(spec["seed"])
    report["latency"] = _timed_rounds(
        runners, features, models, rng, spec, rows_key="latency_rows"
    )
    report["throughput"] = _timed_rounds(
        runners, features, models, rng, spec, rows_key="throughput_rows"
    )
    del report["stage"]


def _timed_rounds(
    runners: list[Runner],
    features: list[np.ndarray],
    models: list[dict[str, Any]],
    rng: np.random.Generator,
    spec: dict[str, Any],
    *,
    rows_key: str,
) -> dict[str, Any]:
    """Time every model in rounds; each round runs the models in a random order."""
    settings = spec[rows_key]
    feeds = [
        _batches(rows[: model[rows_key]], model[rows_key], True)[0]
        for rows, model in zip(features, models, strict=True)
    ]
    for runner, feed in zip(runners, feeds, strict=True):
        for _ in range(spec["warmup_runs"]):
            runner.run(feed)
    durations: list[list[list[int]]] = [[] for _ in runners]
    budget_ns = int(settings["budget_s"] * 1e9)
    spent = 0
    while len(durations[0]) < settings["min_rounds"] or (
        len(durations[0]) < settings["max_rounds"] and spent < budget_ns
    ):
        for index in rng.permutation(len(runners)):
            runs = [
                runners[index].time_run(feeds[index])
                for _ in range(spec["runs_per_round"])
            ]
            durations[index].append(runs)
            spent += sum(runs)
    return {
        "batch_rows": [model[rows_key] for model in models],
        "durations_ns": durations,
    }


def _write(path: str, report: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(report), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
