"""Tests of the model forms the gate accepts, on real exported models."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from app.errors import EvaluationError, InputError, PayloadTooLargeError
from app.evaluation.model_forms import ArchiveLimits, open_model
from app.evaluation.model_gate import evaluate_model
from app.evaluation.model_probe import ProbeSettings
from app.evaluation.onnx_models import inspect_model
from app.policy import Policy
from app.results import Evaluation
from tests.evaluation.onnx_fixtures import (
    Digits,
    export_logistic_regression,
    export_torch,
    load_digits_split,
    save_graph,
    train_mlp,
)

pytestmark = pytest.mark.slow

FAST = ProbeSettings(
    warmup_runs=1,
    min_latency_runs=3,
    max_latency_runs=10,
    latency_budget_s=0.02,
    throughput_budget_s=0.01,
)


@pytest.fixture(scope="module")
def digits() -> Digits:
    return load_digits_split()


@pytest.fixture(scope="module")
def mlp(digits: Digits) -> torch.nn.Sequential:
    return train_mlp(digits, [32], epochs=40)


@pytest.fixture(scope="module")
def onnx_student(
    mlp: torch.nn.Sequential, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    return export_torch(mlp, tmp_path_factory.mktemp("student") / "student.onnx")


def gate(teacher: Path, student: Path, digits: Digits, **kwargs: object) -> Evaluation:
    policy = kwargs.pop("policy", Policy())
    return evaluate_model(
        teacher, student, digits.X_test, digits.y_test,
        policy=policy, settings=FAST, **kwargs,  # type: ignore[arg-type]
    )  # fmt: skip


def external_zip(source: Path, root: Path) -> Path:
    """Save ``source`` with its weights in model.data and zip both files."""
    folder = root / "unzipped"
    folder.mkdir()
    model = onnx.load(str(source))
    onnx.save(
        model, str(folder / "model.onnx"), save_as_external_data=True,
        location="model.data", size_threshold=0,
    )  # fmt: skip
    archive = root / "model.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.write(folder / "model.onnx", "model.onnx")
        handle.write(folder / "model.data", "model.data")
    return archive


# ONNX with external data in a zip


def test_evaluate_model_zip_with_external_data(
    onnx_student: Path, digits: Digits, tmp_path: Path
) -> None:
    archive = external_zip(onnx_student, tmp_path)
    result = gate(archive, onnx_student, digits)
    teacher = result.details["teacher"]
    assert teacher["packaging"] == "zip"
    assert (
        teacher["external_data_bytes"]
        == (tmp_path / "unzipped/model.data").stat().st_size
    )
    expected = sum(
        (tmp_path / "unzipped" / name).stat().st_size
        for name in ("model.onnx", "model.data")
    )
    assert result.metrics["teacher_size_bytes"] == expected
    assert result.metrics["teacher_accuracy"] == result.metrics["student_accuracy"]
    assert result.metrics["agreement"] == 1.0


@pytest.mark.parametrize(
    ("member", "problem"),
    [
        ("../evil.onnx", "contains '..'"),
        ("/etc/evil.onnx", "is an absolute path"),
        ("C:/evil.onnx", "is an absolute path"),
        ("dir\\evil.onnx", "contains a backslash or a NUL character"),
    ],
    ids=["dot-dot", "absolute", "drive", "backslash"],
)
def test_open_model_unsafe_member_rejected(
    tmp_path: Path, member: str, problem: str
) -> None:
    archive = tmp_path / "model.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr(member, b"x")
    with pytest.raises(InputError) as caught:
        open_model(archive, field="teacher", workdir=tmp_path)
    assert caught.value.message == (
        f"teacher archive member {member!r} {problem}; the archive must contain "
        "plain files at relative paths inside it"
    )
    assert not (tmp_path / "teacher_archive").exists()


def test_open_model_symlink_member_rejected(tmp_path: Path) -> None:
    archive = tmp_path / "model.zip"
    link = zipfile.ZipInfo("model.data")
    link.external_attr = 0o120777 << 16
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr(link, "/etc/passwd")
    with pytest.raises(InputError) as caught:
        open_model(archive, field="student", workdir=tmp_path)
    assert caught.value.message.startswith(
        "student archive member 'model.data' is a symbolic link;"
    )


def test_open_model_member_count_capped(tmp_path: Path) -> None:
    archive = tmp_path / "model.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for index in range(5):
            handle.writestr(f"part{index}.data", b"x")
    with pytest.raises(PayloadTooLargeError) as caught:
        open_model(
            archive, field="teacher", workdir=tmp_path,
            limits=ArchiveLimits(max_members=4),
        )  # fmt: skip
    assert caught.value.message.startswith(
        "teacher archive has 5 members, more than the 4 accepted;"
    )


def test_open_model_uncompressed_size_capped(tmp_path: Path) -> None:
    archive = tmp_path / "model.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as handle:
        handle.writestr("model.data", b"\0" * 100_000)
    with pytest.raises(PayloadTooLargeError) as caught:
        open_model(
            archive, field="teacher", workdir=tmp_path,
            limits=ArchiveLimits(max_total_bytes=50_000),
        )  # fmt: skip
    assert caught.value.message == (
        "teacher archive unpacks to 100,000 bytes, more than the 50,000 accepted; "
        "upload a smaller model"
    )
    assert not (tmp_path / "teacher_archive").exists()


def test_open_model_zip_without_onnx(tmp_path: Path) -> None:
    archive = tmp_path / "model.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("readme.txt", b"x")
    with pytest.raises(InputError) as caught:
        open_model(archive, field="teacher", workdir=tmp_path)
    assert caught.value.message == (
        "teacher archive contains 0 .onnx files []; expected exactly one model "
        "next to its external data files"
    )


def test_inspect_model_external_data_missing_from_zip(
    onnx_student: Path, tmp_path: Path
) -> None:
    archive = external_zip(onnx_student, tmp_path)
    stripped = tmp_path / "stripped.zip"
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(stripped, "w") as sink:
        sink.writestr("model.onnx", source.read("model.onnx"))
    form = open_model(stripped, field="teacher", workdir=tmp_path)
    with pytest.raises(InputError) as caught:
        inspect_model(form.path, field="teacher", allow_external_data=True)
    assert caught.value.message == (
        "teacher model references the external data file 'model.data', which the "
        "archive does not contain; add it to the .zip next to the model"
    )


# TorchScript and torch pickles


@pytest.fixture(scope="module")
def torchscript(
    mlp: torch.nn.Sequential, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    path = tmp_path_factory.mktemp("ts") / "student.pt"
    torch.jit.script(mlp).save(str(path))
    return path


def test_evaluate_model_torchscript_enabled(
    torchscript: Path, onnx_student: Path, mlp: torch.nn.Sequential, digits: Digits
) -> None:
    result = gate(onnx_student, torchscript, digits, allow_torchscript=True)
    student = result.details["student"]
    assert student["format"] == "torchscript"
    assert result.metrics["student_parameters"] == sum(
        p.numel() for p in mlp.parameters()
    )
    assert result.metrics["student_accuracy"] == result.metrics["teacher_accuracy"]
    assert result.metrics["agreement"] == 1.0
    assert result.details["environment"]["versions"]["torch"] == torch.__version__


def test_evaluate_model_torchscript_disabled(
    torchscript: Path, onnx_student: Path, digits: Digits
) -> None:
    with pytest.raises(InputError) as caught:
        gate(onnx_student, torchscript, digits)
    assert caught.value.message.startswith(
        "student file 'student.pt' is a TorchScript archive, but this server does "
        "not run TorchScript"
    )
    assert caught.value.field == "student"


@pytest.mark.parametrize(
    ("saved", "kind"),
    [
        ("state_dict", "a state dict (weights without the model's code)"),
        ("module", "a whole pickled module"),
        ("legacy_module", "a whole pickled module"),
    ],
)
def test_open_model_torch_pickle_rejected(
    mlp: torch.nn.Sequential, tmp_path: Path, saved: str, kind: str
) -> None:
    path = tmp_path / "model.pt"
    if saved == "state_dict":
        torch.save(mlp.state_dict(), str(path))
    else:
        torch.save(mlp, str(path), _use_new_zipfile_serialization=saved == "module")
    with pytest.raises(InputError) as caught:
        open_model(path, field="student", workdir=tmp_path, allow_torchscript=True)
    assert caught.value.message == (
        f"student file 'model.pt' was saved with torch.save and holds {kind}, "
        "which DistilGate does not unpickle; upload the model as ONNX "
        "(torch.onnx.export) or as TorchScript (torch.jit.script(model).save(path))"
    )


# scikit-learn classifiers, several inputs and outputs, versions


def test_evaluate_model_skl2onnx_zipmap_scores(
    onnx_student: Path, digits: Digits, tmp_path: Path
) -> None:
    logistic = export_logistic_regression(digits, tmp_path / "logistic.onnx")
    result = gate(onnx_student, logistic, digits)
    student = result.details["student"]
    assert student["output_used"] == "output_label"
    assert student["score_output"] == "output_probability"
    assert result.details["distillation"]["not_computed"] is None
    assert result.details["distillation"]["softmax_applied"]["student"] is False
    assert result.metrics["js_divergence"] > 0.0


def test_evaluate_model_output_name_overrides(
    onnx_student: Path, digits: Digits, tmp_path: Path
) -> None:
    logistic = export_logistic_regression(digits, tmp_path / "logistic.onnx")
    policy = Policy(output_name={"student": "output_probability"})
    result = gate(onnx_student, logistic, digits, policy=policy)
    assert result.details["student"]["output_used"] == "output_probability"
    assert result.details["student"]["output_kind"] == "score"


def test_evaluate_model_unknown_output_name(onnx_student: Path, digits: Digits) -> None:
    with pytest.raises(InputError) as caught:
        gate(onnx_student, onnx_student, digits, policy=Policy(output_name="probs"))
    assert caught.value.message == (
        "policy.output_name 'probs' is not an output of the teacher model; its "
        "outputs are 'logits' tensor(float32) shape ['batch', 10]"
    )


def two_input_model(path: Path, *, default: bool) -> Path:
    """Scores = x @ w0 * scale, where scale is a second input [1]."""
    weights = np.eye(64, 10, dtype=np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "w0"], ["raw"]),
        helper.make_node("Mul", ["raw", "scale"], ["scores"]),
    ]
    inputs = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64]),
        helper.make_tensor_value_info("scale", TensorProto.FLOAT, [1]),
    ]
    outputs = [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 10])]
    save_graph(path, nodes, inputs, outputs, [weights])
    if default:
        model = onnx.load(str(path))
        model.graph.initializer.append(
            onnx.numpy_helper.from_array(np.ones(1, dtype=np.float32), "scale")
        )
        onnx.save(model, str(path))
    return path


def test_evaluate_model_input_name_with_default(
    onnx_student: Path, digits: Digits, tmp_path: Path
) -> None:
    teacher = two_input_model(tmp_path / "two.onnx", default=True)
    result = gate(
        teacher, onnx_student, digits, policy=Policy(input_name={"teacher": "x"})
    )
    assert result.details["teacher"]["input_name"] == "x"


def test_inspect_model_unfed_input_rejected(tmp_path: Path) -> None:
    path = two_input_model(tmp_path / "two.onnx", default=False)
    with pytest.raises(InputError) as caught:
        inspect_model(path, field="teacher", input_name="x")
    assert caught.value.message == (
        "teacher model inputs ['scale'] have no default value, but DistilGate feeds "
        "only 'x' (policy.input_name); give the other inputs default values or "
        "export the model with a single input"
    )


def test_inspect_model_newer_ir_version_rejected(tmp_path: Path) -> None:
    path = save_graph(
        tmp_path / "future.onnx",
        [helper.make_node("Relu", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
    )
    model = onnx.load(str(path))
    model.ir_version = onnx.IR_VERSION + 1
    onnx.save(model, str(path))
    with pytest.raises(InputError) as caught:
        inspect_model(path, field="student")
    opset = onnx.defs.onnx_opset_version()
    assert caught.value.message == (
        f"student file 'future.onnx' has IR version {onnx.IR_VERSION + 1} and opset "
        f"17, but onnx {onnx.__version__} supports IR version up to "
        f"{onnx.IR_VERSION} and opset up to {opset}; re-export the model with "
        f"opset_version={opset} or lower, or upgrade onnx on the server"
    )


# Crashing and endless models


def endless_model(path: Path) -> Path:
    """A Loop that adds 1 to a counter 2**62 times before it returns scores."""
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Add", ["count_in", "one"], ["count_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("count_in", TensorProto.FLOAT, [1]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("count_out", TensorProto.FLOAT, [1]),
        ],
        [onnx.numpy_helper.from_array(np.ones(1, dtype=np.float32), "one")],
    )
    nodes = [
        helper.make_node("Loop", ["w0", "w1", "w2"], ["count"], body=body),
        helper.make_node("MatMul", ["x", "w3"], ["raw"]),
        helper.make_node("Add", ["raw", "count"], ["scores"]),
    ]
    return save_graph(
        path,
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 10])],
        [
            np.array(2**62, dtype=np.int64),
            np.array(True),
            np.zeros(1, dtype=np.float32),
            np.eye(64, 10, dtype=np.float32),
        ],
    )


def test_evaluate_model_endless_model_times_out(
    onnx_student: Path, digits: Digits, tmp_path: Path
) -> None:
    endless = endless_model(tmp_path / "endless.onnx")
    settings = ProbeSettings(timeout_s=3.0)
    with pytest.raises(EvaluationError) as caught:
        evaluate_model(
            onnx_student, endless, digits.X_test, digits.y_test,
            policy=Policy(), settings=settings,
        )  # fmt: skip
    assert caught.value.message == (
        "the student model process did not finish within 3 s and was stopped; "
        "evaluate on fewer rows or raise the timeout"
    )
    assert caught.value.field == "student"
    assert os.getpid() > 0  # this process is still running


def test_evaluate_model_cpu_limit_kills_with_sigxcpu(
    onnx_student: Path, digits: Digits, tmp_path: Path
) -> None:
    endless = endless_model(tmp_path / "endless.onnx")
    settings = ProbeSettings(timeout_s=30.0, cpu_limit_s=1.0)
    with pytest.raises(EvaluationError) as caught:
        evaluate_model(
            endless, onnx_student, digits.X_test, digits.y_test,
            policy=Policy(), settings=settings,
        )  # fmt: skip
    assert caught.value.message.startswith(
        "the teacher model process was killed by SIGXCPU while it loaded or ran "
        "the model"
    )
    assert caught.value.message.endswith(
        "A SIGXCPU means the process used up its CPU-time limit "
        "(ProbeSettings.cpu_limit_s)"
    )
    assert caught.value.field == "teacher"


def test_evaluate_model_memory_limit_is_evaluation_error(
    digits: Digits, tmp_path: Path
) -> None:
    big = train_mlp(digits, [4096, 4096], epochs=1)
    teacher = export_torch(big, tmp_path / "big.onnx")
    # Python, numpy and onnxruntime take about 200 MB of address space (measured
    # with onnxruntime 1.32 on x86-64 Linux); the model's 68 MB of weights, read
    # and then copied into the session, do not fit in the remaining 80 MB.
    settings = ProbeSettings(timeout_s=60.0, memory_limit_bytes=280 * 1024**2)
    with pytest.raises(EvaluationError) as caught:
        evaluate_model(
            teacher, teacher, digits.X_test, digits.y_test,
            policy=Policy(), settings=settings,
        )  # fmt: skip
    assert caught.value.message.startswith(
        "the teacher model ran out of memory while loading (the limit of "
        f"{280 * 1024**2:,} bytes, RLIMIT_AS): "
    )
    assert caught.value.field == "teacher"
