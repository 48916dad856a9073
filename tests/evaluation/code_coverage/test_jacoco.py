"""Tests for reading JaCoCo XML reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.errors import InputError
from app.evaluation.code_coverage import coverage_retention, read_coverage
from app.evaluation.code_coverage.model import CoverageReport
from app.policy import Policy

HEADER = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<!DOCTYPE report PUBLIC "-//JACOCO//DTD Report 1.1//EN" "report.dtd">'
)

PAYMENT_LINES = (
    '<line nr="3" mi="0" ci="3" mb="0" cb="0"/>'
    '<line nr="5" mi="0" ci="4" mb="1" cb="1"/>'
    '<line nr="6" mi="5" ci="0" mb="0" cb="0"/>'
    '<line nr="8" mi="0" ci="2" mb="0" cb="2"/>'
    '<line nr="9" ci="1"/>'
    '<line nr="12" mi="0" ci="0"/>'
)


def jacoco(lines: str = PAYMENT_LINES) -> str:
    """Return a report with counters at every level, as JaCoCo writes them."""
    counters = (
        '<counter type="INSTRUCTION" missed="5" covered="10"/>'
        '<counter type="LINE" missed="1" covered="4"/>'
        '<counter type="BRANCH" missed="1" covered="3"/>'
    )
    return (
        f'{HEADER}<report name="shop">'
        '<sessioninfo id="ci-1" start="1700000000000" dump="1700000001000"/>'
        '<group name="core"><package name="org/shop">'
        '<class name="org/shop/Payment" sourcefilename="Payment.java">'
        '<method name="settle" desc="(I)V" line="3">'
        f"{counters}</method>{counters}</class>"
        f'<sourcefile name="Payment.java">{lines}{counters}</sourcefile>'
        f"{counters}</package>{counters}</group>"
        '<package name=""><sourcefile name="Main.java">'
        '<line nr="1" mi="0" ci="2"/></sourcefile></package>'
        f"{counters}</report>"
    )


def read(tmp_path: Path, text: str, name: str = "jacoco.xml") -> CoverageReport:
    path = tmp_path / name
    path.write_text(text)
    return read_coverage(path, field="subset", filename="jacoco.xml")


def test_jacoco_lines_from_sourcefile_only(tmp_path: Path) -> None:
    report = read(tmp_path, jacoco())
    payment = report.files["org/shop/Payment.java"]
    assert report.format == "jacoco"
    assert payment.covered_lines.tolist() == [3, 5, 8, 9]
    assert payment.uncovered_lines.tolist() == [6]
    assert report.files["Main.java"].covered_lines.tolist() == [1]
    assert report.lines_covered() == 5
    assert report.lines_measured() == 6


def test_jacoco_branch_counts_never_summed_from_counters(tmp_path: Path) -> None:
    report = read(tmp_path, jacoco())
    branches = report.files["org/shop/Payment.java"].branches
    assert report.branches_total() == 4
    assert report.branches_taken() == 3
    assert (branches[5].total, branches[5].taken) == (2, 1)
    assert (branches[8].total, branches[8].taken) == (2, 2)
    assert branches[5].taken_names is None


def test_jacoco_retention_counts_branches(tmp_path: Path) -> None:
    original = read(tmp_path, jacoco(), "a.xml")
    fewer = PAYMENT_LINES.replace(
        '<line nr="8" mi="0" ci="2" mb="0" cb="2"/>',
        '<line nr="8" mi="0" ci="2" mb="1" cb="1"/>',
    ).replace('<line nr="3" mi="0" ci="3" mb="0" cb="0"/>', '<line nr="3" mi="3"/>')
    subset = read(tmp_path, jacoco(fewer), "b.xml")
    evaluation = coverage_retention(original, subset, policy=Policy())
    assert evaluation.details["lost_lines"] == {"org/shop/Payment.java": [3]}
    assert evaluation.details["lost_branches"] == {
        "org/shop/Payment.java": ["8 (1 of 2 branches)"]
    }
    assert evaluation.metrics["branches_covered_both"] == 2
    assert evaluation.metrics["branches_compared_by_count"] == 3


def test_jacoco_sourcefile_without_name(tmp_path: Path) -> None:
    text = jacoco().replace('<sourcefile name="Payment.java">', "<sourcefile>")
    with pytest.raises(InputError) as info:
        read(tmp_path, text)
    assert info.value.field == "subset"
    assert str(info.value) == (
        "subset 'jacoco.xml' (JaCoCo XML) has a <sourcefile> element without a name "
        "attribute in package 'org/shop'; every sourcefile must name its file"
    )


def test_jacoco_invalid_line_count(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        read(tmp_path, jacoco('<line nr="4" mi="0" ci="many"/>'))
    assert str(info.value) == (
        "subset 'jacoco.xml' (JaCoCo XML) has an invalid <line nr='4'> ci: 'many', "
        "expected a whole number of at least 0; upload the report as the coverage "
        "tool wrote it"
    )


def test_jacoco_external_dtd_is_not_loaded(tmp_path: Path) -> None:
    (tmp_path / "report.dtd").write_text('<!ENTITY leak "secret">')
    text = jacoco().replace('ci="4"', 'ci="4" note="&leak;"')
    with pytest.raises(InputError) as info:
        read(tmp_path, text)
    assert "is not well-formed XML (undefined entity" in str(info.value)
