"""The data gate: how well a distilled subset covers the original dataset.

Rows are test cases. The original is cleaned first: invalid rows, exact and
near duplicates leave it (see ``app.evaluation.cleaning``). Coverage is measured
against what is left, so a subset that drops duplicates loses nothing. Scenario,
pairwise, t-way and nearest-neighbour-ball feature coverage gate against
``policy.min_coverage``; required scenarios gate on their own. The share of
edge cases in the subset warns, or fails with ``policy.edge_case_gated``, when
it falls outside ``policy.edge_case_share``. Per-column distribution distances
are reported as details only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from app.evaluation.cleaning import DEFAULT_RULES, Cleaning, RowRule, row_hashes
from app.evaluation.distributions import distribution_distances
from app.evaluation.feature_checks import FeatureInputs, feature_checks
from app.evaluation.features import Featuriser, TableFeaturiser
from app.evaluation.prepare import NearFinder, prepare
from app.evaluation.progress import Progress, ProgressFn
from app.evaluation.reduction import PCAFeaturiser
from app.evaluation.required import validate_rules
from app.evaluation.scenario_checks import (
    Part,
    pairwise_part,
    required_part,
    scenario_part,
    skip,
    t_way_part,
)
from app.evaluation.text import (
    TextTableFeaturiser,
    text_columns,
    validate_text_columns,
)
from app.evaluation.validation import scenario_columns as listed_columns
from app.evaluation.validation import validate_tables
from app.policy import Policy
from app.results import Check, Evaluation


def evaluate_data(
    original: pd.DataFrame,
    subset: pd.DataFrame,
    *,
    policy: Policy,
    scenario_columns: Sequence[str] = (),
    label_column: str | None = None,
    featuriser: Featuriser | None = None,
    row_rules: Sequence[RowRule] = DEFAULT_RULES,
    row_key: str | None = None,
    near_finder: NearFinder | None = None,
    progress: ProgressFn | None = None,
) -> Evaluation:
    """Measure how well ``subset`` covers ``original`` and gate the result.

    ``label_column`` counts as one more scenario column, so a subset that drops a
    class loses scenarios. Checks that cannot be measured are skipped with the
    reason: scenario coverage needs a scenario column, pairwise coverage two,
    and the feature checks a column that is not all missing in the original.
    ``featuriser`` replaces the table encoding (standardised numbers, one-hot
    categories, and TF-IDF for the policy's text columns), and ``row_rules``
    the rules that mark invalid rows. With ``policy.pca_components`` the
    features are reduced by PCA before cleaning and coverage. ``row_key`` names
    a column that alone decides whether rows are equal (such as a content hash),
    and ``near_finder`` replaces feature distance for near-duplicates.
    ``progress(stage, fraction)`` is called as stages advance: clean, encode,
    clusters, near_duplicates, scenarios, subset_neighbours, coverage,
    edge_cases, distributions.

    Raises:
        InputError: a table has no rows, or the column sets differ. Also when
            a named column does not exist, a cell contains a nested value, or a
            column is numeric in one table and not in the other. Also when a
            required scenario names an unknown column, or a text column is
            missing or not text.
    """
    columns = listed_columns(scenario_columns, label_column)
    validate_tables(original, subset, columns, label_column)
    validate_rules(policy.required_scenarios, list(original.columns))
    validate_text_columns(text_columns(policy), original, columns)
    subset = subset[list(original.columns)]
    tracker = Progress(progress)
    if row_key is None:
        hashes = row_hashes(original, subset)
    else:
        hashes = row_hashes(original[[row_key]], subset[[row_key]])
    prepared = prepare(
        original,
        hashes[0],
        columns=columns,
        near_duplicate_ratio=policy.near_duplicate_ratio,
        featuriser=_featuriser(featuriser, policy),
        rules=row_rules,
        near_finder=near_finder,
        progress=tracker,
    )
    cleaning = prepared.cleaning
    report = cleaning.report()
    if near_finder is not None:
        report["near_duplicate_rule"] = near_finder.rule
    metrics = _table_metrics(original, subset, report)
    details: dict[str, Any] = {"scenario_columns": columns, "cleaning": report}
    is_valid = cleaning.group >= 0
    # Selecting every row would copy the whole table for nothing.
    valid = original if is_valid.all() else original.iloc[np.flatnonzero(is_valid)]

    tracker.start("scenarios")
    combination_checks = _combination_parts(valid, subset, columns, policy)
    required = required_part(original, cleaning.kept, subset, hashes, policy)
    inputs = FeatureInputs(
        original=original,
        subset=subset,
        columns=columns,
        policy=policy,
        prepared=prepared,
        subset_matches=_subset_matches(cleaning, hashes),
        distinct_subset_rows=len(np.unique(hashes[1])),
    )
    (coverage, edge), feature_metrics, feature_details = feature_checks(inputs, tracker)
    checks: list[Check] = []
    for check, part_metrics, part_details in [*combination_checks, required]:
        checks.append(check)
        metrics.update(part_metrics)
        details.update(part_details)
    checks[len(combination_checks) : len(combination_checks)] = [coverage]
    checks.append(edge)
    metrics.update(feature_metrics)
    details.update(feature_details)

    tracker.start("distributions")
    details["distributions"] = _distributions(valid, subset, tracker)
    tracker.done()
    return Evaluation(kind="data", checks=checks, metrics=metrics, details=details)


def _featuriser(featuriser: Featuriser | None, policy: Policy) -> Featuriser:
    """Return the featuriser to use, followed by PCA when the policy sets it."""
    if featuriser is None:
        names = text_columns(policy)
        featuriser = TextTableFeaturiser(names) if names else TableFeaturiser()
    if policy.pca_components is None:
        return featuriser
    return PCAFeaturiser(featuriser, policy.pca_components)


def _table_metrics(
    original: pd.DataFrame, subset: pd.DataFrame, report: dict[str, Any]
) -> dict[str, Any]:
    return {
        "original_rows": len(original),
        "subset_rows": len(subset),
        "subset_fraction": len(subset) / len(original),
        "cleaned_rows": report["cleaned_rows"],
        "invalid_rows": report["invalid_rows"],
        "exact_duplicate_rows": report["exact_duplicate_rows"],
        "near_duplicate_rows": report["near_duplicate_rows"],
        "redundancy_rate": report["redundancy_rate"],
    }


def _combination_parts(
    valid: pd.DataFrame, subset: pd.DataFrame, columns: list[str], policy: Policy
) -> list[Part]:
    names = ["scenario_coverage", "pairwise_coverage"]
    if policy.t_way >= 3:
        names.append("t_way_coverage")
    if len(valid) == 0:
        reason = (
            "{name} not measured: every row of the original is invalid (see "
            "details.cleaning)"
        )
        return [
            (skip(name, policy, reason.format(name=name.replace("_", " "))), {}, {})
            for name in names
        ]
    parts = [
        scenario_part(valid, subset, columns, policy),
        pairwise_part(valid, subset, columns, policy),
    ]
    if policy.t_way >= 3:
        parts.append(t_way_part(valid, subset, columns, policy))
    return parts


def _subset_matches(
    cleaning: Cleaning, hashes: tuple[np.ndarray, np.ndarray]
) -> np.ndarray:
    """Return the cleaned row whose group contains each subset row, or -1."""
    original_hashes, subset_hashes = hashes
    valid = np.flatnonzero(cleaning.group >= 0)
    if len(valid) == 0:
        return np.full(len(subset_hashes), -1, dtype=np.int64)
    known, first = np.unique(original_hashes[valid], return_index=True)
    position = np.minimum(np.searchsorted(known, subset_hashes), len(known) - 1)
    found = known[position] == subset_hashes
    groups = cleaning.group[valid[first[position]]]
    return np.where(found, groups, -1)


def _distributions(
    valid: pd.DataFrame, subset: pd.DataFrame, progress: Progress
) -> dict[str, Any]:
    columns = [c for c in valid.columns if not bool(valid[c].isna().all())]
    if len(valid) == 0 or not columns:
        return {"columns": [], "note": "no valid row or no column with a value"}
    return distribution_distances(valid, subset, columns, progress=progress)
