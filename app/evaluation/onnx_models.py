"""Parse ONNX files and describe a model's inputs, outputs and size.

Everything here reads the model with the ``onnx`` package only. Nothing runs the
graph: running happens in a child process (see ``model_probe``), so a model that
crashes onnxruntime cannot take the caller down with it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import onnx
from google.protobuf.message import DecodeError
from onnx import AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto
from onnx.external_data_helper import ExternalDataInfo, uses_external_data

from app.errors import InputError
from app.evaluation.onnx_flops import estimate_flops

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
    ``is_map_sequence`` marks a sequence of maps from class to probability.
    """

    name: str
    type_text: str
    element_type: str | None
    shape: list[Dim] | None
    is_map_sequence: bool = False


@dataclass(frozen=True)
class ModelInfo:
    """Description of an ONNX file's graph, read without running it.

    ``input_shape`` lists fixed sizes as ints, symbolic sizes by name (``"batch"``)
    and unnamed unknown sizes as ``None``. It is ``None`` when the model does not
    declare the input's rank. ``parameters`` counts initializer and Constant
    elements, see ``count_parameters``. ``size_bytes`` includes the external data
    files the model references. ``flops`` estimates the floating-point operations
    of one row, see ``onnx_flops``; it is ``None`` when not computed, with the
    reason in ``flops_note``.
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
    external_data_bytes: int = 0
    flops: int | None = None
    flops_note: str = "not computed"
    inputs: list[str] = field(default_factory=list)


def inspect_model(
    path: Path,
    *,
    field: str,
    input_name: str | None = None,
    allow_external_data: bool = False,
) -> ModelInfo:
    """Parse and validate an ONNX file and describe its input and outputs.

    ``input_name`` chooses the input the dataset feeds; without it the model
    must have one input without a default value. External data files are
    accepted only with ``allow_external_data``, and must then lie in the model's
    directory (an unpacked archive).

    Raises:
        InputError: the file is not an ONNX model, is newer than the installed
            ``onnx`` package reads, fails ``onnx.checker``, references external
            data that was not uploaded or lies outside its directory, or has no
            single tensor input to feed. ``field`` names the upload.
    """
    model = _load(path, field)
    check_versions(model, path, field, limits=installed_onnx_limits(), by="onnx")
    external = _external_data_bytes(model, path, field, allow_external_data)
    _check(path, field)
    input_proto = _select_input(model.graph, path, field, input_name)
    tensor_type = input_proto.type.tensor_type
    flops, flops_note = estimate_flops(model, input_proto.name)
    return ModelInfo(
        path=path,
        size_bytes=os.stat(path).st_size + external,
        parameters=count_parameters(model),
        input_name=input_proto.name,
        input_shape=_shape(input_proto.type),
        input_type=_element_type_name(tensor_type.elem_type),
        outputs=[_output_info(output) for output in model.graph.output],
        opset=_default_opset(model),
        ir_version=model.ir_version,
        external_data_bytes=external,
        flops=flops,
        flops_note=flops_note,
        inputs=[item.name for item in _feedable_inputs(model.graph)],
    )


@dataclass(frozen=True)
class VersionLimits:
    """The newest IR version and default-domain opset a reader supports."""

    ir_version: int
    opset: int
    reader: str


def installed_onnx_limits() -> VersionLimits:
    """Return what the installed ``onnx`` package reads."""
    return VersionLimits(
        onnx.IR_VERSION, onnx.defs.onnx_opset_version(), f"onnx {onnx.__version__}"
    )


def check_versions(
    model: ModelProto | ModelInfo,
    path: Path,
    field: str,
    *,
    limits: VersionLimits,
    by: str,
) -> None:
    """Reject a model whose IR version or opset is newer than ``limits``.

    Raises:
        InputError: the message names the model's and the reader's versions.
    """
    opset = model.opset if isinstance(model, ModelInfo) else _default_opset(model)
    ir_version = model.ir_version
    if ir_version <= limits.ir_version and opset <= limits.opset:
        return
    raise InputError(
        f"{field} file {path.name!r} has IR version {ir_version} and opset "
        f"{opset}, but {limits.reader} supports IR version up to "
        f"{limits.ir_version} and opset up to {limits.opset}; re-export the "
        f"model with opset_version={limits.opset} or lower, or upgrade {by} "
        "on the server",
        field=field,
        value={"ir_version": ir_version, "opset": opset},
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


def _external_data_bytes(
    model: ModelProto, path: Path, field: str, allowed: bool
) -> int:
    """Return the bytes of the external data files the model references.

    Raises:
        InputError: a reference is not allowed, escapes the model's directory,
            or names a file that does not exist.
    """
    locations: set[str] = set()
    for graph in _graphs(model.graph):
        for tensor in _graph_tensors(graph):
            if not uses_external_data(tensor):
                continue
            location = ExternalDataInfo(tensor).location
            if not allowed:
                raise InputError(
                    f"{field} file {path.name!r} keeps tensor {tensor.name!r} in the "
                    f"external data file {location!r}, which was not uploaded with "
                    "it; upload a .zip holding the model and its data files, or "
                    "save the model as one file with onnx.save(model, path, "
                    "save_as_external_data=False) (possible below 2 GB)",
                    field=field,
                    value=location,
                )
            locations.add(location)
    return sum(
        _data_file(path, location, field).stat().st_size for location in locations
    )


def _data_file(model_path: Path, location: str, field: str) -> Path:
    root = model_path.parent.resolve()
    target = (root / location).resolve()
    if Path(location).is_absolute() or not target.is_relative_to(root):
        raise InputError(
            f"{field} model references the external data file {location!r} outside "
            "its archive; save the data next to the model with a relative name",
            field=field,
            value=location,
        )
    if not target.is_file():
        raise InputError(
            f"{field} model references the external data file {location!r}, which "
            "the archive does not contain; add it to the .zip next to the model",
            field=field,
            value=location,
        )
    return target


def _check(path: Path, field: str) -> None:
    try:
        # The checker reads the file itself: it resolves external data files
        # relative to the model's directory, and a parsed model would first
        # be serialised again (0.1 s for 80 MB of weights).
        onnx.checker.check_model(str(path))
    except (onnx.checker.ValidationError, ValueError) as exc:
        reason = " ".join(str(exc).split()).rstrip(".").replace(str(path.parent), "")
        raise InputError(
            f"{field} file {path.name!r} is not a valid ONNX model: onnx.checker "
            f"reported: {reason}. Re-export the model with a current exporter",
            field=field,
            value=path.name,
        ) from None


def _feedable_inputs(graph: GraphProto) -> list[onnx.ValueInfoProto]:
    """Return the inputs without a default value.

    An input that shares its name with an initializer has that initializer as
    its default (IR version 4 and later); models with IR version below 4 list
    every initializer as an input this way.
    """
    defaults = {tensor.name for tensor in graph.initializer}
    return [item for item in graph.input if item.name not in defaults]


def _select_input(
    graph: GraphProto, path: Path, field: str, requested: str | None
) -> onnx.ValueInfoProto:
    inputs = _feedable_inputs(graph)
    names = [item.name for item in inputs]
    if requested is not None and requested not in {i.name for i in graph.input}:
        every = [item.name for item in graph.input]
        raise InputError(
            f"policy.input_name {requested!r} is not an input of the {field} model; "
            f"its inputs are {every}",
            field=field,
            value=requested,
        )
    if requested is None and len(inputs) != 1:
        raise InputError(
            f"{field} model has {len(inputs)} graph inputs {names} without a default "
            "value but DistilGate feeds one tensor of rows; export the model with "
            "a single input that takes the feature matrix, or give the other "
            "inputs default values and name the feature input in policy.input_name",
            field=field,
            value=names,
        )
    chosen = requested or names[0]
    others = [name for name in names if name != chosen]
    if others:
        raise InputError(
            f"{field} model inputs {others} have no default value, but DistilGate "
            f"feeds only {chosen!r} (policy.input_name); give the other inputs "
            "default values or export the model with a single input",
            field=field,
            value=others,
        )
    selected = next(item for item in graph.input if item.name == chosen)
    if selected.type.WhichOneof("value") != "tensor_type":
        raise InputError(
            f"{field} model input {chosen!r} has type {_type_text(selected.type)} "
            "but DistilGate feeds a tensor; export the model with a tensor input",
            field=field,
            value=_type_text(selected.type),
        )
    chosen_input: onnx.ValueInfoProto = selected
    return chosen_input


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
        is_map_sequence=_is_map_sequence(value.type),
    )


def _is_map_sequence(type_proto: onnx.TypeProto) -> bool:
    if type_proto.WhichOneof("value") != "sequence_type":
        return False
    element = type_proto.sequence_type.elem_type
    return bool(element.WhichOneof("value") == "map_type")


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
