"""Tests for the data gate on tables with a free-text column, and for PCA."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from app.errors import InputError
from app.evaluation.data_gate import evaluate_data
from app.evaluation.features import TableFeaturiser
from app.evaluation.reduction import PCAFeaturiser
from app.evaluation.text import TextTableFeaturiser, text_columns
from app.policy import Policy, parse_policy
from app.results import Check, Evaluation
from tests.evaluation.text_fixtures import ticket_table, with_shouted_copies


def check(evaluation: Evaluation, name: str) -> Check:
    return next(c for c in evaluation.checks if c.name == name)


@pytest.fixture(scope="module")
def tickets() -> pd.DataFrame:
    return ticket_table()


@pytest.fixture(scope="module")
def with_copies(tickets: pd.DataFrame) -> pd.DataFrame:
    return with_shouted_copies(tickets)


TEXT_POLICY = Policy(text_column="ticket")


def test_text_gate_passes_deduplicated_subset(
    with_copies: pd.DataFrame, tickets: pd.DataFrame
) -> None:
    evaluation = evaluate_data(
        with_copies, tickets, policy=TEXT_POLICY, scenario_columns=["topic"]
    )
    assert evaluation.status == "passed", [c.message for c in evaluation.checks]
    assert check(evaluation, "feature_coverage").value == 1.0
    json.dumps(evaluation.details, allow_nan=False)


def test_text_gate_near_duplicates_from_distance(with_copies: pd.DataFrame) -> None:
    evaluation = evaluate_data(
        with_copies, with_copies, policy=TEXT_POLICY, scenario_columns=["topic"]
    )
    # Capitals and punctuation leave the words, and so the features, unchanged.
    assert evaluation.metrics["exact_duplicate_rows"] == 0
    assert evaluation.metrics["near_duplicate_rows"] == len(with_copies) // 11


def test_text_gate_fails_subset_without_topic(tickets: pd.DataFrame) -> None:
    # Without the topic column only the text shows that a topic is missing.
    table = tickets.drop(columns="topic")
    subset = table[tickets["topic"] != "search"]
    evaluation = evaluate_data(table, subset, policy=TEXT_POLICY)
    feature = check(evaluation, "feature_coverage")
    assert evaluation.status == "failed"
    assert feature.status == "failed"
    assert feature.value == pytest.approx(0.75, abs=0.03)


def test_text_gate_topic_loss_invisible_without_text(tickets: pd.DataFrame) -> None:
    # The same subset judged on priority alone loses nothing: the text matters.
    table = tickets.drop(columns="topic")
    subset = table[tickets["topic"] != "search"]
    evaluation = evaluate_data(table, subset, policy=Policy())
    assert check(evaluation, "feature_coverage").value == 1.0


def test_text_gate_describes_text_features(tickets: pd.DataFrame) -> None:
    evaluation = evaluate_data(
        tickets, tickets, policy=TEXT_POLICY, scenario_columns=["topic"]
    )
    described = evaluation.details["feature_columns"]
    assert described["numeric"] == ["priority"]
    assert described["categorical"] == ["topic"]
    (text,) = described["text"]
    assert text["column"] == "ticket"
    assert text["components"] == 32
    assert text["weight"] == pytest.approx(np.sqrt(2))


def test_text_featuriser_rows_unit_length_times_weight(tickets: pd.DataFrame) -> None:
    featuriser = TextTableFeaturiser(["ticket"])
    rows = np.arange(len(tickets))
    featuriser.fit(tickets, rows)
    points = featuriser.transform(tickets)
    assert points.shape == (len(tickets), featuriser.width)
    assert points.dtype == np.float32
    assert points.flags["C_CONTIGUOUS"]
    text_part = points[:, -32:]
    norms = np.linalg.norm(text_part, axis=1)
    np.testing.assert_allclose(norms, np.sqrt(2), rtol=1e-4)


def test_text_featuriser_blank_column() -> None:
    frame = pd.DataFrame({"note": ["", " ", None, ""], "size": [1, 2, 3, 4]})
    featuriser = TextTableFeaturiser(["note"])
    featuriser.fit(frame, np.arange(4))
    assert featuriser.width == 1
    assert featuriser.describe()["text"][0]["components"] == 0


def test_text_columns_merge_both_keys() -> None:
    policy = Policy(text_column="a", text_columns=["b", "a"])
    assert text_columns(policy) == ["a", "b"]


def test_text_column_missing(tickets: pd.DataFrame) -> None:
    with pytest.raises(InputError) as raised:
        evaluate_data(tickets, tickets, policy=Policy(text_column="tiket"))
    assert raised.value.field == "policy.text_column"
    assert raised.value.message == (
        "policy text column 'tiket' not found in original; available columns: "
        "['ticket', 'topic', 'priority']; did you mean 'ticket'?"
    )


def test_text_column_numeric(tickets: pd.DataFrame) -> None:
    with pytest.raises(InputError) as raised:
        evaluate_data(tickets, tickets, policy=Policy(text_columns=["priority"]))
    assert raised.value.message == (
        "policy text column 'priority' contains int64 values, not text; name a "
        "column of strings, or leave it out of text_column"
    )


def test_text_column_also_scenario(tickets: pd.DataFrame) -> None:
    with pytest.raises(InputError, match="'ticket' is also a scenario column"):
        evaluate_data(tickets, tickets, policy=TEXT_POLICY, scenario_columns=["ticket"])


@pytest.mark.parametrize(
    ("requested", "components"),
    [(3, 3), (0.9, None)],
)
def test_pca_reduces_before_coverage(
    tickets: pd.DataFrame, requested: int | float, components: int | None
) -> None:
    policy = Policy(text_column="ticket", pca_components=requested)
    evaluation = evaluate_data(tickets, tickets, policy=policy)
    pca = evaluation.details["feature_columns"]["pca"]
    assert pca["applied"] is True
    assert pca["requested"] == requested
    assert pca["input_width"] == 37
    if components is not None:
        assert pca["components"] == components
    else:
        assert pca["explained_variance"] >= 0.9
        assert pca["components"] < 37
    assert check(evaluation, "feature_coverage").value == 1.0


def test_pca_fails_same_topic_loss(tickets: pd.DataFrame) -> None:
    table = tickets.drop(columns="topic")
    subset = table[tickets["topic"] != "search"]
    policy = Policy(text_column="ticket", pca_components=0.8)
    evaluation = evaluate_data(table, subset, policy=policy)
    assert check(evaluation, "feature_coverage").status == "failed"


def test_pca_not_applied_when_too_narrow() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [3.0, 1.0, 2.0]})
    featuriser = PCAFeaturiser(TableFeaturiser(), 5)
    featuriser.fit(frame, np.arange(3))
    assert featuriser.width == 2
    assert featuriser.summary() == {
        "requested": 5,
        "applied": False,
        "note": "not applied: the features have 2 columns, no more than the 5 "
        "components requested",
    }
    np.testing.assert_array_equal(featuriser.transform(frame), table_points(frame))


def table_points(frame: pd.DataFrame) -> np.ndarray:
    table = TableFeaturiser()
    table.fit(frame, np.arange(len(frame)))
    return table.transform(frame)


def test_pca_randomized_for_wide_input() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        rng.normal(size=(60, 600)), columns=[f"f{i}" for i in range(600)]
    )
    featuriser = PCAFeaturiser(TableFeaturiser(), 10)
    featuriser.fit(frame, np.arange(60))
    assert featuriser.summary()["solver"] == "randomized"
    assert featuriser.transform(frame).shape == (60, 10)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "expected a component count from 1 to 1000"),
        (1001, "expected a component count from 1 to 1000"),
        (1.0, "expected a fraction of variance between 0 and 1 (exclusive)"),
        (True, "expected an integer or a fraction, got bool"),
        ("5", "expected an integer or a fraction, got str"),
    ],
)
def test_policy_pca_components_invalid(value: object, message: str) -> None:
    with pytest.raises(InputError) as raised:
        parse_policy({"pca_components": value})
    assert raised.value.field == "policy.pca_components"
    assert message in raised.value.message


def test_policy_text_column_empty() -> None:
    with pytest.raises(InputError, match="'text_column'"):
        parse_policy({"text_column": ""})
