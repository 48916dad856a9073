"""The data gate: how well a distilled subset covers the original dataset.

Rows are test cases. Scenario, pairwise and feature coverage gate against
``policy.min_coverage``. The share of unusual rows in the subset is advisory and
only warns when it falls outside ``policy.edge_case_share``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from app.errors import InputError
from app.evaluation.features import (
    EDGE_CONTAMINATION,
    Encoded,
    cluster_coverage,
    column_kind,
    edge_rows,
    encode,
)
from app.evaluation.readers import suggest
from app.evaluation.scenarios import (
    MAX_MISSING_PAIRS,
    pairwise_coverage,
    scenario_coverage,
)
from app.policy import Policy
from app.results import Check, CheckStatus, Evaluation, compare, percent, skipped

_LISTED_COLUMNS = 50

Part = tuple[Check, dict[str, Any], dict[str, Any]]


def evaluate_data(
    original: pd.DataFrame,
    subset: pd.DataFrame,
    *,
    policy: Policy,
    scenario_columns: Sequence[str] = (),
    label_column: str | None = None,
) -> Evaluation:
    """Measure how well ``subset`` covers ``original`` and gate the result.

    ``label_column`` counts as one more scenario column, so a subset that drops a
    class loses scenarios. Checks that cannot be measured are skipped with the
    reason: scenario coverage needs a scenario column, pairwise coverage two, and
    the feature checks need a column that is not all missing in the original.

    Raises:
        InputError: a table has no rows, the column sets differ, a named column
            does not exist, a cell contains a nested value, or a column is numeric in
            one table and not in the other.
    """
    columns = _scenario_columns(scenario_columns, label_column)
    _validate(original, subset, columns, label_column)
    subset = subset[list(original.columns)]
    metrics: dict[str, Any] = {
        "original_rows": len(original),
        "subset_rows": len(subset),
        "subset_fraction": len(subset) / len(original),
    }
    details: dict[str, Any] = {"scenario_columns": columns}
    checks = []
    encoded = encode(original, subset)
    parts = [
        _scenario_part(original, subset, columns, policy),
        _pairwise_part(original, subset, columns, policy),
        _feature_part(encoded, policy),
        _edge_part(original, subset, encoded, policy),
    ]
    for check, part_metrics, part_details in parts:
        checks.append(check)
        metrics.update(part_metrics)
        details.update(part_details)
    return Evaluation(kind="data", checks=checks, metrics=metrics, details=details)


def _scenario_columns(names: Sequence[str], label_column: str | None) -> list[str]:
    # A bare string is one column name, not a sequence of one-letter names.
    listed = [names] if isinstance(names, str) else list(names)
    if label_column is not None:
        listed.append(label_column)
    return list(dict.fromkeys(listed))


def _validate(
    original: pd.DataFrame,
    subset: pd.DataFrame,
    columns: list[str],
    label_column: str | None,
) -> None:
    for frame, field in ((original, "original"), (subset, "subset")):
        if len(frame) == 0:
            raise InputError(
                f"{field} has no rows; upload a table with at least one row",
                field=field,
                value=0,
            )
        duplicated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
        if duplicated:
            raise InputError(
                f"{field} has duplicate column names {duplicated}; give every "
                "column a unique name",
                field=field,
                value=duplicated,
            )
    _require_same_columns(original, subset)
    scenario_names = [c for c in columns if c != label_column]
    _require_columns(scenario_names, original, "scenario_columns")
    if label_column is not None:
        _require_columns([label_column], original, "label_column")
    for frame, field in ((original, "original"), (subset, "subset")):
        _reject_nested(frame, field)
    _require_same_kinds(original, subset)


def _require_same_columns(original: pd.DataFrame, subset: pd.DataFrame) -> None:
    missing = [c for c in original.columns if c not in set(subset.columns)]
    extra = [c for c in subset.columns if c not in set(original.columns)]
    if not missing and not extra:
        return
    problems = []
    if missing:
        problems.append(f"missing from subset: {_listing(missing)}")
    if extra:
        problems.append(f"not in original: {_listing(extra)}")
    raise InputError(
        f"subset must have the same columns as original ({'; '.join(problems)}); "
        "select the subset's rows from the original without adding, dropping or "
        "renaming columns",
        field="subset",
        value=list(subset.columns),
    )


def _require_columns(names: list[str], original: pd.DataFrame, field: str) -> None:
    available = [str(c) for c in original.columns]
    unknown = [name for name in names if name not in set(original.columns)]
    if not unknown:
        return
    hint = suggest(str(unknown[0]), available)
    shown = repr(unknown[0]) if field == "label_column" else _listing(unknown)
    raise InputError(
        f"{field} {shown} not found in original; available columns: "
        f"{_listing(available)}{hint}",
        field=field,
        value=unknown if field == "scenario_columns" else unknown[0],
    )


def _reject_nested(frame: pd.DataFrame, field: str) -> None:
    """Reject list, dict and array cells, which cannot be compared as one value."""
    for column in frame.columns:
        if frame[column].dtype != object:
            continue
        nested = frame[column].map(_is_nested).to_numpy(dtype=bool)
        if nested.any():
            first = int(np.flatnonzero(nested)[0])
            raise InputError(
                f"{field} column {column!r} contains nested values (lists, objects or "
                f"arrays) in {int(nested.sum())} rows, first at row {first}; "
                "flatten them into separate columns or drop the column",
                field=field,
                value=str(column),
            )


def _is_nested(value: Any) -> bool:
    return isinstance(value, list | dict | tuple | set | np.ndarray)


def _require_same_kinds(original: pd.DataFrame, subset: pd.DataFrame) -> None:
    """Reject a column that contains numbers in one table and text in the other."""
    mismatched = []
    for column in original.columns:
        if original[column].isna().all() or subset[column].isna().all():
            continue
        kinds = column_kind(original[column]), column_kind(subset[column])
        if kinds[0] != kinds[1]:
            mismatched.append(
                f"{column!r} ({original[column].dtype} in original, "
                f"{subset[column].dtype} in subset)"
            )
    if mismatched:
        raise InputError(
            f"subset columns differ in type from the original: {', '.join(mismatched)};"
            " save both tables in the same format with the same column types, for"
            " example as Parquet",
            field="subset",
            value=mismatched,
        )


def _scenario_part(
    original: pd.DataFrame, subset: pd.DataFrame, columns: list[str], policy: Policy
) -> Part:
    name = "scenario_coverage"
    if not columns:
        reason = (
            "scenario coverage not measured: no scenario columns or label column "
            "given; pass scenario_columns to measure it"
        )
        return _skip(name, policy, reason), {}, {}
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


def _pairwise_part(
    original: pd.DataFrame, subset: pd.DataFrame, columns: list[str], policy: Policy
) -> Part:
    name = "pairwise_coverage"
    if len(columns) < 2:
        reason = (
            f"pairwise coverage not measured: it needs at least 2 scenario columns "
            f"(the label column counts as one), got {len(columns)}"
        )
        return _skip(name, policy, reason), {}, {}
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


def _feature_part(encoded: Encoded | None, policy: Policy) -> Part:
    name = "feature_coverage"
    if encoded is None:
        return (
            _skip(name, policy, _NO_FEATURES.format(check="feature coverage")),
            {},
            {},
        )
    result = cluster_coverage(encoded)
    check = compare(
        name,
        result.fraction,
        policy.min_coverage,
        ">=",
        unit="fraction",
        describe=(
            f"feature coverage {percent(result.fraction)} of original rows in "
            f"clusters the subset reaches ({result.clusters_covered} of "
            f"{result.clusters} clusters)"
        ),
        bound=percent(policy.min_coverage),
    )
    metrics = {
        "clusters": result.clusters,
        "clusters_covered": result.clusters_covered,
        "original_rows_in_covered_clusters": result.rows_covered,
    }
    details = {
        "empty_clusters": result.empty_clusters,
        "clustering": {
            "algorithm": result.algorithm,
            "n_clusters": result.n_clusters,
            "rule": "k = clamp(round(sqrt(rows / 2)), 2, 256), at most distinct rows",
        },
        "feature_columns": {
            "numeric": encoded.numeric,
            "categorical": encoded.categorical,
            "excluded_all_missing": encoded.excluded,
        },
    }
    return check, metrics, details


def _edge_part(
    original: pd.DataFrame,
    subset: pd.DataFrame,
    encoded: Encoded | None,
    policy: Policy,
) -> Part:
    name = "edge_case_share"
    low, high = policy.edge_case_share
    if encoded is None:
        reason = _NO_FEATURES.format(check="edge-case share")
        return _skip_edge(name, policy, reason), {}, {}
    result = edge_rows(original, subset, encoded)
    if result.original_flagged == 0:
        reason = (
            "edge-case share not measured: the isolation forest flagged no row of "
            "the original as unusual, which happens when rows repeat or are "
            "constant so that the lowest anomaly scores tie with the rest"
        )
        return _skip_edge(name, policy, reason), {"edge_rows_original": 0}, {}

    share = result.share
    inside = low <= share <= high
    status: CheckStatus = "passed" if inside else "warning"
    message = (
        f"edge-case share {percent(share)} of subset rows ({result.subset_flagged} "
        f"of {result.subset_rows}; subset keeps {result.kept} of "
        f"{result.original_flagged} unusual original rows) "
        f"{'within' if inside else 'outside'} {percent(low)}-{percent(high)}"
    )
    check = Check(
        name=name,
        value=share,
        threshold=[low, high],
        comparator="within",
        unit="fraction",
        status=status,
        advisory=True,
        message=message,
    )
    metrics = {
        "edge_case_share": share,
        "edge_rows_original": result.original_flagged,
        "edge_rows_kept": result.kept,
        "edge_rows_subset": result.subset_flagged,
        "subset_rows_not_in_original": result.subset_rows_unmatched,
    }
    return check, metrics, {"edge_contamination": EDGE_CONTAMINATION}


_NO_FEATURES = (
    "{check} not measured: every column of the original is all missing, "
    "so there is no feature to compare"
)


def _skip(name: str, policy: Policy, reason: str) -> Check:
    return skipped(
        name,
        comparator=">=",
        unit="fraction",
        threshold=policy.min_coverage,
        reason=reason,
    )


def _skip_edge(name: str, policy: Policy, reason: str) -> Check:
    return skipped(
        name,
        comparator="within",
        unit="fraction",
        threshold=list(policy.edge_case_share),
        reason=reason,
        advisory=True,
    )


def _listing(names: Sequence[Any]) -> str:
    """Format column names for a message, listing at most 50 of them."""
    listed = [str(name) for name in names[:_LISTED_COLUMNS]]
    more = len(names) - len(listed)
    return f"{listed}" + (f" and {more} more" if more > 0 else "")
