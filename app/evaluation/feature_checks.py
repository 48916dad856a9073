"""Checks in feature space: nearest-neighbour-ball coverage and edge cases.

Besides the two checks this module fills the details with the covering radius,
the worst-covered rows, the cluster view and the original rows each subset row
represents.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from app.evaluation.cluster_search import cluster_nearest
from app.evaluation.clusters import Partition, cluster_view
from app.evaluation.coverage import (
    K_RULE,
    BallCoverage,
    ball_coverage,
    choose_k,
    representation,
    worst_case,
)
from app.evaluation.edges import (
    EDGE_SHARE,
    MIN_ROWS,
    EdgeModel,
    edge_flags,
    fit_edges,
)
from app.evaluation.neighbours import nearest
from app.evaluation.prepare import Prepared
from app.evaluation.progress import Progress
from app.evaluation.scenarios import row_example
from app.policy import Policy
from app.results import (
    Check,
    CheckStatus,
    compare,
    compare_interval,
    percent,
    points,
    skipped,
)

Results = tuple[list[Check], dict[str, Any], dict[str, Any]]


@dataclass(frozen=True)
class FeatureInputs:
    """Both tables, the cleaned original and how subset rows match it."""

    original: pd.DataFrame
    subset: pd.DataFrame
    columns: list[str]
    policy: Policy
    prepared: Prepared
    # For each subset row, the cleaned row whose group contains an equal row, or -1.
    subset_matches: np.ndarray
    distinct_subset_rows: int


def feature_checks(inputs: FeatureInputs, progress: Progress) -> Results:
    """Measure NN-ball coverage and the edge-case share, with their details."""
    prepared, policy = inputs.prepared, inputs.policy
    if prepared.points is None:
        reason = _no_features_reason(prepared)
        checks = [
            _skip_coverage(policy, reason.format(check="feature coverage")),
            _skip_edge(policy, reason.format(check="edge-case share")),
        ]
        return checks, {}, {"feature_columns": prepared.featuriser.describe()}

    subset_points = prepared.featuriser.transform(inputs.subset)
    progress.start("subset_neighbours")
    distance, index, subset_labels = _nearest_subset_rows(
        inputs, subset_points, progress
    )
    coverage_check, metrics, details = _coverage(inputs, distance, index, progress)
    cluster_metrics, details["clusters"] = _clusters(inputs, subset_labels)
    metrics.update(cluster_metrics)
    details["feature_columns"] = prepared.featuriser.describe()
    progress.start("edge_cases")
    edge_check, edge_metrics, edge_details = _edges(inputs, subset_points, progress)
    metrics.update(edge_metrics)
    details.update(edge_details)
    return [coverage_check, edge_check], metrics, details


def _nearest_subset_rows(
    inputs: FeatureInputs, subset_points: np.ndarray, progress: Progress
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Find each cleaned row's nearest subset row, and each subset row's cluster.

    The subset rows are clustered by the original's centres, so the search can
    skip clusters that cannot contain a row's nearest subset row.
    """
    prepared = inputs.prepared
    assert prepared.points is not None and prepared.partition is not None
    centres = prepared.partition.centres
    centre_distances, subset_labels = nearest(subset_points, centres)
    subset_partition = Partition(
        prepared.partition.algorithm, centres, subset_labels, centre_distances
    )
    distance, index = cluster_nearest(
        prepared.points,
        prepared.partition.labels,
        subset_points,
        subset_partition,
        progress=progress,
    )
    return distance, index, subset_labels


def _no_features_reason(prepared: Prepared) -> str:
    if len(prepared.cleaning.kept) == 0:
        return (
            "{check} not measured: every row of the original is invalid (see "
            "details.cleaning), so no row is left to compare"
        )
    return (
        "{check} not measured: every column of the original is all missing, "
        "so there is no feature to compare"
    )


