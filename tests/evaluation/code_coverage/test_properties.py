"""Property tests: any bytes give a report or an InputError, never another error."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.errors import InputError
from app.evaluation.code_coverage import read_coverage
from app.evaluation.code_coverage.cobertura import read_cobertura
from app.evaluation.code_coverage.coveragepy_json import read_coveragepy_json
from app.evaluation.code_coverage.jacoco import read_jacoco
from app.evaluation.code_coverage.lcov import read_lcov
from app.evaluation.code_coverage.model import CoverageReport

COBERTURA = (
    b'<?xml version="1.0" ?><coverage><sources><source>/src</source></sources>'
    b'<packages><package name="p"><classes><class name="m" filename="p/m.py"><lines>'
    b'<line number="1" hits="1"/><line number="2" hits="0" branch="true" '
    b'condition-coverage="50% (1/2)" missing-branches="3"/></lines></class>'
    b"</classes></package></packages></coverage>"
)
JACOCO = (
    b'<?xml version="1.0"?><!DOCTYPE report PUBLIC "-//JACOCO//DTD Report 1.1//EN" '
    b'"report.dtd"><report name="r"><package name="org/a"><sourcefile name="A.java">'
    b'<line nr="3" mi="0" ci="2" mb="1" cb="1"/><counter type="LINE" missed="0" '
    b'covered="1"/></sourcefile></package></report>'
)
LCOV = (
    b"TN:\nSF:/src/a.c\nVER:1\nFNL:0,1,4\nFNA:0,1,main\nDA:1,1\nDA:2,0\n"
    b"BRDA:2,0,0,-\nBRDA:2,0,1,3\nLF:2\nLH:1\nend_of_record\n"
)
COVERAGE_JSON = (
    b'{"meta": {"format": 3, "branch_coverage": true}, "files": {"a.py": '
    b'{"executed_lines": [1, 2], "missing_lines": [4], "executed_branches": '
    b'[[2, 4]], "missing_branches": [[2, -1]]}}}'
)

Reader = Callable[..., CoverageReport]
PARSERS: list[tuple[Reader, bytes]] = [
    (read_cobertura, COBERTURA),
    (read_jacoco, JACOCO),
    (read_lcov, LCOV),
    (read_coveragepy_json, COVERAGE_JSON),
    (read_coverage, LCOV),
]


def mutations(sample: bytes) -> st.SearchStrategy[bytes]:
    """Return the sample with one slice replaced by arbitrary bytes."""
    cut = st.integers(min_value=0, max_value=len(sample))
    return st.tuples(cut, cut, st.binary(max_size=24)).map(
        lambda parts: (
            sample[: min(parts[0], parts[1])]
            + parts[2]
            + sample[max(parts[0], parts[1]) :]
        )
    )


def contents(sample: bytes) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=400),
        st.text(max_size=200).map(str.encode),
        mutations(sample),
    )


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("properties") / "upload"


@pytest.mark.parametrize(("reader", "sample"), PARSERS)
def test_parser_any_bytes_report_or_input_error(
    scratch: Path, reader: Reader, sample: bytes
) -> None:
    assert isinstance(_read(reader, scratch, sample), CoverageReport)

    @settings(
        max_examples=150,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(content=contents(sample))
    def check(content: bytes) -> None:
        scratch.write_bytes(content)
        try:
            result = _read(reader, scratch, content)
        except InputError as exc:
            assert exc.field == "original"
            assert str(exc).startswith("original")
        else:
            assert isinstance(result, CoverageReport)

    check()


def _read(reader: Reader, path: Path, content: bytes) -> CoverageReport:
    path.write_bytes(content)
    if reader is read_coverage:
        return read_coverage(path, field="original")
    return reader(path, field="original", source="original")
