"""Choose the outputs of an ONNX model that give labels and class scores."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from app.errors import InputError
from app.evaluation.onnx_models import ModelInfo, OutputInfo, OutputKind

ScoreKind = Literal["tensor", "map"]


@dataclass(frozen=True)
class PredictionOutput:
    """The output that yields a class per row, and how to read it.

    ``label`` outputs already hold the class. ``score`` outputs hold one score per
    class (the class is the argmax over axis 1) or a single binary score (the
    class is 1 when the score is at least 0.5).
    """

    name: str
    kind: OutputKind


@dataclass(frozen=True)
class OutputChoice:
    """The outputs a model run fetches.

    ``label`` is a label tensor and ``scores`` a float tensor or a sequence of
    maps from class to probability (``score_kind`` says which); either may be
    ``None``. ``prediction`` is the one that gives the predicted class.
    """

    prediction: PredictionOutput
    label: str | None
    scores: str | None
    score_kind: ScoreKind


def select_prediction_output(info: ModelInfo, *, field: str) -> PredictionOutput:
    """Choose the output that gives the predicted class.

    An integer or string tensor of shape [N] or [N, 1] is a label output and wins.
    Otherwise the first float tensor with two dimensions is read as class scores,
    then the first one-dimensional float tensor as a binary score. Outputs that
    are not tensors, such as skl2onnx's ZipMap probabilities, are never used.

    Raises:
        InputError: no output fits; the message lists every output with its type.
    """
    label = _first_label(info)
    if label is not None:
        return PredictionOutput(label.name, "label")
    tensor = _first_score_tensor(info)
    if tensor is not None:
        return PredictionOutput(tensor.name, "score")
    raise _no_output(info, field)


def select_outputs(
    info: ModelInfo, *, field: str, requested: str | None = None
) -> OutputChoice:
    """Choose the label and score outputs, and the one that predicts.

    Without ``requested`` a label tensor predicts when there is one (see
    ``select_prediction_output``). Scores come from the first float tensor of
    rank 2, else rank 1, else a sequence of maps (skl2onnx's ZipMap).
    ``requested`` (``policy.output_name``) names the output that predicts.

    Raises:
        InputError: ``requested`` is not an output or cannot give predictions,
            or no output fits.
    """
    scores = _first_score_tensor(info) or _first_map_sequence(info)
    if requested is None:
        label = _first_label(info)
        if label is not None:
            return _choice(PredictionOutput(label.name, "label"), label.name, scores)
        if scores is not None:
            return _choice(PredictionOutput(scores.name, "score"), None, scores)
        raise _no_output(info, field)
    output = next((item for item in info.outputs if item.name == requested), None)
    if output is None:
        raise InputError(
            f"policy.output_name {requested!r} is not an output of the {field} "
            f"model; its outputs are {_listed(info)}",
            field=field,
            value=requested,
        )
    if _is_label(output):
        return _choice(PredictionOutput(output.name, "label"), output.name, scores)
    if _is_float(output) or output.is_map_sequence:
        return _choice(PredictionOutput(output.name, "score"), None, output)
    raise InputError(
        f"{field} output {requested!r} has type {output.type_text}, which gives "
        "no class or score per row; name a label tensor, a float score tensor "
        "or a sequence of maps in policy.output_name",
        field=field,
        value=requested,
    )


def _no_output(info: ModelInfo, field: str) -> InputError:
    listed = _listed(info)
    return InputError(
        f"{field} model has no output that gives a class per row (outputs: "
        f"{listed}); expected an integer label tensor of shape [N] or a float "
        "score tensor of shape [N, classes] or [N]. Export the classifier with "
        "its label or logits as a graph output",
        field=field,
        value=listed,
    )


def _choice(
    prediction: PredictionOutput, label: str | None, scores: OutputInfo | None
) -> OutputChoice:
    kind: ScoreKind = (
        "map" if scores is not None and scores.is_map_sequence else "tensor"
    )
    return OutputChoice(
        prediction, label, None if scores is None else scores.name, kind
    )


def _first_label(info: ModelInfo) -> OutputInfo | None:
    return next((item for item in info.outputs if _is_label(item)), None)


def _first_score_tensor(info: ModelInfo) -> OutputInfo | None:
    for rank in (2, 1):
        for output in info.outputs:
            if _is_float(output) and _rank(output) == rank:
                return output
    return None


def _first_map_sequence(info: ModelInfo) -> OutputInfo | None:
    return next((item for item in info.outputs if item.is_map_sequence), None)


def _listed(info: ModelInfo) -> str:
    return ", ".join(f"{o.name!r} {o.type_text}" for o in info.outputs)


def _is_label(output: OutputInfo) -> bool:
    element = output.element_type
    if element is None or output.shape is None:
        return False
    class_typed = element == "string" or element.startswith(("int", "uint"))
    rank_fits = len(output.shape) == 1 or (
        len(output.shape) == 2 and output.shape[1] == 1
    )
    return class_typed and rank_fits


def _rank(output: OutputInfo) -> int | None:
    return None if output.shape is None else len(output.shape)


def _is_float(output: OutputInfo) -> bool:
    return output.element_type in ("float16", "float32", "float64", "bfloat16")