def _coverage(
    inputs: FeatureInputs, distance: np.ndarray, index: np.ndarray, progress: Progress
) -> tuple[Check, dict[str, Any], dict[str, Any]]:
    prepared, policy = inputs.prepared, inputs.policy
    assert prepared.points is not None and prepared.partition is not None
    member_kept = np.zeros(len(prepared.cleaning.kept), dtype=bool)
    member_kept[inputs.subset_matches[inputs.subset_matches >= 0]] = True
    keep_fraction = inputs.distinct_subset_rows / len(prepared.cleaning.kept)
    k = policy.coverage_neighbours or choose_k(
        keep_fraction, policy.min_coverage, policy.coverage_margin
    )
    progress.start("coverage")
    coverage, _ = ball_coverage(
        prepared.points,
        distance,
        member_kept,
        k=k,
        keep_fraction=keep_fraction,
        partition=prepared.partition,
        progress=progress,
    )
    check = _coverage_check(coverage, policy)
    worst_metrics, worst = worst_case(
        distance, index, coverage.median_radius, _describe_pair(inputs)
    )
    metrics: dict[str, Any] = {
        "feature_coverage": coverage.fraction,
        "feature_coverage_k": coverage.k,
        "feature_coverage_random": coverage.baseline,
        "feature_coverage_margin_over_random": coverage.fraction - coverage.baseline,
        **worst_metrics,
    }
    details: dict[str, Any] = {
        "feature_coverage": _coverage_details(coverage, policy),
        "covering_radius": worst,
    }
    details["representation"] = representation(
        index,
        prepared.cleaning.group,
        prepared.cleaning.weights,
        len(inputs.subset),
    )
    return check, metrics, details


def _coverage_check(coverage: BallCoverage, policy: Policy) -> Check:
    margin = coverage.fraction - coverage.baseline
    describe = (
        f"feature coverage {percent(coverage.fraction)} of cleaned original rows "
        f"have a subset row no farther than their {_ordinal(coverage.k)} nearest "
        f"neighbour (random subset of this size: {percent(coverage.baseline)}, "
        f"{'+' if margin >= 0 else ''}{points(margin)} over random)"
    )
    if coverage.k == 0:
        # One cleaned row has no neighbour, so it is covered only by its own group.
        describe = (
            "feature coverage: the nearest-neighbour test is not applicable "
            "because the cleaned original has 1 row, and "
            f"{percent(coverage.fraction)} of cleaned original rows are in the subset"
        )
    if coverage.interval is None:
        return compare(
            "feature_coverage",
            coverage.fraction,
            policy.min_coverage,
            ">=",
            unit="fraction",
            describe=describe,
            bound=percent(policy.min_coverage),
        )
    low, high = coverage.interval
    return compare_interval(
        "feature_coverage",
        coverage.fraction,
        coverage.interval,
        policy.min_coverage,
        ">=",
        unit="fraction",
        describe=(
            f"{describe}, estimated on {coverage.anchors:,} of {coverage.rows:,} rows"
        ),
        bound=percent(policy.min_coverage),
        shown_interval=f"[{percent(low)}, {percent(high)}]",
    )


def _coverage_details(coverage: BallCoverage, policy: Policy) -> dict[str, Any]:
    return {
        "k": coverage.k,
        "k_rule": (
            "set by policy coverage_neighbours"
            if policy.coverage_neighbours
            else K_RULE
        ),
        "keep_fraction": coverage.keep_fraction,
        "random_baseline": coverage.baseline,
        "margin_over_random": coverage.fraction - coverage.baseline,
        "measured_rows": coverage.anchors,
        "cleaned_rows": coverage.rows,
        "covered_rows": coverage.covered,
        "interval": None if coverage.interval is None else list(coverage.interval),
    }


def _ordinal(number: int) -> str:
    if 10 <= number % 100 <= 20:
        suffix = "th"
    else:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def _describe_pair(inputs: FeatureInputs) -> Any:
    kept = inputs.prepared.cleaning.kept

    def describe(row: int, subset_row: int) -> dict[str, Any]:
        original = row_example(inputs.original, int(kept[row]), inputs.columns)
        subset = row_example(inputs.subset, subset_row, inputs.columns)
        return {
            "original_row": original["row"],
            "subset_row": subset_row,
            "original_values": original["values"],
            "subset_values": subset["values"],
        }

    return describe


