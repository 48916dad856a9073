"""Tests for reading lcov tracefiles."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.errors import InputError
from app.evaluation.code_coverage import coverage_retention, read_coverage
from app.evaluation.code_coverage.model import CoverageReport
from app.policy import Policy

# lcov 2.x writes VER, FNL/FNA and MCDC records. The first record merges with the
# third. A BRDA taken count of '-' means the block never ran.
TRACEFILE = """\
#generated for the shop tests
TN:unit
SF:/work/shop/src/payment.c
VER:3f2a9c
FNL:0,3,14
FNA:0,4,settle
FNF:1
FNH:1
DA:3,4
DA:4,4
DA:5,0
DA:9,0
BRDA:4,0,0,4
BRDA:4,0,1,0
BRDA:9,e0,0,-
BRDA:9,e0,1,-
MCDC:4,2,t,1,0,amount > 0
MCDC:4,2,f,0,0,amount > 0
MCF:2
MCH:1
BRF:4
BRH:1
LF:4
LH:2
end_of_record
TN:integration
SF:/work/shop/src/cart.c
DA:1,1
XYZ:new record type from a later lcov
end_of_record
TN:integration
SF:/work/shop/src/payment.c
DA:5,2
DA:9,0
BRDA:4,0,1,2
BRDA:7,0,check(a, b),1
BRDA:7,0,!check(a, b),0
end_of_record
"""


def read(tmp_path: Path, text: str, name: str = "report.info") -> CoverageReport:
    path = tmp_path / name
    path.write_text(text)
    return read_coverage(path, field="original", filename="coverage.info")


def test_lcov_merges_records_of_one_file(tmp_path: Path) -> None:
    report = read(tmp_path, TRACEFILE)
    payment = report.files["work/shop/src/payment.c"]
    assert report.format == "lcov"
    assert payment.covered_lines.tolist() == [3, 4, 5]
    assert payment.uncovered_lines.tolist() == [9]
    assert report.files["work/shop/src/cart.c"].covered_lines.tolist() == [1]


def test_lcov_branch_labels_and_merge(tmp_path: Path) -> None:
    branches = read(tmp_path, TRACEFILE).files["work/shop/src/payment.c"].branches
    assert branches[4].taken_names == {"0:0", "0:1"}
    assert branches[4].missed_names == frozenset()
    assert branches[7].taken_names == {"0:check(a, b)"}
    assert branches[7].missed_names == {"0:!check(a, b)"}


def test_lcov_dash_counts_as_not_taken(tmp_path: Path) -> None:
    branches = read(tmp_path, TRACEFILE).files["work/shop/src/payment.c"].branches
    assert branches[9].total == 2
    assert branches[9].taken == 0
    assert branches[9].missed_names == {"e0:0", "e0:1"}


def test_lcov_rates_ignore_summary_records(tmp_path: Path) -> None:
    report = read(tmp_path, TRACEFILE)
    assert report.lines_measured() == 5
    assert report.lines_covered() == 4
    assert report.branches_total() == 6
    assert report.branches_taken() == 3


def test_lcov_retention_names_lost_outcome(tmp_path: Path) -> None:
    original = read(tmp_path, TRACEFILE, "a.info")
    subset_text = TRACEFILE.replace("BRDA:4,0,1,2\n", "BRDA:4,0,1,-\n")
    subset = read(tmp_path, subset_text, "b.info")
    evaluation = coverage_retention(original, subset, policy=Policy())
    assert evaluation.details["lost_branches"] == {"work/shop/src/payment.c": ["4:0:1"]}
    assert evaluation.details["lost_lines"] == {}


def test_lcov_final_record_without_end(tmp_path: Path) -> None:
    report = read(tmp_path, "SF:a.py\nDA:1,1\nDA:2,0\n")
    assert report.files["a.py"].covered_lines.tolist() == [1]


def test_lcov_crlf_line_endings(tmp_path: Path) -> None:
    report = read(tmp_path, "TN:\r\nSF:a.py\r\nDA:1,1\r\nend_of_record\r\n")
    assert report.files["a.py"].covered_lines.tolist() == [1]


def test_lcov_record_before_source_file(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        read(tmp_path, "TN:\nDA:1,1\nSF:a.py\nend_of_record\n")
    assert info.value.field == "original"
    assert str(info.value) == (
        "original 'coverage.info' (lcov tracefile) has a DA record on line 2 before "
        "any SF record; each record must start with SF:<source file>"
    )


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (
            "DA:7",
            "has an invalid DA record on line 2 (DA:7), expected DA:<line>,<count>",
        ),
        (
            "BRDA:7,0",
            "has an invalid BRDA record on line 2 (BRDA:7,0), expected "
            "BRDA:<line>,<block>,<branch>,<taken>",
        ),
        (
            "DA:seven,1",
            "has an invalid line number in the DA record on line 2: 'seven', expected "
            "a whole number from 0",
        ),
        (
            "DA:7,-1",
            "has an invalid execution count in the DA record on line 2: '-1', "
            "expected a whole number of at least 0",
        ),
        (
            "BRDA:7,0,1,often",
            "has an invalid taken count in the BRDA record on line 2: 'often', "
            "expected a whole number",
        ),
    ],
)
def test_lcov_malformed_record(tmp_path: Path, record: str, message: str) -> None:
    with pytest.raises(InputError) as info:
        read(tmp_path, f"SF:a.py\n{record}\nend_of_record\n")
    assert str(info.value).startswith("original 'coverage.info' (lcov tracefile) ")
    assert message in str(info.value)
    assert "as the coverage tool wrote it" in str(info.value)


def test_lcov_record_without_file_name(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        read(tmp_path, "SF:\nDA:1,1\nend_of_record\n")
    assert str(info.value) == (
        "original 'coverage.info' (lcov tracefile) has a file record without a file "
        "name (''); every record must name its source file"
    )
