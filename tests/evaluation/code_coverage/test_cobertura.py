"""Tests for reading Cobertura XML reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.errors import InputError
from app.evaluation.code_coverage import coverage_retention, read_coverage
from app.evaluation.code_coverage.model import CoverageReport
from app.policy import Policy


def read(tmp_path: Path, text: str) -> CoverageReport:
    path = tmp_path / "report"
    path.write_text(text)
    return read_coverage(path, field="original", filename="coverage.xml")


def cobertura(classes: str, sources: str = "") -> str:
    # The stated rates are deliberately wrong: they must never be read.
    return (
        '<?xml version="1.0" ?>\n'
        '<coverage line-rate="0.99" branch-rate="0.99" lines-valid="1">\n'
        f"<sources>{sources}</sources>\n"
        '<packages><package name="p" line-rate="0.99"><classes>\n'
        f"{classes}\n"
        "</classes></package></packages></coverage>\n"
    )


def lines(report: CoverageReport, name: str) -> tuple[list[int], list[int]]:
    item = report.files[name]
    return item.covered_lines.tolist(), item.uncovered_lines.tolist()


def test_cobertura_lines_and_rates_from_counts(tmp_path: Path) -> None:
    report = read(
        tmp_path,
        cobertura(
            '<class name="m" filename="pkg/m.py" line-rate="1"><lines>'
            '<line number="1" hits="3"/><line number="2" hits="0"/>'
            '<line number="4" hits="1"/></lines></class>'
        ),
    )
    assert report.format == "cobertura"
    assert lines(report, "pkg/m.py") == ([1, 4], [2])
    assert report.lines_covered() == 2
    assert report.lines_measured() == 3
    metrics = coverage_retention(report, report, policy=Policy()).metrics
    assert metrics["line_rate_original"] == pytest.approx(2 / 3)


def test_cobertura_branch_counts_and_missing_arcs(tmp_path: Path) -> None:
    report = read(
        tmp_path,
        cobertura(
            '<class name="m" filename="m.py"><lines>'
            '<line number="2" hits="1" branch="true" condition-coverage="50% (1/2)" '
            'missing-branches="3"/>'
            '<line number="6" hits="1" branch="true" condition-coverage="33% (1/3)" '
            'missing-branches="7,exit"/>'
            "</lines></class>"
        ),
    )
    branches = report.files["m.py"].branches
    assert branches[2].total == 2
    assert branches[2].taken == 1
    assert branches[2].missed() == {"3"}
    assert branches[6].missed() == {"7", "exit"}
    assert report.branches_total() == 5
    assert report.branches_taken() == 2


def test_cobertura_branch_without_condition_coverage(tmp_path: Path) -> None:
    report = read(
        tmp_path,
        cobertura(
            '<class name="m" filename="m.py"><lines>'
            '<line number="5" hits="1" branch="true"/>'
            '<line number="6" hits="1" branch="true" condition-coverage="100%"/>'
            '<line number="7" hits="0"/></lines></class>'
        ),
    )
    assert lines(report, "m.py") == ([5, 6], [7])
    assert report.branches_total() == 0
    assert report.uncounted_branch_lines == 2


def test_cobertura_several_sources_strip_roots(tmp_path: Path) -> None:
    sources = "<source>/build/app/src</source><source>/build/app/lib/</source>"
    report = read(
        tmp_path,
        cobertura(
            '<class name="a" filename="/build/app/src/pkg/a.py"><lines>'
            '<line number="1" hits="1"/></lines></class>'
            '<class name="b" filename="/build/app/lib/b.py"><lines>'
            '<line number="1" hits="0"/></lines></class>'
            '<class name="c" filename="tools/c.py"><lines>'
            '<line number="1" hits="1"/></lines></class>',
            sources,
        ),
    )
    assert sorted(report.files) == ["b.py", "pkg/a.py", "tools/c.py"]


def test_cobertura_windows_paths(tmp_path: Path) -> None:
    sources = "<source>C:\\agent\\work\\src</source>"
    report = read(
        tmp_path,
        cobertura(
            '<class name="Shop" filename="C:\\agent\\work\\src\\Shop\\Payment.cs">'
            '<lines><line number="10" hits="2"/></lines></class>'
            '<class name="Cart" filename="Shop\\Cart.cs">'
            '<lines><line number="3" hits="0"/></lines></class>',
            sources,
        ),
    )
    assert sorted(report.files) == ["Shop/Cart.cs", "Shop/Payment.cs"]
    assert lines(report, "Shop/Payment.cs") == ([10], [])


def test_cobertura_merges_method_and_class_lines(tmp_path: Path) -> None:
    method_lines = (
        '<line number="3" hits="0"/>'
        '<line number="4" hits="1" branch="true" condition-coverage="50% (1/2)"/>'
    )
    report = read(
        tmp_path,
        cobertura(
            '<class name="A" filename="org/A.java"><methods><method name="run">'
            f"<lines>{method_lines}</lines></method></methods>"
            f'<lines>{method_lines}<line number="9" hits="1"/></lines></class>'
            '<class name="A$Inner" filename="org/A.java"><lines>'
            '<line number="3" hits="5"/></lines></class>'
        ),
    )
    assert lines(report, "org/A.java") == ([3, 4, 9], [])
    assert report.branches_total() == 2
    assert report.branches_taken() == 1


def test_cobertura_class_without_filename(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        read(tmp_path, cobertura('<class name="Orphan"><lines/></class>'))
    assert info.value.field == "original"
    assert str(info.value) == (
        "original 'coverage.xml' (Cobertura XML) has a <class name='Orphan'> element "
        "without a filename attribute; every class must name its source file"
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            '<line number="x1" hits="1"/>',
            "has an invalid <line> number: 'x1', expected a whole number from 0 to "
            "4294967295",
        ),
        (
            '<line number="3" hits="-2"/>',
            "has an invalid <line number='3'> hits: '-2', expected a whole number of "
            "at least 0",
        ),
        (
            '<line number="3"/>',
            "is missing <line number='3'> hits, expected a whole number of at least 0",
        ),
    ],
)
def test_cobertura_invalid_line_attribute(
    tmp_path: Path, line: str, message: str
) -> None:
    text = cobertura(f'<class name="m" filename="m.py"><lines>{line}</lines></class>')
    with pytest.raises(InputError) as info:
        read(tmp_path, text)
    assert message in str(info.value)
    assert str(info.value).startswith("original 'coverage.xml' (Cobertura XML) ")
    assert "upload the report as the coverage tool wrote it" in str(info.value)


def test_cobertura_condition_counts_inconsistent(tmp_path: Path) -> None:
    text = cobertura(
        '<class name="m" filename="m.py"><lines><line number="2" hits="1" '
        'branch="true" condition-coverage="150% (3/2)"/></lines></class>'
    )
    with pytest.raises(InputError) as info:
        read(tmp_path, text)
    assert "condition-coverage '150% (3/2)'" in str(info.value)
    assert "0 <= taken <= total and total >= 1" in str(info.value)


def test_cobertura_without_lines_rejected(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        read(tmp_path, cobertura('<class name="m" filename="m.py"><lines/></class>'))
    assert str(info.value) == (
        "original 'coverage.xml' (Cobertura XML) contains no line coverage data; "
        "upload the report of a test run that measured at least one source file"
    )


def test_cobertura_truncated_file_rejected(tmp_path: Path) -> None:
    text = cobertura(
        '<class name="m" filename="m.py"><lines><line number="1" hits="1"/>'
    )
    with pytest.raises(InputError) as info:
        read(tmp_path, text[: len(text) // 2])
    assert str(info.value).startswith(
        "original 'coverage.xml' is not well-formed XML ("
    )
    assert "upload the report file as the coverage tool wrote it" in str(info.value)


# A line as cobertura-maven (Java) and coverlet (.NET) write it: repeated under
# its method and its class, and with the branch flag in the tool's own case.
def tool_lines(true: str, false: str) -> str:
    return (
        f'<line number="10" hits="4" branch="{false}"/>'
        f'<line number="11" hits="4" branch="{true}" '
        'condition-coverage="50% (1/2)"><conditions>'
        '<condition number="0" type="jump" coverage="50%"/></conditions></line>'
        f'<line number="12" hits="0" branch="{false}"/>'
    )


def tool_class(name: str, filename: str, true: str, false: str) -> str:
    body = tool_lines(true, false)
    return (
        f'<class name="{name}" filename="{filename}" line-rate="0.5">'
        f'<methods><method name="total" signature="()I"><lines>{body}</lines>'
        f"</method></methods><lines>{body}</lines></class>"
    )


def test_cobertura_java_report_with_doctype(tmp_path: Path) -> None:
    # cobertura-maven-plugin names a DTD by URL, which must never be fetched.
    text = (
        '<?xml version="1.0"?>\n'
        '<!DOCTYPE coverage SYSTEM "http://cobertura.sourceforge.net/xml/'
        'coverage-04.dtd">\n'
        '<coverage line-rate="0.9" branch-rate="0.9" version="2.1.1">'
        "<sources><source>/home/ci/shop/src/main/java</source>"
        "<source>--source</source></sources>"
        '<packages><package name="com.shop"><classes>'
        + tool_class("com.shop.Cart", "com/shop/Cart.java", "true", "false")
        + "</classes></package></packages></coverage>\n"
    )
    report = read(tmp_path, text)
    assert lines(report, "com/shop/Cart.java") == ([10, 11], [12])
    assert report.branches_total() == 2
    assert report.branches_taken() == 1


def test_cobertura_dotnet_report_from_coverlet(tmp_path: Path) -> None:
    # coverlet writes a byte-order mark, CRLF line ends and True/False.
    text = (
        '<?xml version="1.0" encoding="utf-8"?>\r\n'
        '<coverage line-rate="0.9" branch-rate="0.9" version="1.9">\r\n'
        "<sources><source>/home/ci/shop/</source></sources>\r\n"
        '<packages><package name="Shop"><classes>\r\n'
        + tool_class("Shop.Payment", "src/Shop/Payment.cs", "True", "False")
        + "\r\n</classes></package></packages></coverage>\r\n"
    )
    path = tmp_path / "report"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    report = read_coverage(path, field="original", filename="coverage.cobertura.xml")
    assert report.format == "cobertura"
    assert lines(report, "src/Shop/Payment.cs") == ([10, 11], [12])
    assert report.branches_total() == 2
    assert report.branches_taken() == 1
