"""Plan and run the measurement of a teacher and a student.

The protocol, in order:

1. In this process: recognise each upload's form, inspect it without running
   it, choose its input and outputs, and cast the rows to its input type.
2. At the same time, in two child processes, one per model. Each child
   imports its runtime while step 1 runs, then loads its model, predicts every
   row and records its peak resident memory per phase.
3. Once both models have predicted every row: the same two model children,
   with their models still loaded, are timed in interleaved rounds
   (``model_timing``). Only one of them runs at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.evaluation.model_forms import ArchiveLimits, ModelForm, open_model
from app.evaluation.model_inputs import prepare_features
from app.evaluation.model_predictions import Outputs
from app.evaluation.model_probe import ChildProcess, ProbeSettings, model_failure
from app.evaluation.model_timing import ChildReportedError, Timing, time_models
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
class Measurement:
    """Measurements the child processes took of both models.

    ``memory`` is, per model and phase, the peak resident memory minus the
    model child's own peak once its imports and rows were loaded, in bytes
    (``None`` where /proc is unreadable). ``versions`` names the libraries the
    children ran. ``parameters`` contains counts that only the runtime reports
    (TorchScript).
    """

    outputs: dict[str, Outputs]
    memory: dict[str, dict[str, int | None]]
    versions: dict[str, str]
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
    plans: dict[str, ModelPlan],
    children: dict[str, ChildProcess],
    settings: ProbeSettings,
    workdir: Path,
) -> Measurement:
    """Probe both models in ``children``, then time them.

    ``children`` are the started children of ``ROLES``, by role.

    Raises:
        InputError: a model failed to load or run, or is newer than the
            installed onnxruntime supports.
        EvaluationError: a child crashed, timed out or ran out of memory.
    """
    specs = _probe_specs(plans, settings, workdir)
    for role in ROLES:
        children[role].send({"command": "probe", **specs[role]})
    reports = {role: children[role].receive() for role in ROLES}
    _check_reports(plans, reports, settings)
    timing = _time(plans, children, specs, settings)
    return Measurement(
        outputs={
            role: _outputs(plans[role], reports[role], specs[role]) for role in ROLES
        },
        memory={role: _memory(reports[role]) for role in ROLES},
        versions={**reports["teacher"]["versions"], **reports["student"]["versions"]},
        parameters={role: reports[role].get("parameters") for role in ROLES},
        timing=timing,
    )


def _check_reports(
    plans: dict[str, ModelPlan],
    reports: dict[str, dict[str, Any]],
    settings: ProbeSettings,
) -> None:
    for role in ROLES:
        if reports[role]["status"] != "ok":
            _check_runtime(plans[role], reports[role])
            raise model_failure(role, reports[role], plans[role].form.path, settings)


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


def _probe_specs(
    plans: dict[str, ModelPlan], settings: ProbeSettings, workdir: Path
) -> dict[str, dict[str, Any]]:
    """Write each model's rows to a .npy file and describe each probe.

    Rows that both models take unchanged are written once.
    """
    written: dict[int, Path] = {}
    specs = {}
    for role, plan in plans.items():
        features_path = written.get(id(plan.features))
        if features_path is None:
            features_path = workdir / f"{role}_x.npy"
            np.save(features_path, plan.features, allow_pickle=False)
            written[id(plan.features)] = features_path
        specs[role] = _probe_spec(plan, settings, workdir, features_path)
    return specs


def _probe_spec(
    plan: ModelPlan, settings: ProbeSettings, workdir: Path, features_path: Path
) -> dict[str, Any]:
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


def _check_runtime(plan: ModelPlan, report: dict[str, Any]) -> None:
    """Name both versions when a model failed to load because it is too new."""
    limits = report.get("runtime_limits")
    if plan.form.format != "onnx" or limits is None:
        return
    import onnx.helper

    # onnxruntime is built against one onnx release; the newest IR version of
    # releases whose opset it covers is the newest IR version it loads.
    ir_version = max(
        row[1] for row in onnx.helper.VERSION_TABLE if row[2] <= limits["opset"]
    )
    version = report["versions"]["onnxruntime"]
    check_versions(
        plan.info,
        plan.form.path,
        plan.role,
        limits=VersionLimits(ir_version, limits["opset"], f"onnxruntime {version}"),
        by="onnxruntime",
    )


def _time(
    plans: dict[str, ModelPlan],
    children: dict[str, ChildProcess],
    specs: dict[str, dict[str, Any]],
    settings: ProbeSettings,
) -> Timing:
    try:
        return time_models({role: children[role] for role in ROLES}, specs, settings)
    except ChildReportedError as error:
        plan = plans[error.role]
        raise model_failure(
            error.role, error.report, plan.form.path, settings
        ) from None


def _outputs(plan: ModelPlan, report: dict[str, Any], spec: dict[str, Any]) -> Outputs:
    labels_path, scores_path = Path(spec["labels_out"]), Path(spec["scores_out"])
    labels = np.load(labels_path, allow_pickle=False) if labels_path.exists() else None
    scores = np.load(scores_path, allow_pickle=False) if scores_path.exists() else None
    prefer = plan.choice.prediction.kind if plan.choice else "score"
    return Outputs(labels, scores, report.get("classes"), prefer)


def _memory(report: dict[str, Any]) -> dict[str, int | None]:
    # The child's own peak once its imports and rows are loaded is the
    # baseline: at that point it is an imports-only process, and comparing
    # within one process avoids the noise of comparing two.
    base = report["memory"]["ready"]["peak_bytes"]
    phases = ("ready", *PHASES)
    result: dict[str, int | None] = {}
    for phase in phases:
        peak = report["memory"][phase]["peak_bytes"]
        # A model that adds less than the measurement's noise could come out
        # below the baseline; it is reported as 0.
        added = None if peak is None or base is None else max(peak - base, 0)
        result[phase] = added
    return result
