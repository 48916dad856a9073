"""Plan and run the measurement of a teacher and a student.

The protocol, in order:

1. In this process: recognise each upload's form, inspect it without running
   it, choose its input and outputs, and cast the rows to its input type.
2. At the same time, in three child processes: an imports-only baseline, the
   teacher and the student. Each model child loads its model, predicts every
   row and records its peak resident memory per phase.
3. Alone, in one child process: load both models (which already ran once, so
   a crash there is unlikely) and time them in interleaved rounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.errors import EvaluationError
from app.evaluation.model_forms import ArchiveLimits, ModelForm, open_model
from app.evaluation.model_inputs import prepare_features
from app.evaluation.model_predictions import Outputs
from app.evaluation.model_probe import Child, ProbeSettings, model_failure, run_children
from app.evaluation.onnx_models import (
    ModelInfo,
    VersionLimits,
    check_versions,
    inspect_model,
)
from app.evaluation.onnx_outputs import OutputChoice, select_outputs
from app.policy import Policy

ROLES = ("teacher", "student")
PHASES = ("load", "first_run", "steady")


@dataclass(frozen=True)
class ModelPlan:
    """One model validated against the dataset, ready to run.

    ``choice`` is ``None`` for TorchScript, whose single output is read as
    scores. ``fixed_batch`` is the batch size the model declares, if any.
    """

    role: str
    form: ModelForm
    info: ModelInfo
    choice: OutputChoice | None
    features: np.ndarray
    fixed_batch: int | None


@dataclass(frozen=True)
class Timing:
    """Timed runs per model, as arrays of shape (rounds, runs per round) in ns."""

    latency: dict[str, np.ndarray]
    latency_rows: dict[str, int]
    throughput: dict[str, np.ndarray]
    throughput_rows: dict[str, int]


@dataclass(frozen=True)
class Measurement:
    """Measurements the child processes took of both models.

    ``memory`` is, per model and phase, the peak resident memory minus the
    model child's own peak once its imports were done, in bytes (``None`` where
    /proc is unreadable). The imports-only child is the fallback baseline.
    ``parameters`` contains counts that only the runtime reports (TorchScript).
    """

    outputs: dict[str, Outputs]
    memory: dict[str, dict[str, int | None]]
    baseline: dict[str, Any]
    parameters: dict[str, int | None]
    timing: Timing


def plan_model(
    role: str,
    path: Path,
    features: np.ndarray,
    policy: Policy,
    workdir: Path,
    *,
    allow_torchscript: bool,
    archive_limits: ArchiveLimits | None,
) -> ModelPlan:
    """Recognise, inspect and match one model to the rows, without running it."""
    form = open_model(
        path,
        field=role,
        workdir=workdir,
        allow_torchscript=allow_torchscript,
        limits=archive_limits,
    )
    if form.format == "torchscript":
        info = _torchscript_info(form.path)
        return ModelPlan(role, form, info, None, _cast(features, info, role), None)
    info = inspect_model(
        form.path,
        field=role,
        input_name=policy.tensor_name("input_name", role),
        allow_external_data=form.packaging == "zip",
    )
    choice = select_outputs(
        info, field=role, requested=policy.tensor_name("output_name", role)
    )
    batch = info.input_shape[0] if info.input_shape else None
    fixed = batch if isinstance(batch, int) and batch > 0 else None
    return ModelPlan(role, form, info, choice, _cast(features, info, role), fixed)


def measure(
    plans: dict[str, ModelPlan], settings: ProbeSettings, workdir: Path
) -> Measurement:
    """Run the baseline and model children, then the timing child.

    Raises:
        InputError: a model failed to load or run, or is newer than the
            installed onnxruntime supports.
        EvaluationError: a child crashed, timed out or ran out of memory.
    """
    specs = {role: _probe_spec(plan, settings, workdir) for role, plan in plans.items()}
    formats = sorted({plan.form.format for plan in plans.values()})
    features_path = workdir / "teacher_x.npy"
    baseline_spec = {"formats": formats, "features": str(features_path)}
    children = [Child("baseline", "baseline", baseline_spec)]
    children += [Child(role, "probe", specs[role]) for role in ROLES]
    baseline, *reports = run_children(children, settings, workdir)
    if baseline["status"] != "ok":
        raise EvaluationError(
            f"the imports-only baseline process failed: {baseline['message']}",
            field="baseline",
            value=baseline["message"],
        )
    for role, report in zip(ROLES, reports, strict=True):
        _check_runtime(plans[role], baseline)
        if report["status"] != "ok":
            raise model_failure(role, report, plans[role].form.path, settings)
    timing = _time(plans, specs, settings, workdir)
    return Measurement(
        outputs={
            role: _outputs(plans[role], report, specs[role])
            for role, report in zip(ROLES, reports, strict=True)
        },
        memory={
            role: _memory(report, baseline)
            for role, report in zip(ROLES, reports, strict=True)
        },
        baseline=baseline,
        parameters={
            role: report.get("parameters")
            for role, report in zip(ROLES, reports, strict=True)
        },
        timing=timing,
    )


def _cast(features: np.ndarray, info: ModelInfo, role: str) -> np.ndarray:
    return prepare_features(features, info, role=role)


def _torchscript_info(path: Path) -> ModelInfo:
    # TorchScript declares no input types; torch modules take float32 unless
    # built otherwise. The parameter count comes from the child.
    return ModelInfo(
        path=path,
        size_bytes=path.stat().st_size,
        parameters=0,
        input_name="input",
        input_shape=None,
        input_type="float32",
        outputs=[],
        opset=0,
        ir_version=0,
        flops_note="not computed: TorchScript graphs are not analysed",
    )


def _probe_spec(
    plan: ModelPlan, settings: ProbeSettings, workdir: Path
) -> dict[str, Any]:
    features_path = workdir / f"{plan.role}_x.npy"
    np.save(features_path, plan.features, allow_pickle=False)
    choice = plan.choice
    return {
        "role": plan.role,
        "format": plan.form.format,
        "model": str(plan.form.path),
        "features": str(features_path),
        "input_name": plan.info.input_name,
        "label": choice.label if choice else None,
        "scores": choice.scores if choice else "output",
        "score_kind": choice.score_kind if choice else "tensor",
        "batch_rows": plan.fixed_batch or settings.batch_rows,
        "fixed_batch": plan.fixed_batch is not None,
        "warmup_runs": settings.warmup_runs,
        "labels_out": str(workdir / f"{plan.role}_labels.npy"),
        "scores_out": str(workdir / f"{plan.role}_scores.npy"),
        "latency_rows": plan.fixed_batch or 1,
        "throughput_rows": plan.fixed_batch or settings.throughput_rows,
    }


def _check_runtime(plan: ModelPlan, baseline: dict[str, Any]) -> None:
    limits = baseline.get("runtime_limits")
    if plan.form.format != "onnx" or limits is None:
        return
    import onnx.helper

    # onnxruntime is built against one onnx release; the newest IR version of
    # releases whose opset it covers is the newest IR version it loads.
    ir_version = max(
        row[1] for row in onnx.helper.VERSION_TABLE if row[2] <= limits["opset"]
    )
    version = baseline["versions"]["onnxruntime"]
    check_versions(
        plan.info,
        plan.form.path,
        plan.role,
        limits=VersionLimits(ir_version, limits["opset"], f"onnxruntime {version}"),
        by="onnxruntime",
    )


def _time(
    plans: dict[str, ModelPlan],
    specs: dict[str, dict[str, Any]],
    settings: ProbeSettings,
    workdir: Path,
) -> Timing:
    spec = {
        "models": [specs[role] for role in ROLES],
        "seed": settings.seed,
        "warmup_runs": settings.warmup_runs,
        "runs_per_round": settings.runs_per_round,
        "latency_rows": {
            "min_rounds": settings.min_latency_runs,
            "max_rounds": settings.max_latency_runs,
            "budget_s": settings.latency_budget_s,
        },
        "throughput_rows": {
            "min_rounds": min(settings.min_latency_runs, 5),
            "max_rounds": settings.max_latency_runs,
            "budget_s": settings.throughput_budget_s,
        },
    }
    (report,) = run_children([Child("timing", "timing", spec)], settings, workdir)
    if report["status"] != "ok":
        raise model_failure("timing", report, plans["teacher"].form.path, settings)
    return Timing(
        latency=_durations(report["latency"]),
        latency_rows=dict(zip(ROLES, report["latency"]["batch_rows"], strict=True)),
        throughput=_durations(report["throughput"]),
        throughput_rows=dict(
            zip(ROLES, report["throughput"]["batch_rows"], strict=True)
        ),
    )


def _durations(section: dict[str, Any]) -> dict[str, np.ndarray]:
    return {
        role: np.asarray(runs, dtype=np.int64)
        for role, runs in zip(ROLES, section["durations_ns"], strict=True)
    }


def _outputs(plan: ModelPlan, report: dict[str, Any], spec: dict[str, Any]) -> Outputs:
    labels_path, scores_path = Path(spec["labels_out"]), Path(spec["scores_out"])
    labels = np.load(labels_path, allow_pickle=False) if labels_path.exists() else None
    scores = np.load(scores_path, allow_pickle=False) if scores_path.exists() else None
    prefer = plan.choice.prediction.kind if plan.choice else "score"
    return Outputs(labels, scores, report.get("classes"), prefer)


def _memory(report: dict[str, Any], baseline: dict[str, Any]) -> dict[str, int | None]:
    # The child's own peak once its imports are done is the baseline: it has
    # the same imports as the imports-only child, without the noise of
    # comparing two processes. The imports-only child is the fallback.
    own = report["memory"]["ready"]["peak_bytes"]
    base = own if own is not None else baseline["memory"]["ready"]["peak_bytes"]
    phases = ("ready", *PHASES)
    result: dict[str, int | None] = {}
    for phase in phases:
        peak = report["memory"][phase]["peak_bytes"]
        # A model that adds less than the measurement's noise could come out
        # below the baseline; it is reported as 0.
        added = None if peak is None or base is None else max(peak - base, 0)
        result[phase] = added
    return result