def _clusters(
    inputs: FeatureInputs, subset_labels: np.ndarray
) -> tuple[dict[str, Any], dict[str, Any]]:
    prepared = inputs.prepared
    assert prepared.partition is not None
    kept = prepared.cleaning.kept

    def example(row: int) -> dict[str, Any]:
        return row_example(inputs.original, int(kept[row]), inputs.columns)

    metrics, details = cluster_view(
        prepared.partition.labels,
        prepared.cleaning.weights,
        subset_labels,
        prepared.partition.n_clusters,
        example,
    )
    details["algorithm"] = prepared.partition.algorithm
    return metrics, details


def _edges(
    inputs: FeatureInputs, subset_points: np.ndarray, progress: Progress
) -> tuple[Check, dict[str, Any], dict[str, Any]]:
    prepared, policy = inputs.prepared, inputs.policy
    assert prepared.points is not None
    model = fit_edges(prepared.points, progress=progress)
    if model is None:
        count = len(prepared.points)
        reason = (
            f"edge-case share not measured: the cleaned original has {count} "
            f"row{'' if count == 1 else 's'}, fewer than the {MIN_ROWS} needed for "
            f"its top {percent(EDGE_SHARE, 0)} to hold a row"
        )
        return _skip_edge(policy, reason), {"edge_rows_original": 0}, {}
    if not model.fit_flags.any():
        reason = (
            "edge-case share not measured: every row of the cleaned original scores "
            "as unusual as the rest, so no row stands out as an edge case"
        )
        details = {"edge_cases": {"notes": model.notes}}
        return _skip_edge(policy, reason), {"edge_rows_original": 0}, details
    flags = edge_flags(model, subset_points, inputs.subset_matches)
    return _edge_check(inputs, model, flags)


def _edge_check(
    inputs: FeatureInputs, model: EdgeModel, flags: np.ndarray
) -> tuple[Check, dict[str, Any], dict[str, Any]]:
    policy = inputs.policy
    low, high = policy.edge_case_share
    matches = inputs.subset_matches
    share = float(flags.mean())
    original_edges = _original_edges(model)
    kept = len(np.unique(matches[flags & (matches >= 0)]))
    retention = kept / original_edges if original_edges else 0.0
    inside = low <= share <= high
    failing: CheckStatus = "failed" if policy.edge_case_gated else "warning"
    estimated = "about " if model.sampled else ""
    message = (
        f"edge-case share {percent(share)} of subset rows ({int(flags.sum())} of "
        f"{len(flags)}; subset keeps {kept} of {estimated}{original_edges} edge rows "
        f"of the cleaned original, {percent(retention)}) "
        f"{'within' if inside else 'outside'} {percent(low)}-{percent(high)}"
    )
    check = Check(
        name="edge_case_share",
        value=share,
        threshold=[low, high],
        comparator="within",
        unit="fraction",
        status="passed" if inside else failing,
        advisory=not policy.edge_case_gated,
        message=message,
    )
    metrics = {
        "edge_case_share": share,
        "edge_rows_original": original_edges,
        "edge_rows_kept": kept,
        "edge_retention": retention,
        "edge_rows_subset": int(flags.sum()),
        "subset_rows_not_in_original": int((matches < 0).sum()),
    }
    details = {
        "edge_cases": {
            "rule": (
                f"top {percent(EDGE_SHARE, 0)} of cleaned original rows by the mean "
                "rank of isolation-forest and local-outlier-factor scores"
            ),
            "fit_rows": len(model.fit_rows),
            "estimated": model.sampled,
            "gated": policy.edge_case_gated,
            "notes": model.notes,
        }
    }
    return check, metrics, details


def _original_edges(model: EdgeModel) -> int:
    flagged = int(model.fit_flags.sum())
    if not model.sampled:
        return flagged
    return round(flagged / len(model.fit_rows) * model.rows)


def _skip_coverage(policy: Policy, reason: str) -> Check:
    return skipped(
        "feature_coverage",
        comparator=">=",
        unit="fraction",
        threshold=policy.min_coverage,
        reason=reason,
    )


def _skip_edge(policy: Policy, reason: str) -> Check:
    return skipped(
        "edge_case_share",
        comparator="within",
        unit="fraction",
        threshold=list(policy.edge_case_share),
        reason=reason,
        advisory=not policy.edge_case_gated,
    )
