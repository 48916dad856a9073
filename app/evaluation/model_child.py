"""The child side of a model measurement: ``python -m app.evaluation.model_child``.

The parent (``model_probe``) starts::

    python -m app.evaluation.model_child FD LIMITS

where ``FD`` is this process's end of a ``multiprocessing`` pipe and
``LIMITS`` the JSON of ``ProbeSettings.limits``. The parent then sends
commands over the pipe, one at a time. Each command is a dict whose
``command`` key names it, and the child sends a report for each:

- ``probe`` loads one model, records peak memory after each phase (``ready``,
  ``load``, ``first_run``, ``steady``), predicts every row in batches and saves
  labels and scores as ``.npy`` files. The child keeps the model loaded. When
  an ONNX model fails to load, the report adds ``runtime_limits``: the newest
  opset the installed onnxruntime loads.
- ``warmup`` runs the probed model ``warmup_runs`` times on a batch of
  ``rows_key`` rows (``latency_rows`` or ``throughput_rows``) and keeps that
  batch.
- ``time`` runs the model ``runs`` times on that batch and reports each wall
  time in nanoseconds. The parent alternates these commands between the
  teacher's and the student's child.

The child imports numpy and onnxruntime before it reads its first command,
so that the imports overlap with the parent's inspection of the models. It
ends when the pipe closes or a command fails. The parent kills it once the gate
no longer needs it.

Before anything else the child limits its address space, CPU time, file size
and open files, and cuts itself off the network (``confine``); the report's
``network`` field says how. On success a report has ``"status": "ok"``. When
loading or running a model raises, the report has ``"status": "error"`` with
``stage`` (``load`` or ``run``), ``message`` and ``out_of_memory``, and the
child ends. Any other exit, a signal or a timeout means the child crashed.
"""

from __future__ import annotations

import json
import logging
import math
import os
import resource
import signal
import sys
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from app.evaluation.model_runtime import Runner

logger = logging.getLogger(__name__)

# Limits applied when the parent's limits leave them out. The largest file a
# child writes contains the scores of every row: 1 GiB is 134 million float64
# scores.
MAX_FILE_BYTES = 1024**3
MAX_OPEN_FILES = 256
_CLONE_NEWNET = 0x40000000
_NO_NETWORK = "model processes have no network access; the model must not open sockets"
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

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:
        # The parent died before the request took effect.
        os._exit(1)


def main(argv: list[str] | None = None) -> int:
    """Run ``serve`` on the pipe descriptor and limits in ``argv``, then return 0."""
    descriptor, limits = (argv if argv is not None else sys.argv[1:])[:2]
    serve(Connection(int(descriptor)), json.loads(limits))
    return 0


def serve(connection: Connection, limits: dict[str, Any]) -> None:
    """Run each command from ``connection`` and send back its report.

    The loop ends when the pipe closes or after a failed command.
    """
    # The limits apply before numpy or a runtime is imported, so they cover
    # everything the child loads.
    network = confine(limits)
    _die_with_parent()
    _preload()
    state: dict[str, Any] = {}
    while True:
        try:
            command: dict[str, Any] = connection.recv()
        except EOFError:
            return
        report = _run(command, state)
        report["network"] = network
        connection.send(report)
        if report["status"] != "ok":
            return


