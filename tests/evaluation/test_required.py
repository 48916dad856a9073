"""Tests for required scenarios: rule matching, validation and the gate check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from app.errors import InputError
from app.evaluation.data_gate import evaluate_data
from app.evaluation.required import rule_mask
from app.policy import Policy, parse_policy

PAYMENTS = pd.DataFrame(
    {
        "status": ["ok", "failed", "ok", "failed", "failed", "ok", None, "ok"],
        "http": [200, 502, 200, 503, 404, 201, 500, 200],
        "retry": [False, True, False, True, False, False, True, False],
        "amount": [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0],
    }
)


def rows(rule: dict[str, object], frame: pd.DataFrame = PAYMENTS) -> list[int]:
    return np.flatnonzero(rule_mask(frame, rule)).tolist()


def test_rule_mask_values() -> None:
    assert rows({"status": "failed"}) == [1, 3, 4]
    assert rows({"status": "failed", "http": "5xx"}) == [1, 3]
    assert rows({"http": "5xx"}) == [1, 3, 6]
    assert rows({"http": 200}) == [0, 2, 7]
    assert rows({"status": None}) == [6]
    assert rows({"retry": True}) == [1, 3, 6]
    assert rows({"amount": 20}) == [1]


def test_rule_mask_text_columns() -> None:
    texts = PAYMENTS.astype(str)
    assert rows({"http": 502}, texts) == [1]
    assert rows({"http": "5xx"}, texts) == [1, 3, 6]
    assert rows({"retry": True}, texts) == [1, 3, 6]
    literal = pd.DataFrame({"http": ["5xx", "500", "x"]})
    assert rows({"http": "5xx"}, literal) == [0, 1]


def test_required_rule_lost_fails_gate() -> None:
    policy = Policy(
        min_coverage=0.0,
        required_scenarios=[{"status": "failed", "http": "5xx"}, {"http": 404}],
    )
    subset = PAYMENTS.iloc[[0, 1, 2, 4]]
    evaluation = evaluate_data(PAYMENTS, subset, policy=policy)
    required = next(c for c in evaluation.checks if c.name == "required_scenarios")
    assert evaluation.status == "failed"
    assert required.status == "failed"
    assert not required.advisory
    assert required.message == (
        "required scenarios 50.0% (1 of 2 rules keep 3 distinct rows, or all the "
        "original has; lost: status='failed' and http='5xx' keeps 1 of 2) < 100.0%"
    )
    lost, kept = evaluation.details["required_scenarios"]
    assert lost["kept"] is False
    assert lost["required_rows"] == 2
    assert lost["examples"] == [
        {
            "row": 3,
            "values": {"status": "failed", "http": 503, "retry": True, "amount": 40.0},
        }
    ]
    assert kept == {
        "rule": {"http": 404},
        "original_rows": 1,
        "required_rows": 1,
        "subset_rows": 1,
        "kept": True,
    }
    assert evaluation.metrics["required_rules_kept"] == 1


def test_required_rules_kept_pass() -> None:
    policy = Policy(min_coverage=0.0, required_scenarios=[{"http": "5xx"}])
    evaluation = evaluate_data(PAYMENTS, PAYMENTS.iloc[[1, 3, 6]], policy=policy)
    required = next(c for c in evaluation.checks if c.name == "required_scenarios")
    assert required.status == "passed"
    assert required.value == 1.0


def test_required_rule_without_rows_warns() -> None:
    policy = Policy(min_coverage=0.0, required_scenarios=[{"status": "refunded"}])
    evaluation = evaluate_data(PAYMENTS, PAYMENTS.head(2), policy=policy)
    required = next(c for c in evaluation.checks if c.name == "required_scenarios")
    assert required.status == "warning"
    assert evaluation.status == "passed"
    assert required.message.endswith(
        "; 1 rule matches no row of the original: check the values) >= 100.0%"
    )
    entry = evaluation.details["required_scenarios"][0]
    assert entry["note"] == "matches no row of the original; check the values"


def test_required_rule_duplicate_rows_count_once() -> None:
    original = pd.concat([PAYMENTS, PAYMENTS.iloc[[1, 1]]], ignore_index=True)
    policy = Policy(min_coverage=0.0, required_scenarios=[{"status": "failed"}])
    subset = original.iloc[[1, 8, 9]]
    evaluation = evaluate_data(original, subset, policy=policy)
    entry = evaluation.details["required_scenarios"][0]
    assert entry["original_rows"] == 3
    assert entry["subset_rows"] == 1
    assert entry["kept"] is False


def test_required_rule_unknown_column() -> None:
    policy = Policy(required_scenarios=[{"status": "failed"}, {"htp": 500}])
    with pytest.raises(InputError) as info:
        evaluate_data(PAYMENTS, PAYMENTS, policy=policy)
    assert info.value.field == "policy.required_scenarios.1"
    assert info.value.message == (
        "required_scenarios rule 1 {'htp': 500} names column 'htp', which is not in "
        "the original; available columns: ['status', 'http', 'retry', 'amount']; "
        "did you mean 'http'?"
    )


def test_policy_rejects_empty_rule() -> None:
    with pytest.raises(InputError) as info:
        parse_policy({"required_scenarios": [{"status": "failed"}, {}]})
    assert info.value.field == "policy.required_scenarios"
    assert info.value.message == (
        "invalid policy value for 'required_scenarios': Value error, rule 1 is "
        'empty; expected an object of column: value conditions such as {"status": '
        '"failed"}'
    )
