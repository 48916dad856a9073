import pytest

from app.errors import InputError
from app.policy import Policy, parse_policy


def test_parse_policy_defaults_when_empty():
    for raw in (None, "", "  ", {}):
        assert parse_policy(raw) == Policy()


def test_policy_defaults_are_documented_bars():
    policy = Policy()
    assert policy.min_coverage == 0.95
    assert policy.max_accuracy_loss == 0.03
    assert policy.min_reduction == 0.70
    assert policy.resources == ["size", "latency", "memory"]
    assert policy.max_param_ratio == 10
    assert policy.edge_case_share == (0.05, 0.10)


def test_parse_policy_overrides_one_key():
    policy = parse_policy('{"min_coverage": 0.9, "resources": ["size"]}')
    assert policy.min_coverage == 0.9
    assert policy.resources == ["size"]
    assert policy.max_accuracy_loss == 0.03


def test_parse_policy_rejects_percent_for_fraction():
    with pytest.raises(InputError, match=r"write 0.95, not 95") as caught:
        parse_policy('{"min_coverage": 95}')
    assert caught.value.field == "policy.min_coverage"
    assert caught.value.value == 95


def test_parse_policy_rejects_unknown_key_listing_known():
    with pytest.raises(InputError, match=r"unknown policy key 'min_cov'") as caught:
        parse_policy({"min_cov": 0.9})
    assert "min_coverage" in caught.value.message
    assert caught.value.field == "policy.min_cov"


@pytest.mark.parametrize(
    ("raw", "pattern"),
    [
        ("{", r"policy is not valid JSON"),
        ("[0.9]", r"must be a JSON object"),
        ('{"edge_case_share": [0.2, 0.1]}', r"0 <= low <= high <= 1"),
        ('{"resources": ["size", "size"]}', r"each resource at most once"),
        ('{"resources": ["disk"]}', r"'size', 'latency' or 'memory'"),
        ('{"max_param_ratio": 0.5}', r"greater than 1"),
        ('{"max_accuracy_loss": -0.1}', r"greater than or equal to 0"),
    ],
)
def test_parse_policy_rejects_bad_values(raw, pattern):
    with pytest.raises(InputError, match=pattern):
        parse_policy(raw)
