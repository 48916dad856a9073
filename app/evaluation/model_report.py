"""Summaries of a model measurement for the result: timing, memory, environment."""

from __future__ import annotations

import os
import platform
from dataclasses import asdict
from typing import Any

import numpy as np
import onnx

from app.evaluation.model_measure import PHASES, Measurement, ModelPlan
from app.evaluation.model_probe import ProbeSettings
from app.evaluation.model_runtime import SESSION_SETTINGS, TORCH_THREADS


def latency_summary(runs_ns: np.ndarray) -> dict[str, float | int]:
    """Return p50 and p90 in milliseconds over every timed run, and the counts."""
    flat = runs_ns.reshape(-1) / 1e6
    return {
        "p50_ms": float(np.percentile(flat, 50)),
        "p90_ms": float(np.percentile(flat, 90)),
        "rounds": int(runs_ns.shape[0]),
        "runs": int(flat.size),
    }


def throughput_summary(runs_ns: np.ndarray, rows: int) -> dict[str, float | int]:
    """Return rows per second at the median run time, with the batch size."""
    median_s = float(np.median(runs_ns)) / 1e9
    return {
        "rows_per_s": rows / median_s if median_s > 0 else 0.0,
        "batch_rows": rows,
        "rounds": int(runs_ns.shape[0]),
    }


def environment(measurement: Measurement) -> dict[str, Any]:
    """Describe where the models were measured: CPU, cores, libraries, settings."""
    versions = dict(measurement.versions)
    versions["onnx"] = onnx.__version__
    versions["python"] = platform.python_version()
    return {
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)),
        "threads_per_model": SESSION_SETTINGS["intra_op_num_threads"],
        "torch_threads": TORCH_THREADS if "torch" in versions else None,
        "versions": versions,
        "session_options": SESSION_SETTINGS,
    }


def protocol(settings: ProbeSettings) -> dict[str, Any]:
    """Describe how the models were measured, with every setting used."""
    return {
        **asdict(settings),
        "memory": "peak resident memory (VmHWM) of the model's child minus its "
        "peak once its imports and rows were loaded, per phase: load, "
        "first_run (one batch of one row), steady (every row predicted, then "
        "the warm-up runs)",
        "latency": "batch of 1 row (or the model's fixed batch); teacher and "
        "student alternate in rounds of runs_per_round runs, in a random order "
        "per round (seed); the reduction compares the medians over all runs",
        "latency_interval": "95% bootstrap over rounds, 2000 resamples, seed 0",
        "order": "teacher and student children start at the same time and "
        "predict at the same time; each keeps its model loaded for timing, "
        "where only one child runs at a time",
    }


def model_details(plan: ModelPlan, measurement: Measurement) -> dict[str, Any]:
    """Describe one model: its form, input, outputs, size and per-phase memory."""
    info, role = plan.info, plan.role
    choice = plan.choice
    timing = measurement.timing
    return {
        "format": plan.form.format,
        "packaging": plan.form.packaging,
        "input_name": info.input_name,
        "input_shape": info.input_shape,
        "input_type": info.input_type,
        "output_used": choice.prediction.name if choice else "output",
        "output_kind": choice.prediction.kind if choice else "score",
        "score_output": choice.scores if choice else "output",
        "outputs": [{"name": o.name, "type": o.type_text} for o in info.outputs],
        "opset": info.opset,
        "ir_version": info.ir_version,
        "external_data_bytes": info.external_data_bytes,
        "flops_per_row": info.flops,
        "flops_note": info.flops_note,
        "memory_bytes_by_phase": {
            phase: measurement.memory[role][phase] for phase in PHASES
        },
        "memory_offset_before_load_bytes": measurement.memory[role]["ready"],
        "latency": latency_summary(timing.latency[role]),
        "latency_batch_rows": timing.latency_rows[role],
        "throughput": throughput_summary(
            timing.throughput[role], timing.throughput_rows[role]
        ),
    }


def parameters(plan: ModelPlan, measurement: Measurement) -> int:
    """Return the parameter count: from the graph, or from the runtime."""
    reported = measurement.parameters.get(plan.role)
    return plan.info.parameters if reported is None else int(reported)


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return platform.processor() or None
