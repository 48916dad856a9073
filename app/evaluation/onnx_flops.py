"""Estimate the floating-point operations of one row through an ONNX graph.

Only MatMul, Gemm and Conv nodes count, because they dominate the work of the
dense and convolutional networks that distillation targets. A multiply-add is
two operations. Shapes come from ``onnx.shape_inference`` with the batch
dimension set to 1. Element-wise operators, normalisation and attention
softmax are left out, so the figure is a lower bound.
"""

from __future__ import annotations

import math

import onnx
from onnx import ModelProto, helper, shape_inference

_COUNTED = ("MatMul", "Gemm", "Conv")
# Initializers up to this many elements keep their values for shape inference.
_SHAPE_ONLY_ELEMENTS = 1024

Shape = list[int]


def estimate_flops(model: ModelProto, input_name: str) -> tuple[int | None, str]:
    """Return the estimated operations per row and a note on how it was counted.

    The count is ``None`` when the graph has no counted node or a counted
    node's shapes cannot be inferred; the note then says why.
    """
    nodes = [
        node
        for node in model.graph.node
        if node.op_type in _COUNTED and node.domain in ("", "ai.onnx")
    ]
    if not nodes:
        return None, "not computed: the graph has no MatMul, Gemm or Conv node"
    shapes = _inferred_shapes(model, input_name)
    if shapes is None:
        return None, "not computed: onnx shape inference failed"
    total = 0
    for node in nodes:
        count = _node_flops(node, shapes)
        if count is None:
            return None, (
                f"not computed: the shapes of {node.op_type} node "
                f"{node.name or node.output[0]!r} are unknown"
            )
        total += count
    return total, "MatMul, Gemm and Conv nodes only, batch of 1 row"


def _inferred_shapes(model: ModelProto, input_name: str) -> dict[str, Shape] | None:
    copy = _without_weights(model)
    for value in copy.graph.input:
        dims = value.type.tensor_type.shape.dim
        if value.name == input_name and len(dims) > 0:
            dims[0].Clear()
            dims[0].dim_value = 1
    try:
        inferred = shape_inference.infer_shapes(copy, strict_mode=False)
    except (onnx.shape_inference.InferenceError, ValueError):
        return None
    shapes: dict[str, Shape] = {}
    values = [
        *inferred.graph.input,
        *inferred.graph.value_info,
        *inferred.graph.output,
    ]
    for value in values:
        shape = _static_shape(value)
        if shape is not None:
            shapes[value.name] = shape
    for tensor in inferred.graph.initializer:
        shapes[tensor.name] = list(tensor.dims)
    return shapes


def _without_weights(model: ModelProto) -> ModelProto:
    """Copy the model's graph for shape inference, leaving out large weights.

    Shape inference needs the values of small initializers, such as a
    Reshape's target shape, but only the type and shape of the others. Each
    initializer of more than ``_SHAPE_ONLY_ELEMENTS`` elements becomes a graph
    input of its type and shape, so that its data is neither copied nor
    serialised: for a 21M-parameter model those two copies took longer than
    the inference. Subgraphs and Constant nodes are copied whole.
    """
    source = model.graph
    copy = ModelProto(ir_version=model.ir_version)
    copy.opset_import.extend(model.opset_import)
    copy.functions.extend(model.functions)
    graph = copy.graph
    graph.node.extend(source.node)
    graph.output.extend(source.output)
    graph.value_info.extend(source.value_info)
    graph.sparse_initializer.extend(source.sparse_initializer)
    shape_only: dict[str, onnx.ValueInfoProto] = {}
    for tensor in source.initializer:
        if math.prod(tensor.dims) > _SHAPE_ONLY_ELEMENTS:
            shape_only[tensor.name] = helper.make_tensor_value_info(
                tensor.name, tensor.data_type, list(tensor.dims)
            )
        else:
            graph.initializer.append(tensor)
    # Models before IR version 4 list every initializer as an input as well.
    graph.input.extend(shape_only.pop(item.name, item) for item in source.input)
    graph.input.extend(shape_only.values())
    return copy


def _static_shape(value: onnx.ValueInfoProto) -> Shape | None:
    tensor_type = value.type.tensor_type
    if not tensor_type.HasField("shape"):
        return None
    dims = tensor_type.shape.dim
    if not all(dim.HasField("dim_value") for dim in dims):
        return None
    return [int(dim.dim_value) for dim in dims]


def _node_flops(node: onnx.NodeProto, shapes: dict[str, Shape]) -> int | None:
    output = shapes.get(node.output[0])
    first = shapes.get(node.input[0])
    if output is None or first is None or not first:
        return None
    if node.op_type == "MatMul":
        return 2 * math.prod(output) * first[-1]
    if node.op_type == "Gemm":
        trans_a = _int_attribute(node, "transA")
        inner = first[0] if trans_a else first[-1]
        bias = math.prod(output) if len(node.input) > 2 and node.input[2] else 0
        return 2 * math.prod(output) * inner + bias
    weight = shapes.get(node.input[1])
    if weight is None or len(weight) < 3:
        return None
    # Conv weights are [out_channels, in_channels / group, kernel...], so one
    # output element needs prod(weight[1:]) multiply-adds.
    return 2 * math.prod(output) * math.prod(weight[1:])


def _int_attribute(node: onnx.NodeProto, name: str) -> int:
    for attribute in node.attribute:
        if attribute.name == name:
            return int(attribute.i)
    return 0
