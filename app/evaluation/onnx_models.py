"""Parse ONNX files and match a dataset to a model's declared input and outputs.

Everything here reads the model with the ``onnx`` package only. Nothing runs the
graph: running happens in a child process (see ``model_probe``), so a model that
crashes onnxruntime cannot take the caller down with it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto
from onnx.external_data_helper import uses_external_data

from app.errors import InputError

Dim = int | str | None
OutputKind = Literal["label", "score"]

_EXPORT_HINT = (
    "export the model with torch.onnx.export(...) or skl2onnx.to_onnx(...) "
    "and upload the resulting .onnx file"
)


@dataclass(frozen=True)
class OutputInfo:
    """One graph output: its name, ONNX type text and, for tensors, dtype and shape.

    ``element_type`` is a numpy dtype name (``"int64"``) or ``"string"``, and
    ``None`` for outputs that are not tensors, such as skl2onnx's ZipMap sequence.
    ``shape`` is ``None`` when the output is not a tensor or its rank is unknown.
    """

    name: str
    type_text: str
    element_type: str | None
    shape: list[Dim] | None


@dataclass(frozen=True)
class ModelInfo:
    """Description of an ONNX file's graph, read without running it.

    ``input_shape`` lists fixed sizes as ints, symbolic sizes by name (``"batch"``)
    and unnamed unknown sizes as ``None``. It is ``None`` when the model does not
    declare the input's rank. ``parameters`` counts initializer and Constant
    elements, see ``count_parameters``.
    """

    path: Path
    size_bytes: int
    parameters: int
    input_name: str
    input_shape: list[Dim] | None
    input_type: str
    outputs: list[OutputInfo]
    opset: int
    ir_version: int


@dataclass(frozen=True)
class PredictionOutput:
    """The output that yields a class per row, and how to read it.

    ``label`` outputs already hold the class. ``score`` outputs hold one score per
    class (the class is the argmax over axis 1) or a single binary score (the
    class is 1 when the score is at least 0.5).
    """

    name: str
    kind: OutputKind


def inspect_model(path: Path, *, field: str) -> ModelInfo:
    """Parse and validate an ONNX file and describe its input and outputs.

    Raises:
        InputError: the file is not an ONNX model, fails ``onnx.checker``, keeps
            weights in external data files, or does not have exactly one tensor
            input. ``field`` names the upload in the error.
    """
    model = _load(path, field)
    _check(model, path, field)
    input_proto = _single_input(model.graph, path, field)
    tensor_type = input_proto.type.tensor_type
    return ModelInfo(
        path=path,
        size_bytes=os.stat(path).st_size,
        parameters=count_parameters(model),
        input_name=input_proto.name,
        input_shape=_shape(input_proto.type),
        input_type=_element_type_name(tensor_type.elem_type),
        outputs=[_output_info(output) for output in model.graph.output],
        opset=_default_opset(model),
        ir_version=model.ir_version,
    )


def count_parameters(model: ModelProto) -> int:
    """Count the elements of every initializer and Constant tensor in the model.

    Operators of the ``ai.onnx.ml`` domain keep learned values in attributes
    instead, for example LinearClassifier's coefficients and a tree ensemble's
    thresholds and leaf weights, so their float and tensor attributes count too.
    Subgraphs of control-flow nodes (If, Loop, Scan) are included. Sparse tensors
    count their stored values. Function bodies in ``model.functions`` are not
    counted, because how often a function is instantiated is not fixed.
    """
    total = 0
    for graph in _graphs(model.graph):
        total += sum(math.prod(tensor.dims) for tensor in graph.initializer)
        total += sum(
            math.prod(sparse.values.dims) for sparse in graph.sparse_initializer
        )
        total += sum(_constant_elements(node) for node in graph.node)
        total += sum(_ml_attribute_elements(node) for node in graph.node)
    return total


def select_prediction_output(info: ModelInfo, *, field: str) -> PredictionOutput:
    """Choose the output that gives the predicted class.

    An integer or string tensor of shape [N] or [N, 1] is a label output and wins.
    Otherwise the first float tensor with two dimensions is read as class scores,
    then the first one-dimensional float tensor as a binary score. Outputs that
    are not tensors, such as skl2onnx's ZipMap probabilities, are never used.

    Raises:
        InputError: no output fits; the message lists every output with its type.
    """
    for output in info.outputs:
        if _is_label(output):
            return PredictionOutput(output.name, "label")
    for rank in (2, 1):
        for output in info.outputs:
            if _is_float(output) and _rank(output) == rank:
                return PredictionOutput(output.name, "score")
    listed = ", ".join(f"{o.name!r} {o.type_text}" for o in info.outputs)
    raise InputError(
        f"{field} model has no output that gives a class per row (outputs: "
        f"{listed}); expected an integer label tensor of shape [N] or a float "
        "score tensor of shape [N, classes] or [N]. Export the classifier with "
        "its label or logits as a graph output",
        field=field,
        value=listed,
    )


def _load(path: Path, field: str) -> ModelProto:
    try:
        model = onnx.load(str(path), format="protobuf", load_external_data=False)
    except DecodeError as exc:
        raise _not_onnx(path, field, f"protobuf parsing failed: {exc}") from None
    if not model.HasField("graph"):
        reason = "the file is empty" if _is_empty(path) else "it contains no graph"
        raise _not_onnx(path, field, reason)
    return model


def _not_onnx(path: Path, field: str, reason: str) -> InputError:
    return InputError(
        f"{field} file {path.name!r} is not an ONNX model ({reason}); {_EXPORT_HINT}",
        field=field,
        value=path.name,
    )


def _is_empty(path: Path) -> bool:
    return os.stat(path).st_size == 0


def _check(model: ModelProto, path: Path, field: str) -> None:
    # External data goes first: the checker would look for the named data files
    # relative to the working directory.
    for graph in _graphs(model.graph):
        for tensor in _graph_tensors(graph):
            if uses_external_data(tensor):
                raise InputError(
                    f"{field} file {path.name!r} keeps tensor {tensor.name!r} in an "
                    "external data file, which is not uploaded with it; save the "
                    "model as one file with onnx.save(model, path, "
                    "save_as_external_data=False) (possible below 2 GB)",
                    field=field,
                    value=path.name,
                )
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError) as exc:
        reason = " ".join(str(exc).split()).rstrip(".")
        raise InputError(
            f"{field} file {path.name!r} is not a valid ONNX model: onnx.checker "
            f"reported: {reason}. Re-export the model with a current exporter",
            field=field,
            value=path.name,
        ) from None


def _single_input(graph: GraphProto, path: Path, field: str) -> onnx.ValueInfoProto:
    # Models with IR version below 4 also list their initializers as inputs.
    weights = {tensor.name for tensor in graph.initializer}
    inputs = [item for item in graph.input if item.name not in weights]
    names = [item.name for item in inputs]
    if len(inputs) != 1:
        raise InputError(
            f"{field} model has {len(inputs)} graph inputs {names} but DistilGate "
            "feeds one tensor of rows; export the model with a single input that "
            "takes the feature matrix",
            field=field,
            value=names,
        )
    if inputs[0].type.WhichOneof("value") != "tensor_type":
        raise InputError(
            f"{field} model input {names[0]!r} has type {_type_text(inputs[0].type)} "
            "but DistilGate feeds a tensor; export the model with a tensor input",
            field=field,
            value=_type_text(inputs[0].type),
        )
    single: onnx.ValueInfoProto = inputs[0]
    return single


def _graphs(graph: GraphProto) -> Iterator[GraphProto]:
    yield graph
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == AttributeProto.GRAPH:
                yield from _graphs(attribute.g)
            elif attribute.type == AttributeProto.GRAPHS:
                for subgraph in attribute.graphs:
                    yield from _graphs(subgraph)


def _graph_tensors(graph: GraphProto) -> Iterator[TensorProto]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == AttributeProto.TENSOR:
                yield attribute.t


def _constant_elements(node: NodeProto) -> int:
    if node.op_type != "Constant" or node.domain not in ("", "ai.onnx"):
        return 0
    for attribute in node.attribute:
        if attribute.name == "value":
            return math.prod(attribute.t.dims)
        if attribute.name == "sparse_value":
            return math.prod(attribute.sparse_tensor.values.dims)
        if attribute.name in ("value_float", "value_int"):
            return 1
        if attribute.name == "value_floats":
            return len(attribute.floats)
        if attribute.name == "value_ints":
            return len(attribute.ints)
    return 0


def _ml_attribute_elements(node: NodeProto) -> int:
    if node.domain != "ai.onnx.ml":
        return 0
    total = 0
    for attribute in node.attribute:
        if attribute.type == AttributeProto.FLOATS:
            total += len(attribute.floats)
        elif attribute.type == AttributeProto.TENSOR:
            total += math.prod(attribute.t.dims)
    return total


def _default_opset(model: ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return 0


def _output_info(value: onnx.ValueInfoProto) -> OutputInfo:
    is_tensor = value.type.WhichOneof("value") == "tensor_type"
    element = value.type.tensor_type.elem_type if is_tensor else None
    return OutputInfo(
        name=value.name,
        type_text=_type_text(value.type),
        element_type=None if element is None else _element_type_name(element),
        shape=_shape(value.type) if is_tensor else None,
    )


def _shape(type_proto: onnx.TypeProto) -> list[Dim] | None:
    tensor_type = type_proto.tensor_type
    if not tensor_type.HasField("shape"):
        return None
    return [_dim(dim) for dim in tensor_type.shape.dim]


def _dim(dim: onnx.TensorShapeProto.Dimension) -> Dim:
    if dim.HasField("dim_value"):
        return int(dim.dim_value)
    if dim.HasField("dim_param"):
        return str(dim.dim_param)
    return None


def _element_type_name(elem_type: int) -> str:
    if elem_type == TensorProto.STRING:
        return "string"
    if elem_type == TensorProto.UNDEFINED:
        return "undefined"
    return str(onnx.helper.tensor_dtype_to_np_dtype(elem_type).name)


def _type_text(type_proto: onnx.TypeProto) -> str:
    """Render a type in ONNX notation with numpy element names: seq(map(int64,...))."""
    kind = type_proto.WhichOneof("value")
    if kind == "tensor_type":
        element = _element_type_name(type_proto.tensor_type.elem_type)
        shape = _shape(type_proto)
        return f"tensor({element})" + ("" if shape is None else f" shape {shape}")
    if kind == "sequence_type":
        return f"seq({_type_text(type_proto.sequence_type.elem_type)})"
    if kind == "map_type":
        key = _element_type_name(type_proto.map_type.key_type)
        return f"map({key},{_type_text(type_proto.map_type.value_type)})"
    if kind == "optional_type":
        return f"optional({_type_text(type_proto.optional_type.elem_type)})"
    return str(kind)


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


def prepare_features(features: np.ndarray, info: ModelInfo, *, role: str) -> np.ndarray:
    """Cast dataset rows to the model's input type and shape them to its input.

    Rows of a 2-D dataset are reshaped when the model declares fixed row
    dimensions with the same number of elements, for example 64 columns into
    [N, 1, 8, 8]. Casts to integer types accept only finite whole numbers in range,
    and casts to float types reject finite values that would become infinite.

    Raises:
        InputError: the features are not numeric, do not fit the declared shape,
            or a value does not fit the declared type. The error names the first
            such row and column.
    """
    cast = _cast_features(features, info, role)
    return _match_shape(cast, info, role)


def _match_shape(features: np.ndarray, info: ModelInfo, role: str) -> np.ndarray:
    shape = info.input_shape
    if shape is None:
        return features
    if len(shape) == 0:
        raise InputError(
            f"{role} input {info.input_name!r} is a scalar but DistilGate feeds a "
            "batch of rows; export the model with a batch dimension first",
            field=role,
            value=shape,
        )
    expected, actual = shape[1:], features.shape[1:]
    fixed = [dim for dim in expected if isinstance(dim, int)]
    if len(expected) == len(actual):
        if all(
            not isinstance(e, int) or e == a
            for e, a in zip(expected, actual, strict=True)
        ):
            return features
    elif len(fixed) == len(expected) and math.prod(fixed) == math.prod(actual):
        return features.reshape((len(features), *fixed))
    if len(expected) == len(actual) == 1:
        found = f"dataset rows have {actual[0]} features but the {role} expects "
        found += str(expected[0])
    else:
        found = f"dataset rows have shape {list(actual)} but the {role} expects "
        found += f"rows of shape {expected}"
    raise InputError(
        f"{found} (input {info.input_name!r} shape {shape}); pass the feature "
        f"columns the {role} was trained on, in the same order",
        field="dataset",
        value=list(actual),
    )


def _cast_features(features: np.ndarray, info: ModelInfo, role: str) -> np.ndarray:
    if features.dtype.kind not in "biuf":
        raise InputError(
            f"dataset features have dtype {features.dtype} but the models take "
            "numbers; encode or drop the non-numeric feature columns",
            field="dataset",
            value=str(features.dtype),
        )
    target = _numeric_dtype(info.input_type)
    if target is None:
        raise InputError(
            f"{role} input {info.input_name!r} has type {info.input_type} but "
            "DistilGate feeds numeric features; export the model with a float or "
            "integer input",
            field=role,
            value=info.input_type,
        )
    if target.kind == "f":
        return _cast_to_float(features, target, role)
    return _cast_to_integer(features, target, role)


def _numeric_dtype(name: str) -> np.dtype[Any] | None:
    if name in ("string", "undefined"):
        return None
    try:
        dtype = np.dtype(name)
    except TypeError:
        return None
    return dtype if dtype.kind in "biuf" else None


def _cast_to_float(
    features: np.ndarray, target: np.dtype[Any], role: str
) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        cast = features.astype(target)
    overflow = np.isfinite(features) & ~np.isfinite(cast)
    if overflow.any():
        raise _value_error(
            features,
            overflow,
            f"is too large for the {role}'s input type {target}",
            "scale the feature or export the model with a float64 input",
        )
    return cast


def _cast_to_integer(
    features: np.ndarray, target: np.dtype[Any], role: str
) -> np.ndarray:
    if features.dtype.kind == "f":
        _reject(features, ~np.isfinite(features), target, role, "is not finite")
        whole = np.floor(features) == features
        _reject(features, ~whole, target, role, "is not a whole number")
    if target.kind == "b":
        outside = (features != 0) & (features != 1)
        _reject(features, outside, target, role, "is neither 0 nor 1")
        return features.astype(target)
    limits = np.iinfo(target)
    if features.dtype.kind == "f":
        # float(max + 1) is exact (a power of two), unlike float(max).
        outside = (features < float(limits.min)) | (features >= float(limits.max + 1))
    else:
        outside = (features < limits.min) | (features > limits.max)
    _reject(features, outside, target, role, f"is outside {limits.min}..{limits.max}")
    return features.astype(target)


def _reject(
    features: np.ndarray,
    bad: np.ndarray,
    target: np.dtype[Any],
    role: str,
    problem: str,
) -> None:
    if bad.any():
        raise _value_error(
            features,
            bad,
            f"{problem}, but the {role}'s input type is {target}",
            "fill or fix these values, or export the model with a float input",
        )


def _value_error(
    features: np.ndarray, bad: np.ndarray, problem: str, fix: str
) -> InputError:
    index = np.unravel_index(int(np.argmax(bad)), bad.shape)
    row = int(index[0])
    rest = [int(i) for i in index[1:]]
    where = f"row {row}, column {rest[0]}" if len(rest) == 1 else f"row {row} {rest}"
    value = features[index].item()
    count = int(np.count_nonzero(bad))
    return InputError(
        f"dataset value {value!r} at {where} (0-based) {problem} ({count} values "
        f"affected); {fix}",
        field="dataset",
        value=value,
    )
