"""Tests of ONNX parsing, parameter counting, output choice and feature casting."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from app.errors import InputError
from app.evaluation.model_inputs import prepare_features
from app.evaluation.onnx_models import ModelInfo, count_parameters, inspect_model
from app.evaluation.onnx_outputs import select_prediction_output
from tests.evaluation.onnx_fixtures import (
    Digits,
    export_logistic_regression,
    export_torch,
    linear_model,
    load_digits_split,
    parameter_count,
    save_graph,
    train_mlp,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def digits() -> Digits:
    return load_digits_split()


@pytest.fixture(scope="module")
def mlp(
    digits: Digits, tmp_path_factory: pytest.TempPathFactory
) -> tuple[torch.nn.Sequential, Path]:
    model = train_mlp(digits, [32], epochs=5)
    path = export_torch(model, tmp_path_factory.mktemp("mlp") / "student.onnx")
    return model, path


@pytest.fixture(scope="module")
def logistic(digits: Digits, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_logistic_regression(
        digits, tmp_path_factory.mktemp("logistic") / "logistic.onnx"
    )


def _info(path: Path) -> ModelInfo:
    return inspect_model(path, field="teacher")


def _float_output(name: str, shape: list[int | str]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


# inspect_model on exported models


def test_inspect_model_torch_mlp(mlp: tuple[torch.nn.Sequential, Path]) -> None:
    _, path = mlp
    info = _info(path)
    assert info.input_name == "input"
    assert info.input_shape == ["batch", 64]
    assert info.input_type == "float32"
    assert [output.name for output in info.outputs] == ["logits"]
    assert info.outputs[0].element_type == "float32"
    assert info.outputs[0].shape == ["batch", 10]
    assert info.opset == onnx.load(str(path)).opset_import[0].version
    assert info.ir_version == onnx.load(str(path)).ir_version


def test_inspect_model_size_is_file_size(mlp: tuple[torch.nn.Sequential, Path]) -> None:
    _, path = mlp
    assert _info(path).size_bytes == os.path.getsize(path)


def test_inspect_model_parameters_match_torch(
    mlp: tuple[torch.nn.Sequential, Path],
) -> None:
    model, path = mlp
    assert _info(path).parameters == parameter_count(model)


def test_inspect_model_skl2onnx_outputs(logistic: Path) -> None:
    info = _info(logistic)
    label, probabilities = info.outputs
    assert label.element_type == "int64"
    assert label.shape == [None]
    assert probabilities.element_type is None
    assert probabilities.type_text == "seq(map(int64,tensor(float32)))"


def test_count_parameters_skl2onnx_counts_coefficients(logistic: Path) -> None:
    # 64 features x 10 classes of coefficients plus 10 intercepts.
    assert count_parameters(onnx.load(str(logistic))) == 64 * 10 + 10


def test_count_parameters_constants_and_subgraphs(tmp_path: Path) -> None:
    branch_outputs = [_float_output("branch", [2])]
    then_graph = helper.make_graph(
        [helper.make_node("Constant", [], ["branch"], value_floats=[1.0, 2.0])],
        "then", [], branch_outputs,
    )  # fmt: skip
    constant = helper.make_tensor("c", TensorProto.FLOAT, [3, 2], [0.0] * 6)
    else_graph = helper.make_graph(
        [helper.make_node("Constant", [], ["branch"], value=constant)],
        "else", [], branch_outputs,
    )  # fmt: skip
    nodes = [
        helper.make_node("Constant", [], ["flag"], value_int=1),
        helper.make_node("Cast", ["flag"], ["condition"], to=TensorProto.BOOL),
        helper.make_node(
            "If", ["condition"], ["branch"], then_branch=then_graph,
            else_branch=else_graph,
        ),
        helper.make_node("Add", ["x", "w0"], ["y"]),
    ]  # fmt: skip
    inputs = [_float_output("x", [4])]
    path = save_graph(
        tmp_path / "if.onnx", nodes, inputs, [_float_output("y", [4])],
        [np.ones(4, dtype=np.float32)],
    )  # fmt: skip
    # Initializer 4, value_int 1, then-branch 2, else-branch 3 x 2.
    assert count_parameters(onnx.load(str(path))) == 4 + 1 + 2 + 6


# inspect_model on files that are not usable ONNX models


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "the file is empty"),
        (b"sepal_length,label\n5.1,setosa\n4.9,setosa\n", "protobuf parsing failed"),
        (np.random.default_rng(0).bytes(4096), "protobuf parsing failed"),
    ],
    ids=["empty", "csv", "random-bytes"],
)
def test_inspect_model_not_onnx_rejected(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "upload.onnx"
    path.write_bytes(content)
    with pytest.raises(InputError) as caught:
        inspect_model(path, field="student")
    message = caught.value.message
    assert caught.value.field == "student"
    assert message.startswith("student file 'upload.onnx' is not an ONNX model (")
    assert reason in message
    assert "torch.onnx.export(...) or skl2onnx.to_onnx(...)" in message


def test_inspect_model_checker_failure_rejected(tmp_path: Path) -> None:
    # The Relu reads "missing", which no node, input or initializer produces.
    path = save_graph(
        tmp_path / "broken.onnx",
        [helper.make_node("Relu", ["missing"], ["y"])],
        [_float_output("x", ["N", 4])],
        [_float_output("y", ["N", 4])],
    )
    with pytest.raises(InputError) as caught:
        inspect_model(path, field="teacher")
    message = caught.value.message
    assert message.startswith(
        "teacher file 'broken.onnx' is not a valid ONNX model: onnx.checker reported:"
    )
    assert "missing" in message
    assert caught.value.field == "teacher"


def test_inspect_model_two_inputs_rejected(tmp_path: Path) -> None:
    path = save_graph(
        tmp_path / "two.onnx",
        [helper.make_node("Add", ["a", "b"], ["y"])],
        [_float_output("a", ["N", 4]), _float_output("b", ["N", 4])],
        [_float_output("y", ["N", 4])],
    )
    with pytest.raises(InputError) as caught:
        inspect_model(path, field="student")
    assert caught.value.message.startswith(
        "student model has 2 graph inputs ['a', 'b'] without a default value but "
        "DistilGate feeds one tensor of rows"
    )
    assert caught.value.value == ["a", "b"]


def test_inspect_model_external_data_rejected(tmp_path: Path) -> None:
    path = linear_model(tmp_path / "linear.onnx", input_type=TensorProto.FLOAT)
    model = onnx.load(str(path))
    onnx.save(
        model,
        str(path),
        save_as_external_data=True,
        location="linear.onnx.data",
        size_threshold=0,
    )
    with pytest.raises(InputError) as caught:
        inspect_model(path, field="teacher")
    assert caught.value.message.startswith(
        "teacher file 'linear.onnx' keeps tensor 'w0' in the external data file "
        "'linear.onnx.data', which was not uploaded with it; upload a .zip"
    )
    assert caught.value.value == "linear.onnx.data"
    assert "save_as_external_data=False" in caught.value.message


# select_prediction_output


def test_select_prediction_output_prefers_label(logistic: Path) -> None:
    chosen = select_prediction_output(_info(logistic), field="student")
    assert (chosen.name, chosen.kind) == ("output_label", "label")


def test_select_prediction_output_logits_are_scores(
    mlp: tuple[torch.nn.Sequential, Path],
) -> None:
    chosen = select_prediction_output(_info(mlp[1]), field="student")
    assert (chosen.name, chosen.kind) == ("logits", "score")


def test_select_prediction_output_binary_score(tmp_path: Path) -> None:
    path = save_graph(
        tmp_path / "binary.onnx",
        [helper.make_node("ReduceMax", ["x"], ["score"], axes=[1], keepdims=0)],
        [_float_output("x", ["N", 4])],
        [_float_output("score", ["N"])],
    )
    chosen = select_prediction_output(_info(path), field="teacher")
    assert (chosen.name, chosen.kind) == ("score", "score")


def test_select_prediction_output_none_usable(tmp_path: Path) -> None:
    path = save_graph(
        tmp_path / "image.onnx",
        [helper.make_node("Identity", ["x"], ["y"])],
        [_float_output("x", ["N", 2, 2])],
        [_float_output("y", ["N", 2, 2])],
    )
    with pytest.raises(InputError) as caught:
        select_prediction_output(_info(path), field="teacher")
    assert caught.value.message.startswith(
        "teacher model has no output that gives a class per row (outputs: 'y' "
        "tensor(float32) shape ['N', 2, 2]); expected an integer label tensor"
    )
    assert caught.value.field == "teacher"


# prepare_features


def test_prepare_features_width_mismatch(mlp: tuple[torch.nn.Sequential, Path]) -> None:
    with pytest.raises(InputError) as caught:
        prepare_features(np.zeros((5, 30)), _info(mlp[1]), role="teacher")
    assert caught.value.message.startswith(
        "dataset rows have 30 features but the teacher expects 64 "
        "(input 'input' shape ['batch', 64]); pass the feature columns"
    )
    assert caught.value.field == "dataset"
    assert caught.value.value == [30]


def test_prepare_features_int64_cast_to_float32(
    mlp: tuple[torch.nn.Sequential, Path],
) -> None:
    rows = np.arange(128, dtype=np.int64).reshape(2, 64)
    prepared = prepare_features(rows, _info(mlp[1]), role="student")
    assert prepared.dtype == np.float32
    assert np.array_equal(prepared, rows.astype(np.float32))


def test_prepare_features_reshapes_to_image(tmp_path: Path) -> None:
    path = save_graph(
        tmp_path / "image.onnx",
        [helper.make_node("Flatten", ["x"], ["scores"])],
        [_float_output("x", ["N", 1, 2, 2])],
        [_float_output("scores", ["N", 4])],
    )
    prepared = prepare_features(np.zeros((3, 4)), _info(path), role="teacher")
    assert prepared.shape == (3, 1, 2, 2)


def test_prepare_features_float_overflow_rejected(
    mlp: tuple[torch.nn.Sequential, Path],
) -> None:
    rows = np.zeros((3, 64))
    rows[2, 7] = 1e300
    with pytest.raises(InputError) as caught:
        prepare_features(rows, _info(mlp[1]), role="student")
    assert caught.value.message == (
        "dataset value 1e+300 at row 2, column 7 (0-based) is too large for the "
        "student's input type float32 (1 values affected); scale the feature or "
        "export the model with a float64 input"
    )


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (np.nan, "nan at row 1, column 2 (0-based) is not finite"),
        (0.5, "0.5 at row 1, column 2 (0-based) is not a whole number"),
        (
            2.0**31,
            "2147483648.0 at row 1, column 2 (0-based) is outside "
            "-2147483648..2147483647",
        ),
        (-(2.0**31) - 1, "-2147483649.0 at row 1, column 2 (0-based) is outside"),
    ],
    ids=["nan", "fraction", "above-max", "below-min"],
)
def test_prepare_features_int32_cast_rejected(
    tmp_path: Path, value: float, problem: str
) -> None:
    info = _info(linear_model(tmp_path / "int.onnx", input_type=TensorProto.INT32))
    rows = np.zeros((2, 4))
    rows[1, 2] = value
    with pytest.raises(InputError) as caught:
        prepare_features(rows, info, role="teacher")
    message = caught.value.message
    assert message.startswith(f"dataset value {problem}")
    assert "but the teacher's input type is int32 (1 values affected)" in message
    assert caught.value.field == "dataset"


def test_prepare_features_int32_cast_accepts_bounds(tmp_path: Path) -> None:
    info = _info(linear_model(tmp_path / "int.onnx", input_type=TensorProto.INT32))
    rows = np.array([[-(2.0**31), 2.0**31 - 1, 0.0, 3.0]])
    prepared = prepare_features(rows, info, role="teacher")
    assert prepared.dtype == np.int32
    assert prepared.tolist() == [[-(2**31), 2**31 - 1, 0, 3]]


def test_prepare_features_int64_to_int32_overflow(tmp_path: Path) -> None:
    info = _info(linear_model(tmp_path / "int.onnx", input_type=TensorProto.INT32))
    rows = np.zeros((1, 4), dtype=np.int64)
    rows[0, 3] = 2**40
    with pytest.raises(InputError) as caught:
        prepare_features(rows, info, role="student")
    assert caught.value.message == (
        "dataset value 1099511627776 at row 0, column 3 (0-based) is outside "
        "-2147483648..2147483647, but the student's input type is int32 (1 values "
        "affected); fill or fix these values, or export the model with a float input"
    )
    assert caught.value.value == 2**40


def test_prepare_features_text_rejected(mlp: tuple[torch.nn.Sequential, Path]) -> None:
    rows = np.array([["a"] * 64], dtype=object)
    with pytest.raises(InputError) as caught:
        prepare_features(rows, _info(mlp[1]), role="teacher")
    assert caught.value.message == (
        "dataset features have dtype object but the models take numbers; encode "
        "or drop the non-numeric feature columns"
    )


def test_prepare_features_string_input_rejected(tmp_path: Path) -> None:
    path = linear_model(tmp_path / "text.onnx", input_type=TensorProto.STRING)
    with pytest.raises(InputError) as caught:
        prepare_features(np.zeros((1, 4)), _info(path), role="student")
    assert caught.value.message.startswith(
        "student input 'x' has type string but DistilGate feeds numeric features"
    )
    assert caught.value.field == "student"
