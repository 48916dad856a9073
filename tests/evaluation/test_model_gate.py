"""Tests of the model gate and its child-process runner, on real ONNX models."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from onnx import TensorProto, helper

from app.errors import EvaluationError, InputError
from app.evaluation.model_gate import count_correct, evaluate_model, validate_labels
from app.evaluation.model_probe import ProbeSettings, child_failure
from app.policy import Policy
from app.results import Check, Evaluation, percent, points
from tests.evaluation.onnx_fixtures import (
    Digits,
    export_logistic_regression,
    export_torch,
    load_digits_split,
    parameter_count,
    save_graph,
    train_mlp,
)

pytestmark = pytest.mark.slow

# Short latency sampling keeps each child process under a second.
FAST = ProbeSettings(
    warmup_runs=2,
    min_latency_runs=5,
    max_latency_runs=30,
    latency_budget_s=0.05,
    throughput_budget_s=0.02,
)
CHECK_NAMES = [
    "accuracy_loss",
    "size_reduction",
    "latency_reduction",
    "memory_reduction",
    "param_ratio",
]


@dataclass(frozen=True)
class Models:
    """Exported models and the parameter counts torch reports for them."""

    teacher: Path
    student: Path
    weak_student: Path
    logistic: Path
    fixed_batch_teacher: Path
    teacher_parameters: int
    student_parameters: int


@pytest.fixture(scope="module")
def digits() -> Digits:
    return load_digits_split()


@pytest.fixture(scope="module")
def models(digits: Digits, tmp_path_factory: pytest.TempPathFactory) -> Models:
    root = tmp_path_factory.mktemp("models")
    teacher = train_mlp(digits, [512, 512], epochs=30)
    student = train_mlp(digits, [32], epochs=60)
    weak = train_mlp(digits, [4], epochs=3)
    return Models(
        teacher=export_torch(teacher, root / "teacher.onnx"),
        student=export_torch(student, root / "student.onnx"),
        weak_student=export_torch(weak, root / "weak.onnx"),
        logistic=export_logistic_regression(digits, root / "logistic.onnx"),
        fixed_batch_teacher=export_torch(teacher, root / "teacher8.onnx", batch=8),
        teacher_parameters=parameter_count(teacher),
        student_parameters=parameter_count(student),
    )


@pytest.fixture(scope="module")
def evaluation(models: Models, digits: Digits) -> Evaluation:
    return evaluate_model(
        models.teacher,
        models.student,
        digits.X_test,
        digits.y_test,
        policy=Policy(),
        settings=FAST,
    )


def direct_predictions(path: Path, X: np.ndarray, output: str) -> np.ndarray:
    """Predict with a plain onnxruntime session, outside the gate."""
    session = onnxruntime.InferenceSession(
        str(path), providers=["CPUExecutionProvider"]
    )
    feed = {session.get_inputs()[0].name: X.astype(np.float32)}
    (result,) = session.run([output], feed)
    return result if output != "logits" else np.argmax(result, axis=1)


def direct_accuracy(path: Path, digits: Digits, output: str = "logits") -> float:
    predictions = direct_predictions(path, digits.X_test, output)
    return float(np.mean(predictions == digits.y_test))


def check(result: Evaluation, name: str) -> Check:
    return next(item for item in result.checks if item.name == name)


# A teacher and a good student


def test_evaluate_model_accuracies_match_onnxruntime(
    evaluation: Evaluation, models: Models, digits: Digits
) -> None:
    teacher = direct_accuracy(models.teacher, digits)
    student = direct_accuracy(models.student, digits)
    assert evaluation.metrics["teacher_accuracy"] == teacher
    assert evaluation.metrics["student_accuracy"] == student
    assert evaluation.metrics["evaluation_rows"] == len(digits.y_test)


def test_evaluate_model_sizes_are_file_sizes(
    evaluation: Evaluation, models: Models
) -> None:
    assert evaluation.metrics["teacher_size_bytes"] == models.teacher.stat().st_size
    assert evaluation.metrics["student_size_bytes"] == models.student.stat().st_size


def test_evaluate_model_parameters_match_torch(
    evaluation: Evaluation, models: Models
) -> None:
    assert evaluation.metrics["teacher_parameters"] == models.teacher_parameters
    assert evaluation.metrics["student_parameters"] == models.student_parameters


def test_evaluate_model_checks_in_order(evaluation: Evaluation) -> None:
    assert [item.name for item in evaluation.checks] == CHECK_NAMES


def test_evaluate_model_accuracy_loss_message(
    evaluation: Evaluation, models: Models, digits: Digits
) -> None:
    teacher = direct_accuracy(models.teacher, digits)
    student = direct_accuracy(models.student, digits)
    accuracy = check(evaluation, "accuracy_loss")
    low, high = accuracy.interval
    assert accuracy.status == ("passed" if high <= 0.03 else "inconclusive")
    assert accuracy.value == pytest.approx(teacher - student, abs=1e-12)
    assert low <= accuracy.value <= high
    assert accuracy.message.startswith(
        f"accuracy loss {points(teacher - student)} (teacher {percent(teacher)} "
        f"-> student {percent(student)}, relative "
        f"{percent((teacher - student) / teacher)}; classification task, "
        "inferred: the labels are classes) <= 3.0 pp, 95% CI "
        f"[{points(low)}, {points(high)}]"
    )


def test_evaluate_model_size_reduction_value(
    evaluation: Evaluation, models: Models
) -> None:
    size = check(evaluation, "size_reduction")
    expected = 1 - models.student.stat().st_size / models.teacher.stat().st_size
    assert size.status == "passed"
    assert size.value == pytest.approx(expected)
    assert size.message.startswith(f"size reduction {percent(expected)} (teacher ")
    assert size.message.endswith(">= 70.0%")


def test_evaluate_model_param_ratio_warns(
    evaluation: Evaluation, models: Models
) -> None:
    ratio = check(evaluation, "param_ratio")
    expected = models.teacher_parameters / models.student_parameters
    assert ratio.status == "warning"
    assert ratio.advisory
    assert ratio.value == pytest.approx(expected)
    assert ratio.message == (
        f"parameter ratio {expected:.1f}:1 (teacher {models.teacher_parameters:,} "
        f"-> student {models.student_parameters:,} parameters) > 10:1; a student "
        "this much smaller than its teacher often cannot absorb what the teacher "
        "knows"
    )


def test_evaluate_model_latency_and_memory_measured(evaluation: Evaluation) -> None:
    metrics = evaluation.metrics
    for role in ("teacher", "student"):
        assert metrics[f"{role}_latency_ms"] > 0
        assert metrics[f"{role}_latency_p90_ms"] >= metrics[f"{role}_latency_ms"]
        assert metrics[f"{role}_throughput_rows_per_s"] > 0
        assert metrics[f"{role}_memory_bytes"] > 0
    runs = FAST.runs_per_round
    assert FAST.min_latency_runs * runs <= metrics["latency_runs"]
    assert metrics["latency_runs"] <= FAST.max_latency_runs * runs
    latency = check(evaluation, "latency_reduction")
    assert latency.value is not None
    assert latency.interval is not None
    assert latency.interval[0] <= latency.value <= latency.interval[1]
    assert check(evaluation, "memory_reduction").value is not None


def test_evaluate_model_details_record_environment(evaluation: Evaluation) -> None:
    environment = evaluation.details["environment"]
    options = environment["session_options"]
    assert options["intra_op_num_threads"] == 1
    assert options["inter_op_num_threads"] == 1
    assert options["execution_mode"] == "ORT_SEQUENTIAL"
    assert options["allow_spinning"] is False
    assert options["enable_cpu_mem_arena"] is True
    assert options["enable_mem_pattern"] is True
    assert environment["versions"]["onnxruntime"] == onnxruntime.__version__
    assert environment["versions"]["numpy"] == np.__version__
    assert environment["cpus_available"] >= 1
    assert environment["cpu_model"]
    assert evaluation.details["settings"]["runs_per_round"] == FAST.runs_per_round


def test_evaluate_model_memory_by_phase(evaluation: Evaluation) -> None:
    for role in ("teacher", "student"):
        phases = evaluation.details[role]["memory_bytes_by_phase"]
        assert list(phases) == ["load", "first_run", "steady"]
        assert phases["load"] <= phases["first_run"] <= phases["steady"]
        assert phases["steady"] == evaluation.metrics[f"{role}_memory_bytes"]
    teacher = evaluation.details["teacher"]["memory_bytes_by_phase"]["load"]
    # The teacher's float32 weights alone take 4 bytes per parameter.
    assert teacher >= 4 * evaluation.metrics["teacher_parameters"]


def test_evaluate_model_distillation_metrics(evaluation: Evaluation) -> None:
    metrics = evaluation.metrics
    assert 0.9 <= metrics["agreement"] <= 1.0
    assert 0.0 <= metrics["js_divergence"] <= np.log(2)
    assert metrics["kl_divergence"] >= 0.0
    assert 0.0 <= metrics["student_calibration_error"] <= 1.0
    assert 0.0 <= metrics["mcnemar_p_value"] <= 1.0
    assert evaluation.details["distillation"]["softmax_applied"] == {
        "teacher": True,
        "student": True,
    }
    classes = evaluation.details["classes"]
    assert [item["class"] for item in classes] == [str(i) for i in range(10)]
    worst = max(item["drop"] for item in classes)
    assert metrics["worst_class_drop"] == pytest.approx(worst)


def test_evaluate_model_details_describe_models(evaluation: Evaluation) -> None:
    teacher = evaluation.details["teacher"]
    assert teacher["input_name"] == "input"
    assert teacher["input_shape"] == ["batch", 64]
    assert teacher["input_type"] == "float32"
    assert teacher["output_used"] == "logits"
    assert teacher["output_kind"] == "score"
    assert teacher["latency_batch_rows"] == 1
    assert teacher["throughput"]["batch_rows"] == FAST.throughput_rows
    # Two Gemm layers of 64x512 and 512x512 and one of 512x10, two per multiply-add.
    assert teacher["flops_per_row"] == 2 * (64 * 512 + 512 * 512 + 512 * 10) + (
        512 + 512 + 10
    )


def test_evaluate_model_result_is_strict_json(evaluation: Evaluation) -> None:
    body = {
        "checks": [item.to_dict() for item in evaluation.checks],
        "metrics": evaluation.metrics,
        "details": evaluation.details,
    }
    assert json.loads(json.dumps(body, allow_nan=False)) == body


# Other students and teachers


def test_evaluate_model_weak_student_fails(models: Models, digits: Digits) -> None:
    result = evaluate_model(
        models.teacher,
        models.weak_student,
        digits.X_test,
        digits.y_test,
        policy=Policy(resources=["size"]),
        settings=FAST,
    )
    accuracy = check(result, "accuracy_loss")
    assert accuracy.status == "failed"
    assert "> 3.0 pp, 95% CI [" in accuracy.message
    assert result.status == "failed"
    for resource in ("latency", "memory"):
        skipped = check(result, f"{resource}_reduction")
        assert skipped.status == "skipped"
        assert skipped.message == f"{resource} not checked: not in policy.resources"
    assert check(result, "size_reduction").status == "passed"


def test_evaluate_model_label_output_and_int64_rows(
    models: Models, digits: Digits
) -> None:
    rows = digits.X_test.astype(np.int64)
    result = evaluate_model(
        models.teacher, models.logistic, rows, digits.y_test,
        policy=Policy(), settings=FAST,
    )  # fmt: skip
    student = result.details["student"]
    assert student["output_used"] == "output_label"
    assert student["output_kind"] == "label"
    assert student["input_type"] == "float32"
    expected = direct_accuracy(models.logistic, digits, output="output_label")
    assert result.metrics["student_accuracy"] == expected
    assert result.metrics["student_parameters"] == 64 * 10 + 10


def test_evaluate_model_fixed_batch_teacher(
    models: Models, digits: Digits, evaluation: Evaluation
) -> None:
    # 450 rows in batches of 8 leave a last batch of 2 rows, which is padded.
    assert len(digits.y_test) % 8 != 0
    result = evaluate_model(
        models.fixed_batch_teacher, models.student, digits.X_test, digits.y_test,
        policy=Policy(), settings=FAST,
    )  # fmt: skip
    teacher_accuracy = evaluation.metrics["teacher_accuracy"]
    assert result.metrics["teacher_accuracy"] == teacher_accuracy
    assert result.details["teacher"]["latency_batch_rows"] == 8
    latency = check(result, "latency_reduction")
    assert latency.status == "skipped"
    assert latency.message == (
        "latency not checked: the teacher was timed on batches of 8 rows and the "
        "student on 1, because a model declares a fixed batch size"
    )


def max_pixel_model(path: Path, *, keepdims: int) -> Path:
    """Save a binary scorer: the largest of the 64 features divided by 16."""
    return save_graph(
        path,
        [
            helper.make_node("ReduceMax", ["x"], ["peak"], axes=[1], keepdims=keepdims),
            helper.make_node("Mul", ["peak", "w0"], ["score"]),
        ],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
        [
            helper.make_tensor_value_info(
                "score", TensorProto.FLOAT, ["N", 1] if keepdims else ["N"]
            )
        ],
        [np.array(1 / 16, dtype=np.float32)],
    )


def test_evaluate_model_binary_scores_threshold(tmp_path: Path) -> None:
    teacher = max_pixel_model(tmp_path / "flat.onnx", keepdims=0)
    student = max_pixel_model(tmp_path / "column.onnx", keepdims=1)
    # Row i has the largest feature i, so its score is i / 16, exactly 0.5 at i = 8.
    rows = np.zeros((17, 64))
    rows[np.arange(17), np.arange(17)] = np.arange(17)
    labels = (np.arange(17) >= 8).astype(np.int64)
    result = evaluate_model(
        teacher, student, rows, labels, policy=Policy(), settings=FAST
    )
    assert result.details["teacher"]["output_kind"] == "score"
    assert result.details["student"]["output_kind"] == "score"
    assert result.metrics["teacher_accuracy"] == 1.0
    assert result.metrics["student_accuracy"] == 1.0


# Dataset validation, before any model runs


def test_evaluate_model_width_mismatch(models: Models, digits: Digits) -> None:
    with pytest.raises(InputError) as caught:
        evaluate_model(
            models.teacher, models.student, digits.X_test[:, :30], digits.y_test,
            policy=Policy(), settings=FAST,
        )  # fmt: skip
    assert caught.value.message == (
        "dataset rows have 30 features but the teacher expects 64 (input 'input' "
        "shape ['batch', 64]); pass the feature columns the teacher was trained "
        "on, in the same order"
    )
    assert caught.value.field == "dataset"


def test_evaluate_model_not_onnx_student(
    models: Models, digits: Digits, tmp_path: Path
) -> None:
    upload = tmp_path / "student.csv"
    upload.write_text("a,b,label\n1,2,0\n", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        evaluate_model(
            models.teacher, upload, digits.X_test, digits.y_test,
            policy=Policy(), settings=FAST,
        )  # fmt: skip
    assert caught.value.field == "student"
    assert caught.value.message.startswith(
        "student file 'student.csv' is not an ONNX model (protobuf parsing failed"
    )


def test_evaluate_model_empty_dataset(models: Models) -> None:
    with pytest.raises(InputError) as caught:
        evaluate_model(
            models.teacher, models.student, np.zeros((0, 64)), np.zeros(0),
            policy=Policy(), settings=FAST,
        )  # fmt: skip
    assert caught.value.message == (
        "dataset has no rows; evaluate on at least one labelled row"
    )


def test_validate_labels_count_mismatch() -> None:
    with pytest.raises(InputError) as caught:
        validate_labels(np.zeros(3), rows=4)
    assert caught.value.message == (
        "dataset has 4 feature rows but 3 labels; pass exactly one label per row"
    )


def test_validate_labels_missing_label() -> None:
    labels = np.array(["cat", None, "dog", float("nan")], dtype=object)
    with pytest.raises(InputError) as caught:
        validate_labels(labels, rows=4)
    assert caught.value.message == (
        "dataset label at row 1 (0-based) is missing (2 missing labels); drop "
        "unlabelled rows or fill in their labels"
    )


def test_validate_labels_two_columns() -> None:
    with pytest.raises(InputError) as caught:
        validate_labels(np.zeros((4, 2)), rows=4)
    assert caught.value.message == (
        "dataset labels must be one column, got shape [4, 2]; pass the label "
        "column on its own"
    )


def test_validate_labels_column_vector_flattened() -> None:
    assert validate_labels(np.arange(3).reshape(3, 1), rows=3).tolist() == [0, 1, 2]


@pytest.mark.parametrize(
    ("predictions", "labels", "correct"),
    [
        (np.array([0, 1, 2]), np.array([0.0, 1.0, 5.0]), 2),
        (np.array([0, 1, 2]), np.array(["0", "1", "2"], dtype=object), 3),
        (np.array(["1", "2"]), np.array([1.0, 3.0]), 1),
        (np.array(["cat", "dog"]), np.array(["cat", "cow"]), 1),
    ],
    ids=["int-vs-float", "int-vs-text", "text-vs-float", "text-vs-text"],
)
def test_count_correct_label_types(
    predictions: np.ndarray, labels: np.ndarray, correct: int
) -> None:
    assert count_correct(predictions, labels) == correct


# Child process failures


def test_evaluate_model_timeout_argument(models: Models, digits: Digits) -> None:
    with pytest.raises(EvaluationError) as caught:
        evaluate_model(
            models.teacher, models.student, digits.X_test, digits.y_test,
            policy=Policy(), settings=FAST, timeout_s=0.01,
        )  # fmt: skip
    # The teacher's child is waited for first, so its timeout is the one raised.
    assert caught.value.message == (
        "the teacher model process did not finish within 0.01 s and was stopped; "
        "evaluate on fewer rows or raise the timeout"
    )
    assert caught.value.field == "teacher"


def test_child_failure_names_signal() -> None:
    crashed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert crashed.returncode == -signal.SIGSEGV
    error = child_failure("student", crashed.returncode, crashed.stderr)
    assert error.message.startswith(
        "the student model process was killed by SIGSEGV while it loaded or ran "
        "the model"
    )
    assert error.message.endswith(
        "A SIGSEGV or SIGABRT points to a model that crashes its runtime"
    )
    assert error.field == "student"


def test_child_failure_exit_code_and_stderr() -> None:
    error = child_failure("teacher", 1, "Traceback ...\nMemoryError\n")
    assert error.message == (
        "the teacher model process exited with code 1 without a result; stderr "
        "ends with: Traceback ...\nMemoryError"
    )


def test_evaluate_model_unknown_operator(
    models: Models, digits: Digits, tmp_path: Path
) -> None:
    # onnx.checker accepts operators of unknown domains; onnxruntime does not.
    path = save_graph(
        tmp_path / "custom.onnx",
        [helper.make_node("Mystery", ["x"], ["scores"], domain="com.example")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 10])],
        domains={"com.example": 1},
    )
    with pytest.raises(InputError) as caught:
        evaluate_model(
            path, models.student, digits.X_test, digits.y_test,
            policy=Policy(), settings=FAST,
        )  # fmt: skip
    message = caught.value.message
    assert message.startswith(
        f"the teacher model failed while loading (numpy {np.__version__}, "
        f"onnxruntime {onnxruntime.__version__}): "
    )
    assert "Mystery" in message
    assert str(tmp_path) not in message
    assert caught.value.field == "teacher"


def test_evaluate_model_output_rows_mismatch(
    models: Models, digits: Digits, tmp_path: Path
) -> None:
    # Flattening the whole batch returns 64 values per row instead of one.
    shape = np.array([-1], dtype=np.int64)
    path = save_graph(
        tmp_path / "flat.onnx",
        [helper.make_node("Reshape", ["x", "w0"], ["score"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["M"])],
        [shape],
    )
    with pytest.raises(InputError) as caught:
        evaluate_model(
            models.teacher, path, digits.X_test, digits.y_test,
            policy=Policy(), settings=FAST,
        )  # fmt: skip
    assert caught.value.message.startswith(
        f"the student model failed while predicting (numpy {np.__version__}, "
        f"onnxruntime {onnxruntime.__version__}): ValueError: output 'score' has "
        "shape [64] for a batch of 1 rows. Check that"
    )
