import pytest

from app.evaluation.model_checks import (
    accuracy_loss_check,
    format_bytes,
    param_ratio_check,
    reduction_check,
)
from app.policy import Policy

POLICY = Policy()


def test_accuracy_loss_check_message_shows_formula():
    check = accuracy_loss_check(0.978, 0.960, POLICY)
    assert check.status == "passed"
    assert check.value == pytest.approx(0.018)
    assert check.message == (
        "accuracy loss 1.8 pp (teacher 97.8% -> student 96.0%) <= 3.0 pp"
    )


def test_accuracy_loss_check_fails_past_bar():
    check = accuracy_loss_check(0.98, 0.90, POLICY)
    assert check.status == "failed"
    assert check.message.endswith("> 3.0 pp")


def test_accuracy_loss_check_student_better_is_negative():
    check = accuracy_loss_check(0.90, 0.92, POLICY)
    assert check.status == "passed"
    assert check.value == pytest.approx(-0.02)


def test_reduction_check_passes_at_bar():
    check = reduction_check("size", 1000, 300, POLICY, missing_reason="-")
    assert check.status == "passed"
    assert check.value == pytest.approx(0.70)
    assert check.message == (
        "size reduction 70.0% (teacher 1.00 kB -> student 300 B) >= 70.0%"
    )


def test_reduction_check_skips_zero_teacher():
    check = reduction_check("memory", 0, 0, POLICY, missing_reason="-")
    assert check.status == "skipped"
    assert check.value is None
    assert "reduction is undefined" in check.message


def test_reduction_check_skips_resource_outside_policy():
    policy = Policy(resources=["size"])
    check = reduction_check("latency", 2.0, 0.1, policy, missing_reason="-")
    assert check.status == "skipped"
    assert check.message == "latency not checked: not in policy.resources"


def test_param_ratio_check_warns_above_ratio():
    check = param_ratio_check(1_200_000, 100_000, POLICY)
    assert check.status == "warning"
    assert check.advisory is True
    assert check.message.startswith(
        "parameter ratio 12.0:1 (teacher 1,200,000 -> student 100,000 parameters)"
        " > 10:1"
    )
    assert "cannot absorb" in check.message


def test_param_ratio_check_skips_zero_student():
    assert param_ratio_check(10, 0, POLICY).status == "skipped"


def test_format_bytes_uses_decimal_units():
    assert format_bytes(999) == "999 B"
    assert format_bytes(1_200_000) == "1.20 MB"


def test_accuracy_loss_check_exact_bar_passes_despite_rounding():
    check = accuracy_loss_check(978 / 1000, 948 / 1000, POLICY)
    assert check.status == "passed"
    assert check.message.endswith("<= 3.0 pp")
