"""Tests for recognising a coverage report's format from its content."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from app.errors import InputError, UnsupportedFormatError
from app.evaluation.code_coverage import read_coverage
from app.evaluation.code_coverage.detect import detect_format
from tests.evaluation.code_coverage.conftest import Reports

SUPPORTED = "Cobertura XML, JaCoCo XML, lcov tracefile, coverage.py JSON"


def stored(tmp_path: Path, content: bytes) -> Path:
    """Write content without a suffix, as the artifact store names uploads."""
    path = tmp_path / "upload"
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [("xml", "cobertura"), ("json", "coverage.py json"), ("lcov", "lcov")],
)
def test_detect_real_reports_ignore_file_name(
    shop_reports: Reports, tmp_path: Path, fmt: str, expected: str
) -> None:
    path = stored(tmp_path, shop_reports["original"][fmt].read_bytes())
    assert detect_format(path, field="original", source="original") == expected
    report = read_coverage(path, field="original", filename="misleading.csv")
    assert report.format == expected


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'\xef\xbb\xbf<?xml version="1.0"?>\n<coverage/>', "cobertura"),
        (b"<!-- written by gcovr -->\n<coverage></coverage>", "cobertura"),
        (
            b'<?xml version="1.0"?><!DOCTYPE report PUBLIC "-//JACOCO//DTD Report '
            b'1.1//EN" "report.dtd"><report name="x"/>',
            "jacoco",
        ),
        (b"\n\n#comment\nSF:a.c\nDA:1,1\nend_of_record\n", "lcov"),
        (b"TN:\nSF:a.c\n", "lcov"),
        (b'  {"meta": {}, "files": {}}', "coverage.py json"),
    ],
)
def test_detect_format_from_first_bytes(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    assert detect_format(stored(tmp_path, content), field="f", source="f") == expected


def test_detect_unknown_lists_formats(tmp_path: Path) -> None:
    path = stored(tmp_path, b"name,covered\nshop.py,12\n")
    with pytest.raises(UnsupportedFormatError) as info:
        read_coverage(path, field="subset", filename="cov.csv")
    assert info.value.field == "subset"
    assert str(info.value) == (
        "subset 'cov.csv' is not a supported coverage report: it starts with "
        f"'name,covered\\nshop.py,12\\n'; supported formats are {SUPPORTED}; upload "
        "the report file itself"
    )


def test_detect_other_xml_root(tmp_path: Path) -> None:
    path = stored(tmp_path, b'<?xml version="1.0"?><testsuites tests="3"/>')
    with pytest.raises(UnsupportedFormatError) as info:
        read_coverage(path, field="original")
    assert str(info.value) == (
        "original is not a supported coverage report: it is XML with root element "
        f"<testsuites>; supported formats are {SUPPORTED}; expected <coverage> "
        "(Cobertura) or <report> (JaCoCo)"
    )


def test_detect_gzip_report(tmp_path: Path) -> None:
    path = stored(tmp_path, gzip.compress(b"SF:a.c\nDA:1,1\nend_of_record\n"))
    with pytest.raises(UnsupportedFormatError) as info:
        read_coverage(path, field="original", filename="lcov.info.gz")
    assert str(info.value) == (
        "original 'lcov.info.gz' is not a supported coverage report: it is "
        f"gzip-compressed; supported formats are {SUPPORTED}; decompress it first"
    )


def test_detect_empty_file(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        read_coverage(stored(tmp_path, b""), field="original", filename="cov.xml")
    assert not isinstance(info.value, UnsupportedFormatError)
    assert str(info.value) == (
        "original 'cov.xml' is empty (0 bytes); upload the coverage report of the "
        f"run, in one of: {SUPPORTED}"
    )
