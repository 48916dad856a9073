"""Reject a gate task that a model's declared outputs cannot serve.

The ONNX file declares the shape of each output, so a regression task on a
10-class model, or a binary task on one, is found at intake, before either
model runs. Outputs whose width is not declared are left to the run.
"""

from __future__ import annotations

import numpy as np

from app.errors import InputError
from app.evaluation.model_measure import ModelPlan
from app.evaluation.model_predictions import looks_continuous
from app.evaluation.onnx_models import Dim, OutputInfo
from app.policy import Policy, Task

# The widest score tensor each task reads: one value per row for regression,
# one score or two class columns for binary.
_MAX_WIDTH: dict[Task, int] = {"regression": 1, "binary": 2}


def check_task_fits(plans: list[ModelPlan], labels: np.ndarray, policy: Policy) -> None:
    """Check that each model's score output is narrow enough for the task.

    The task is ``policy.task``, or regression when the labels are continuous
    numbers (as ``infer_task`` decides). Classification fits any output.

    Raises:
        InputError: a model's score tensor declares more columns than the
            task reads. The message names the task, the output and its shape.
    """
    task, reason = _declared_task(labels, policy)
    if task not in _MAX_WIDTH:
        return
    for plan in plans:
        output = _score_output(plan)
        if output is None or output.shape is None or len(output.shape) != 2:
            continue
        width = output.shape[1]
        if isinstance(width, int) and width > _MAX_WIDTH[task]:
            raise _task_mismatch(plan.role, task, reason, output)


def _declared_task(labels: np.ndarray, policy: Policy) -> tuple[Task | None, str]:
    if policy.task is not None:
        return policy.task, "set by policy.task"
    if looks_continuous(labels):
        return "regression", "inferred: the labels are continuous numbers"
    return None, ""


def _score_output(plan: ModelPlan) -> OutputInfo | None:
    if plan.choice is None or plan.choice.scores is None:
        return None
    return next(
        (item for item in plan.info.outputs if item.name == plan.choice.scores), None
    )


def _task_mismatch(
    role: str, task: Task, reason: str, output: OutputInfo
) -> InputError:
    shape = _shape_text(output.shape or [])
    if task == "regression":
        needs = "one value per row"
    else:
        needs = "one score or two class columns per row"
    return InputError(
        f"the {task} task ({reason}) needs {needs}, but the {role} model's "
        f"output {output.name!r} has shape {shape}; set policy.task to "
        "'classification' for a classifier, or name a narrower output in "
        "policy.output_name",
        field=role,
        value=shape,
    )


def _shape_text(shape: list[Dim]) -> str:
    return "[" + ", ".join("?" if dim is None else str(dim) for dim in shape) + "]"
