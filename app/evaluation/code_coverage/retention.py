"""Coverage retention: how much of the original run's coverage the subset run keeps.

The test suite runs once with the original data and once with the subset, and each
run writes a coverage report. ``line_coverage_retention`` is the number of lines
both runs covered over the number the original run covered, and
``branch_coverage_retention`` is the same for branch outcomes. Both gate against
``policy.min_coverage``. A check whose denominator would be zero (the original
covered nothing of that kind, or a report has no branch data) is skipped with the
reason. Rates are recomputed from the line and branch records; totals a report
states about itself are never read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.evaluation.code_coverage.compare import FileComparison, compare_reports
from app.evaluation.code_coverage.model import CoverageReport
from app.policy import Policy
from app.results import Check, Evaluation, compare, finite_or_none, percent, skipped

MAX_LISTED_PER_FILE = 200
MAX_LISTED_FILES = 500


@dataclass(frozen=True)
class _Totals:
    lines_original: int
    lines_both: int
    branches_original: int
    branches_both: int
    branches_by_count: int


def coverage_retention(
    original: CoverageReport, subset: CoverageReport, *, policy: Policy
) -> Evaluation:
    """Gate the subset run's coverage against the original run's.

    Returns a ``data`` evaluation with the checks ``line_coverage_retention`` and
    ``branch_coverage_retention`` (fractions, ``>= policy.min_coverage``). Its
    ``metrics`` give each run's counts and rates. Its ``details`` list the lost
    lines and branch outcomes per file, at most ``MAX_LISTED_PER_FILE`` each for the
    ``MAX_LISTED_FILES`` files that lost most lines. They also list the original's
    files that the subset's report does not contain.
    """
    comparisons = compare_reports(original, subset)
    totals = _sum(comparisons)
    checks = [
        _line_check(totals, policy),
        _branch_check(totals, original, subset, policy),
    ]
    metrics = {
        **_report_metrics(original, "original"),
        **_report_metrics(subset, "subset"),
        **_comparison_metrics(comparisons, totals),
        "line_coverage_retention": checks[0].value,
        "branch_coverage_retention": checks[1].value,
    }
    return Evaluation(
        kind="data", checks=checks, metrics=metrics, details=_details(comparisons)
    )


def _sum(comparisons: Sequence[FileComparison]) -> _Totals:
    return _Totals(
        lines_original=sum(c.lines_original for c in comparisons),
        lines_both=sum(c.lines_both for c in comparisons),
        branches_original=sum(c.branches_original for c in comparisons),
        branches_both=sum(c.branches_both for c in comparisons),
        branches_by_count=sum(c.branches_by_count for c in comparisons),
    )


def _line_check(totals: _Totals, policy: Policy) -> Check:
    name = "line_coverage_retention"
    if totals.lines_original == 0:
        return _skip(name, policy, "the original run covered no lines")
    return _retention_check(
        name,
        "line coverage retention",
        "lines the original run covered",
        totals.lines_both,
        totals.lines_original,
        policy,
    )


def _branch_check(
    totals: _Totals, original: CoverageReport, subset: CoverageReport, policy: Policy
) -> Check:
    name = "branch_coverage_retention"
    if original.branches_total() == 0:
        return _skip(
            name,
            policy,
            "the original report has no branch data; measure both runs with branch "
            "coverage (for coverage.py, `coverage run --branch`)",
        )
    if totals.branches_original == 0:
        return _skip(name, policy, "the original run took no branches")
    if subset.branches_total() == 0:
        return _skip(
            name,
            policy,
            "the subset report has no branch data; measure both runs with branch "
            "coverage (for coverage.py, `coverage run --branch`)",
        )
    return _retention_check(
        name,
        "branch coverage retention",
        "branches the original run took",
        totals.branches_both,
        totals.branches_original,
        policy,
    )


def _retention_check(
    name: str, label: str, what: str, kept: int, base: int, policy: Policy
) -> Check:
    value = kept / base
    return compare(
        name,
        value,
        policy.min_coverage,
        ">=",
        unit="fraction",
        describe=f"{label} {percent(value)} ({kept:,} of {base:,} {what})",
        bound=percent(policy.min_coverage),
    )


def _skip(name: str, policy: Policy, reason: str) -> Check:
    label = name.replace("_", " ")
    return skipped(
        name,
        comparator=">=",
        unit="fraction",
        threshold=policy.min_coverage,
        reason=f"{label} is not applicable: {reason}",
    )


def _report_metrics(report: CoverageReport, run: str) -> dict[str, Any]:
    lines_covered = report.lines_covered()
    lines_measured = report.lines_measured()
    branches_covered = report.branches_taken()
    branches_measured = report.branches_total()
    return {
        f"{run}_report_format": report.format,
        f"files_{run}": len(report.files),
        f"lines_measured_{run}": lines_measured,
        f"lines_covered_{run}": lines_covered,
        f"line_rate_{run}": _rate(lines_covered, lines_measured),
        f"branches_measured_{run}": branches_measured,
        f"branches_covered_{run}": branches_covered,
        f"branch_rate_{run}": _rate(branches_covered, branches_measured),
        f"uncounted_branch_lines_{run}": report.uncounted_branch_lines,
    }


def _comparison_metrics(
    comparisons: Sequence[FileComparison], totals: _Totals
) -> dict[str, Any]:
    paired = [c for c in comparisons if c.pair.subset is not None]
    return {
        "files_paired": len(paired),
        "files_paired_by_suffix": sum(
            1 for c in paired if c.pair.original != c.pair.subset
        ),
        "files_missing_from_subset": len(comparisons) - len(paired),
        "files_with_lost_lines": sum(1 for c in comparisons if c.lost_lines),
        "lines_covered_both": totals.lines_both,
        "lines_lost": totals.lines_original - totals.lines_both,
        "branches_covered_both": totals.branches_both,
        "branches_lost": totals.branches_original - totals.branches_both,
        "branches_compared_by_count": totals.branches_by_count,
    }


def _details(comparisons: Sequence[FileComparison]) -> dict[str, Any]:
    ranked = sorted(
        comparisons,
        key=lambda c: (-len(c.lost_lines), -len(c.lost_branches), c.pair.key),
    )
    lost_lines = {
        c.pair.key: c.lost_lines[:MAX_LISTED_PER_FILE] for c in ranked if c.lost_lines
    }
    lost_branches = {
        c.pair.key: c.lost_branches[:MAX_LISTED_PER_FILE]
        for c in ranked
        if c.lost_branches
    }
    missing = [c.pair.key for c in comparisons if c.pair.subset is None]
    renamed = {
        c.pair.original: c.pair.subset
        for c in comparisons
        if c.pair.subset is not None and c.pair.original != c.pair.subset
    }
    return {
        "lost_lines": dict(list(lost_lines.items())[:MAX_LISTED_FILES]),
        "lost_branches": dict(list(lost_branches.items())[:MAX_LISTED_FILES]),
        "files_missing_from_subset": missing[:MAX_LISTED_FILES],
        "files_paired_by_suffix": dict(list(renamed.items())[:MAX_LISTED_FILES]),
    }


def _rate(covered: int, measured: int) -> float | None:
    return finite_or_none(covered / measured) if measured else None
