"""Tests for reading coverage.py JSON reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.errors import InputError, UnsupportedFormatError
from app.evaluation.code_coverage import coverage_retention, read_coverage
from app.evaluation.code_coverage.model import CoverageReport
from app.policy import Policy


def report_json(files: dict[str, Any], *, branch: bool = True) -> dict[str, Any]:
    return {
        "meta": {"format": 3, "version": "7.18.0", "branch_coverage": branch},
        "files": files,
        "totals": {"covered_lines": 999, "num_statements": 1000},
    }


def read(tmp_path: Path, data: Any, name: str = "report.json") -> CoverageReport:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return read_coverage(path, field="original", filename="coverage.json")


def test_coveragepy_json_without_branches(tmp_path: Path) -> None:
    files = {"pkg/m.py": {"executed_lines": [1, 2, 5], "missing_lines": [3]}}
    report = read(tmp_path, report_json(files, branch=False))
    assert report.format == "coverage.py json"
    assert report.files["pkg/m.py"].covered_lines.tolist() == [1, 2, 5]
    assert report.files["pkg/m.py"].uncovered_lines.tolist() == [3]
    assert report.branches_total() == 0
    evaluation = coverage_retention(report, report, policy=Policy())
    assert evaluation.checks[1].status == "skipped"
    assert evaluation.checks[0].value == 1.0


def test_coveragepy_json_branch_arcs(tmp_path: Path) -> None:
    files = {
        "m.py": {
            "executed_lines": [2, 4, 6],
            "missing_lines": [3],
            "executed_branches": [[2, 4], [6, -1]],
            "missing_branches": [[2, 3], [6, 8]],
        }
    }
    branches = read(tmp_path, report_json(files)).files["m.py"].branches
    assert branches[2].taken_names == {"4"}
    assert branches[2].missed_names == {"3"}
    assert branches[6].taken_names == {"exit"}
    assert branches[6].total == 2


def test_coveragepy_json_other_json_unsupported(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFormatError) as info:
        read(tmp_path, {"coverage": 0.9, "lines": []})
    assert info.value.field == "original"
    assert str(info.value) == (
        "original 'coverage.json' is JSON but not a coverage.py JSON report: expected "
        "an object with \"meta\" and \"files\" objects, got ['coverage', 'lines']; "
        "write the report with `coverage json`"
    )


def test_coveragepy_json_invalid_json(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text('{"meta": {}, "files": {')
    with pytest.raises(InputError) as info:
        read_coverage(path, field="subset")
    assert str(info.value).startswith(
        "subset (coverage.py JSON) is not valid JSON (Expecting property name"
    )
    assert str(info.value).endswith("; upload the file `coverage json` wrote")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"executed_lines": [1, "2"]},
            "has files[\"m.py\"].executed_lines = [1, '2'], expected a list of line "
            "numbers from 0 to 4294967295",
        ),
        (
            {"executed_lines": [1], "missing_lines": [True]},
            'has files["m.py"].missing_lines = [True], expected a list of line numbers',
        ),
        (
            {"executed_lines": [1], "executed_branches": [[1, 2, 3]]},
            'has files["m.py"].executed_branches containing [1, 2, 3], expected '
            "[from line, to line] pairs",
        ),
        (
            {"executed_lines": [1], "missing_branches": [[-1, 2]]},
            'has files["m.py"].missing_branches containing [-1, 2], expected',
        ),
        ([1, 2], 'has files["m.py"] of type list, expected an object'),
    ],
)
def test_coveragepy_json_malformed_entry(
    tmp_path: Path, entry: Any, message: str
) -> None:
    with pytest.raises(InputError) as info:
        read(tmp_path, report_json({"m.py": entry}))
    assert str(info.value).startswith("original 'coverage.json' (coverage.py JSON) ")
    assert message in str(info.value)


def test_coveragepy_json_no_files_rejected(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        read(tmp_path, report_json({}))
    assert "contains no line coverage data" in str(info.value)


def test_coveragepy_json_deep_nesting_rejected(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text('{"meta": ' + "[" * 200_000 + "]" * 200_000 + "}")
    with pytest.raises(InputError) as info:
        read_coverage(path, field="original")
    assert str(info.value).startswith("original (coverage.py JSON) is not valid JSON (")