def _run(command: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    handlers = {
        "probe": _probe,
        "warmup": _warmup,
        "time": _time,
    }
    report: dict[str, Any] = {"status": "ok"}
    try:
        handlers[command["command"]](command, report, state)
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
        report.setdefault("versions", state.get("versions", {}))
    return report


def confine(limits: dict[str, Any]) -> str:
    """Apply the resource limits of the spec and cut this process off the network.

    Returns how the network was cut: ``"namespace"`` when the process could
    move into an empty network namespace (root, or CAP_SYS_ADMIN), else
    ``"sockets"``, where Python rejects every attempt to create a socket. ONNX
    models cannot open sockets. The socket guard stops Python code that a
    TorchScript model runs, but not native code.
    """
    _limit_resources(limits)
    isolation = "namespace" if _unshare_network() else "sockets"
    _block_sockets()
    return isolation


def _limit_resources(limits: dict[str, Any]) -> None:
    """Apply address-space, CPU-time, file-size and open-file limits.

    The CPU limit's soft value sends SIGXCPU; the hard value, 5 s later,
    SIGKILL. An address-space limit makes allocations fail, which onnxruntime
    and Python report as errors the child classifies as out of memory. Writing
    past the file-size limit fails with EFBIG, because SIGXFSZ is ignored.
    """
    if limits.get("memory_bytes") is not None:
        size = int(limits["memory_bytes"])
        resource.setrlimit(resource.RLIMIT_AS, (size, size))
    if limits.get("cpu_s") is not None:
        seconds = math.ceil(limits["cpu_s"])
        resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 5))
    file_bytes = int(limits.get("file_bytes", MAX_FILE_BYTES))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
    open_files = int(limits.get("open_files", MAX_OPEN_FILES))
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY:
        open_files = min(open_files, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))


def _unshare_network() -> bool:
    """Move this process into a new network namespace with no interfaces.

    Returns False where that is not allowed: without CAP_SYS_ADMIN, under a
    seccomp profile that blocks unshare, or off Linux.
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.unshare(_CLONE_NEWNET)) == 0


def _block_sockets() -> None:
    """Make every new Python socket raise PermissionError.

    ``socket.socket`` stays a class, because modules such as ssl subclass it
    at import time.
    """
    import socket

    def blocked(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(_NO_NETWORK)

    class BlockedSocket(socket.socket):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise PermissionError(_NO_NETWORK)

    socket.socket = BlockedSocket  # type: ignore[misc]
    socket.socketpair = blocked
    socket.create_connection = blocked
    socket.getaddrinfo = blocked


def _preload() -> None:
    """Import numpy and onnxruntime, the runtimes most models need.

    A failed import is logged here and raised again by the command that needs
    the runtime, which reports it to the parent.
    """
    try:
        from app.evaluation.model_runtime import import_runtime

        import_runtime({"onnx"})
    except ImportError as exc:
        logger.warning("model_child.preload_failed pid=%d error=%s", os.getpid(), exc)


def _probe(spec: dict[str, Any], report: dict[str, Any], state: dict[str, Any]) -> None:
    import numpy as np

    from app.evaluation.model_runtime import (
        import_runtime,
        load_runner,
        peak_memory,
        runtime_limits,
    )

    report["versions"] = state["versions"] = import_runtime({spec["format"]})
    features = np.load(spec["features"], allow_pickle=False)
    memory: dict[str, Any] = {"ready": peak_memory()}
    report["memory"] = memory
    report["stage"] = "load"
    try:
        runner = load_runner(spec)
    except Exception:
        # The parent names both versions when the model is newer than this
        # runtime. Asked only on failure: the operator schemas take 6 MB.
        if spec["format"] == "onnx":
            report["runtime_limits"] = runtime_limits()
        raise
    state.update(spec=spec, runner=runner, features=features)
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


def _warmup(
    command: dict[str, Any], report: dict[str, Any], state: dict[str, Any]
) -> None:
    """Build the timed batch of ``command["rows_key"]`` rows and warm up on it."""
    spec, runner = state["spec"], state["runner"]
    rows = spec[command["rows_key"]]
    report["stage"] = "run"
    feed = _batches(state["features"][:rows], rows, True)[0]
    state["feed"] = feed
    for _ in range(spec["warmup_runs"]):
        runner.run(feed)
    del report["stage"]


def _time(
    command: dict[str, Any], report: dict[str, Any], state: dict[str, Any]
) -> None:
    """Time ``command["runs"]`` runs on the batch of the last ``warmup``."""
    runner, feed = state["runner"], state["feed"]
    report["stage"] = "run"
    report["durations_ns"] = [runner.time_run(feed) for _ in range(command["runs"])]
    del report["stage"]


if __name__ == "__main__":
    sys.exit(main())
