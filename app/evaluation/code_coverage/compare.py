"""Comparing two runs file by file: what the original covered that the subset did not.

Lines are compared as sets. A branch outcome counts as kept when both runs took it.
How that is decided depends on what the two formats record for a line:

1. Both name the outcomes taken (coverage.py JSON, lcov): set intersection.
2. Both name the outcomes missed, or took them all, and agree on their number
   (Cobertura from coverage.py): kept = total - |missed by either run|, and the
   outcomes lost are the ones only the subset missed.
3. Otherwise (JaCoCo, other Cobertura writers, or two different notations): kept =
   min(taken by original, taken by subset). This assumes the subset run took a
   subset of the original run's outcomes, which holds when the subset's test cases
   are among the original's and the tests are deterministic. Such outcomes are
   counted in ``branches_by_count``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from app.evaluation.code_coverage.model import (
    BranchNotation,
    CoverageReport,
    FileCoverage,
    LineBranches,
)
from app.evaluation.code_coverage.paths import FilePair, pair_files

_DIGITS = re.compile(r"(\d+)")


@dataclass
class FileComparison:
    """The comparison of one original file with its counterpart in the subset run."""

    pair: FilePair
    lines_original: int = 0
    lines_both: int = 0
    lost_lines: list[int] = field(default_factory=list)
    branches_original: int = 0
    branches_both: int = 0
    branches_by_count: int = 0
    lost_branches: list[str] = field(default_factory=list)


def compare_reports(
    original: CoverageReport, subset: CoverageReport
) -> list[FileComparison]:
    """Compare every file of ``original`` with its counterpart in ``subset``.

    Files only in ``subset`` are left out: nothing the original covered is in them.
    """
    notation = original.branch_notation
    if subset.branch_notation != notation:
        notation = "count"
    original_index = {name: index for index, name in enumerate(original.names)}
    subset_index = {name: index for index, name in enumerate(subset.names)}
    result = []
    for pair in pair_files(original.names, subset.names):
        if pair.original is None:
            continue
        first = original.columns.segment(original_index[pair.original])
        second = None
        if pair.subset is not None:
            second = subset.columns.segment(subset_index[pair.subset])
        result.append(_compare_file(pair, first, second, notation))
    return result


def _compare_file(
    pair: FilePair,
    original: FileCoverage,
    subset: FileCoverage | None,
    notation: BranchNotation,
) -> FileComparison:
    covered = original.covered_lines
    kept = subset.covered_lines if subset is not None else np.empty(0, np.uint32)
    comparison = FileComparison(
        pair=pair,
        lines_original=len(covered),
        lines_both=len(np.intersect1d(covered, kept, assume_unique=True)),
        lost_lines=np.setdiff1d(covered, kept, assume_unique=True).tolist(),
    )
    subset_branches = subset.branches if subset is not None else {}
    for line, outcomes in original.branches.items():
        if outcomes.taken == 0:
            continue
        counterpart = subset_branches.get(line)
        both, lost, by_count = _compare_line(line, outcomes, counterpart, notation)
        comparison.branches_original += outcomes.taken
        comparison.branches_both += both
        comparison.branches_by_count += outcomes.taken if by_count else 0
        comparison.lost_branches.extend(lost)
    return comparison


def _compare_line(
    line: int,
    original: LineBranches,
    subset: LineBranches | None,
    notation: BranchNotation,
) -> tuple[int, list[str], bool]:
    """Return the outcomes both runs took, the lost outcomes, and whether by count."""
    if subset is None:
        subset = LineBranches(total=original.total, taken=0)
    named = notation != "count"
    if named and original.taken_names is not None and subset.taken_names is not None:
        lost = original.taken_names - subset.taken_names
        return original.taken - len(lost), _listed(line, lost, notation), False
    missed_original, missed_subset = original.missed(), subset.missed()
    if named and missed_original is not None and missed_subset is not None:
        missed_either = missed_original | missed_subset
        if original.total == subset.total and len(missed_either) <= original.total:
            lost = missed_subset - missed_original
            kept = original.total - len(missed_either)
            return kept, _listed(line, lost, notation), False
    both = min(original.taken, subset.taken)
    lost_count = original.taken - both
    if not lost_count:
        return both, [], True
    return both, [f"{line} ({lost_count} of {original.total} branches)"], True


def _listed(line: int, names: frozenset[str], notation: BranchNotation) -> list[str]:
    """Return outcome names as results list them, ``12->14`` or ``12:0:1``."""
    separator = "->" if notation == "arc" else ":"
    return [f"{line}{separator}{name}" for name in sorted(names, key=_natural_key)]


def _natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Order ``9`` before ``10`` by comparing digit runs as numbers."""
    parts = _DIGITS.split(name)
    # re.split with one group puts the digit runs at the odd positions.
    return tuple(
        (1, int(part)) if index % 2 else (0, part) for index, part in enumerate(parts)
    )
