"""Checks of the value combinations a subset keeps: scenarios, t-way, required.

They are measured on the original's valid rows: duplicates repeat a row's
values, so dropping them changes no combination.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from app.evaluation.required import RuleResult, describe_rule, evaluate_rules
from app.evaluation.scenarios import (
    MAX_MISSING_PAIRS,
    pairwise_coverage,
    scenario_coverage,
    t_way_coverage,
)
from app.policy import Policy
from app.results import Check, compare, percent, skipped

Part = tuple[Check, dict[str, Any], dict[str, Any]]
MAX_LOST_RULES_SHOWN = 5


def scenario_part(
    original: pd.DataFrame, subset: pd.DataFrame, columns: list[str], policy: Policy
) -> Part:
    name = "scenario_coverage"
    if not columns:
        reason = (
            "scenario coverage not measured: no scenario columns or label column "
            "given; pass scenario_columns to measure it"
        )
        return skip(name, policy, reason), {}, {}
    result = scenario_coverage(original, subset, columns)
    check = compare(
        name,
        result.fraction,
        policy.min_coverage,
        ">=",
        unit="fraction",
        describe=(
            f"scenario coverage {percent(result.fraction)} "
            f"({result.covered} of {result.total} tuples)"
        ),
        bound=percent(policy.min_coverage),
    )
    metrics = {
        "scenario_tuples_original": result.total,
        "scenario_tuples_subset": result.covered,
        "scenario_tuples_missing": result.total - result.covered,
    }
    return check, metrics, {"missing_scenarios": result.missing}


def pairwise_part(
    original: pd.DataFrame, subset: pd.DataFrame, columns: list[str], policy: Policy
) -> Part:
    name = "pairwise_coverage"
    if len(columns) < 2:
        reason = (
            f"pairwise coverage not measured: it needs at least 2 scenario columns "
            f"(the label column counts as one), got {len(columns)}"
        )
        return skip(name, policy, reason), {}, {}
    result = pairwise_coverage(original, subset, columns, limit=MAX_MISSING_PAIRS)
    check = compare(
        name,
        result.fraction,
        policy.min_coverage,
        ">=",
        unit="fraction",
        describe=(
            f"pairwise coverage {percent(result.fraction)} "
            f"({result.covered} of {result.total} value pairs)"
        ),
        bound=percent(policy.min_coverage),
    )
    metrics = {
        "pairs_original": result.total,
        "pairs_subset": result.covered,
        "pairs_missing": result.total - result.covered,
    }
    return check, metrics, {"missing_pairs": result.missing}


def t_way_part(
    original: pd.DataFrame, subset: pd.DataFrame, columns: list[str], policy: Policy
) -> Part:
    """Check the value combinations of every ``policy.t_way`` scenario columns."""
    name, t = "t_way_coverage", policy.t_way
    if len(columns) < t:
        reason = (
            f"{t}-way coverage not measured: it needs at least {t} scenario columns "
            f"(the label column counts as one), got {len(columns)}"
        )
        return skip(name, policy, reason), {}, {}
    result = t_way_coverage(original, subset, columns, t, limit=MAX_MISSING_PAIRS)
    check = compare(
        name,
        result.fraction,
        policy.min_coverage,
        ">=",
        unit="fraction",
        describe=(
            f"{t}-way coverage {percent(result.fraction)} "
            f"({result.covered} of {result.total} value combinations of {t} columns)"
        ),
        bound=percent(policy.min_coverage),
    )
    metrics = {
        "t_way": t,
        "t_way_original": result.total,
        "t_way_subset": result.covered,
        "t_way_missing": result.total - result.covered,
    }
    return check, metrics, {"missing_t_way": result.missing}


def required_part(
    original: pd.DataFrame,
    kept_rows: np.ndarray,
    subset: pd.DataFrame,
    hashes: tuple[np.ndarray, np.ndarray],
    policy: Policy,
) -> Part:
    """Check that the subset keeps enough rows of every required scenario."""
    name = "required_scenarios"
    rules = policy.required_scenarios
    if not rules:
        reason = (
            "required scenarios not checked: policy required_scenarios is empty; "
            'add rules such as {"status": "failed"} to require rows'
        )
        return skip(name, policy, reason, threshold=1.0), {}, {}
    results = evaluate_rules(
        rules, original, kept_rows, subset, hashes, policy.min_required_rows
    )
    kept = sum(result.kept for result in results)
    check = compare(
        name,
        kept / len(results),
        1.0,
        ">=",
        unit="fraction",
        describe=_describe_rules(results, policy.min_required_rows),
        bound="100.0%",
    )
    if check.status == "passed" and any(r.original_rows == 0 for r in results):
        # A rule that matches nothing is likely a misspelt value, which must
        # not pass unnoticed. The gate still passes.
        check = replace(check, status="warning")
    metrics = {"required_rules": len(results), "required_rules_kept": kept}
    details = {"required_scenarios": [result.to_dict() for result in results]}
    return check, metrics, details


def _describe_rules(results: list[RuleResult], min_rows: int) -> str:
    kept = sum(result.kept for result in results)
    text = (
        f"required scenarios {percent(kept / len(results))} ({kept} of "
        f"{len(results)} rules keep {min_rows} distinct rows, or all the original "
        "has"
    )
    lost = [result for result in results if not result.kept]
    if lost:
        shown = [
            f"{describe_rule(r.rule)} keeps {r.subset_rows} of {r.required}"
            for r in lost[:MAX_LOST_RULES_SHOWN]
        ]
        more = len(lost) - len(shown)
        text += "; lost: " + "; ".join(shown) + (f"; {more} more" if more else "")
    unmatched = sum(result.original_rows == 0 for result in results)
    if unmatched:
        verb = "rule matches" if unmatched == 1 else "rules match"
        text += f"; {unmatched} {verb} no row of the original: check the values"
    return text + ")"


def skip(
    name: str, policy: Policy, reason: str, *, threshold: float | None = None
) -> Check:
    """Build a skipped coverage check with the reason as its message."""
    return skipped(
        name,
        comparator=">=",
        unit="fraction",
        threshold=policy.min_coverage if threshold is None else threshold,
        reason=reason,
    )
