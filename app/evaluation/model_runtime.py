"""Load and run one model inside a child process: ONNX or TorchScript.

This module runs only in child processes (see ``model_child``). It imports
onnxruntime or torch when ``import_runtime`` is called, never at import time.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

# Every ONNX model runs with these session options, so teacher and student are
# measured under equal conditions. The arena and memory-pattern values are
# onnxruntime's defaults, set explicitly so that the result can state them.
SESSION_SETTINGS: dict[str, Any] = {
    "intra_op_num_threads": 1,
    "inter_op_num_threads": 1,
    "execution_mode": "ORT_SEQUENTIAL",
    "allow_spinning": False,
    "graph_optimization_level": "ORT_ENABLE_ALL",
    "enable_cpu_mem_arena": True,
    "enable_mem_pattern": True,
    "providers": ["CPUExecutionProvider"],
}
# TorchScript models run on one intra-op and one inter-op thread as well.
TORCH_THREADS = 1


class Runner:
    """One loaded model that maps a batch of rows to labels and scores.

    ``run`` returns ``(labels, scores, classes)``: labels [rows] or ``None``,
    scores [rows, classes] or [rows] as float64 or ``None``, and the class of
    each score column when the scores came from maps, else ``None``.
    """

    parameters: int | None = None

    def run(self, batch: np.ndarray) -> tuple[Any, Any, list[Any] | None]:
        raise NotImplementedError

    def time_run(self, batch: np.ndarray) -> int:
        """Run once and return the wall time in nanoseconds."""
        start = time.perf_counter_ns()
        self.run(batch)
        return time.perf_counter_ns() - start


class OnnxRunner(Runner):
    """An onnxruntime session fetching the label and score outputs."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.session = create_session(Path(spec["model"]))
        self.input_name = str(spec["input_name"])
        self.outputs = [name for name in (spec["label"], spec["scores"]) if name]
        self.label = spec["label"]
        self.score_kind = spec["score_kind"]

    def run(self, batch: np.ndarray) -> tuple[Any, Any, list[Any] | None]:
        fetched = dict(
            zip(
                self.outputs,
                self.session.run(self.outputs, {self.input_name: batch}),
                strict=True,
            )
        )
        labels = fetched.pop(self.label) if self.label else None
        if not fetched:
            return labels, None, None
        (scores,) = fetched.values()
        if self.score_kind == "map":
            matrix, classes = _map_matrix(scores)
            return labels, matrix, classes
        return labels, np.asarray(scores), None

    def time_run(self, batch: np.ndarray) -> int:
        feed = {self.input_name: batch}
        start = time.perf_counter_ns()
        self.session.run(self.outputs, feed)
        return time.perf_counter_ns() - start


class TorchScriptRunner(Runner):
    """A TorchScript module run under ``torch.no_grad`` on the CPU.

    The first element of a tuple or list output is the model's output.
    """

    def __init__(self, spec: dict[str, Any]) -> None:
        import torch

        self.torch = torch
        loaded = torch.jit.load(  # type: ignore[no-untyped-call]
            str(spec["model"]), map_location="cpu"
        )
        self.module = loaded.eval()
        self.parameters = sum(int(p.numel()) for p in self.module.parameters())

    def run(self, batch: np.ndarray) -> tuple[Any, Any, list[Any] | None]:
        with self.torch.no_grad():
            output = self.module(self.torch.from_numpy(batch))
        if isinstance(output, tuple | list):
            output = output[0]
        return None, output.detach().numpy(), None


def import_runtime(formats: set[str]) -> dict[str, str]:
    """Import the runtimes that ``formats`` need and return their versions."""
    versions = {"numpy": np.__version__}
    if "onnx" in formats:
        import onnxruntime

        versions["onnxruntime"] = onnxruntime.__version__
    if "torchscript" in formats:
        import torch

        torch.set_num_threads(TORCH_THREADS)
        torch.set_num_interop_threads(TORCH_THREADS)
        versions["torch"] = torch.__version__
    return versions


def load_runner(spec: dict[str, Any]) -> Runner:
    """Load the model that ``spec`` describes."""
    if spec["format"] == "torchscript":
        return TorchScriptRunner(spec)
    return OnnxRunner(spec)


def create_session(model: Path) -> Any:
    """Create an onnxruntime session with ``SESSION_SETTINGS``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = SESSION_SETTINGS["intra_op_num_threads"]
    options.inter_op_num_threads = SESSION_SETTINGS["inter_op_num_threads"]
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_cpu_mem_arena = SESSION_SETTINGS["enable_cpu_mem_arena"]
    options.enable_mem_pattern = SESSION_SETTINGS["enable_mem_pattern"]
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(
        str(model), sess_options=options, providers=SESSION_SETTINGS["providers"]
    )


def runtime_limits() -> dict[str, int]:
    """Return the newest default-domain opset the installed onnxruntime loads.

    onnxruntime registers the operator schemas it implements; the largest
    ``since_version`` in the default domain is the newest opset it loads.
    """
    from onnxruntime.capi import _pybind_state

    opsets = [
        schema.since_version
        for schema in _pybind_state.get_all_operator_schema()
        if schema.domain in ("", "ai.onnx")
    ]
    return {"opset": max(opsets)}


def _map_matrix(rows: list[dict[Any, float]]) -> tuple[np.ndarray, list[Any]]:
    """Turn a sequence of class-to-probability maps into a matrix ordered by class."""
    if not rows:
        return np.zeros((0, 0)), []
    classes = sorted(rows[0])
    matrix = np.array([[row[key] for key in classes] for row in rows], dtype=np.float64)
    return matrix, [_plain(key) for key in classes]


def _plain(key: Any) -> Any:
    return key.item() if isinstance(key, np.generic) else key


def peak_memory() -> dict[str, int | None]:
    """Read this process's peak and current resident memory from /proc/self/status."""
    return {"peak_bytes": _status_bytes("VmHWM"), "rss_bytes": _status_bytes("VmRSS")}


def _status_bytes(key: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
