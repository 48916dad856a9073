"""Tests for coverage retention on real coverage.py reports and hand-made ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.evaluation.code_coverage import coverage_retention, read_coverage
from app.evaluation.code_coverage.retention import MAX_LISTED_PER_FILE
from app.policy import Policy
from app.results import Check, Evaluation
from tests.evaluation.code_coverage.conftest import Reports
from tests.evaluation.code_coverage.shop_project import (
    FAILED_HANDLER_ARC,
    FAILED_HANDLER_LINES,
)

POLICY = Policy()
PAYMENT = "shop/payment.py"


def evaluate(original: Path, subset: Path, policy: Policy = POLICY) -> Evaluation:
    return coverage_retention(
        read_coverage(original, field="original"),
        read_coverage(subset, field="subset"),
        policy=policy,
    )


def check(evaluation: Evaluation, name: str) -> Check:
    return next(c for c in evaluation.checks if c.name == name)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def lcov_report(files: dict[str, tuple[list[int], list[int]]]) -> str:
    """Return an lcov tracefile of ``{file: (covered lines, uncovered lines)}``."""
    records = []
    for name, (covered, uncovered) in files.items():
        lines = [f"SF:{name}"]
        lines += [f"DA:{n},1" for n in covered]
        lines += [f"DA:{n},0" for n in uncovered]
        records.append("\n".join([*lines, "end_of_record"]))
    return "\n".join(records) + "\n"


@pytest.mark.parametrize("fmt", ["xml", "json", "lcov"])
def test_retention_real_run_loses_failed_handler(
    shop_reports: Reports, fmt: str
) -> None:
    evaluation = evaluate(shop_reports["original"][fmt], shop_reports["subset"][fmt])
    lines = check(evaluation, "line_coverage_retention")
    branches = check(evaluation, "branch_coverage_retention")
    assert evaluation.kind == "data"
    assert evaluation.status == "failed"
    assert lines.value is not None and lines.value < 1
    assert branches.value is not None and branches.value < 1
    assert evaluation.details["lost_lines"] == {PAYMENT: FAILED_HANDLER_LINES}
    assert evaluation.metrics["lines_lost"] == len(FAILED_HANDLER_LINES)
    assert evaluation.metrics["branches_lost"] == 1
    assert evaluation.metrics["files_missing_from_subset"] == 0


@pytest.mark.parametrize(
    ("fmt", "lost_branch"),
    [
        ("xml", FAILED_HANDLER_ARC),
        ("json", FAILED_HANDLER_ARC),
        ("lcov", "8:0:jump to line 9"),
    ],
)
def test_retention_real_run_names_lost_branch(
    shop_reports: Reports, fmt: str, lost_branch: str
) -> None:
    evaluation = evaluate(shop_reports["original"][fmt], shop_reports["subset"][fmt])
    assert evaluation.details["lost_branches"] == {PAYMENT: [lost_branch]}
    assert evaluation.metrics["branches_compared_by_count"] == 0


@pytest.mark.parametrize("fmt", ["xml", "json", "lcov"])
def test_retention_real_run_same_data_keeps_everything(
    shop_reports: Reports, fmt: str
) -> None:
    report = shop_reports["original"][fmt]
    evaluation = evaluate(report, report)
    assert evaluation.status == "passed"
    assert check(evaluation, "line_coverage_retention").value == 1.0
    assert check(evaluation, "branch_coverage_retention").value == 1.0
    assert evaluation.details["lost_lines"] == {}
    assert evaluation.details["lost_branches"] == {}


def test_retention_real_run_formats_agree(shop_reports: Reports) -> None:
    results = [
        evaluate(shop_reports["original"][fmt], shop_reports["subset"][fmt])
        for fmt in ("xml", "json", "lcov")
    ]
    keys = [
        "lines_covered_original",
        "lines_covered_subset",
        "lines_covered_both",
        "lines_measured_original",
        "branches_measured_original",
        "branches_covered_original",
        "branches_covered_both",
        "line_rate_subset",
        "branch_rate_subset",
    ]
    for key in keys:
        values = {result.metrics[key] for result in results}
        assert len(values) == 1, key


def test_retention_real_run_json_against_xml_names_arcs(shop_reports: Reports) -> None:
    evaluation = evaluate(
        shop_reports["original"]["json"], shop_reports["subset"]["xml"]
    )
    assert evaluation.details["lost_lines"] == {PAYMENT: FAILED_HANDLER_LINES}
    assert evaluation.details["lost_branches"] == {PAYMENT: [FAILED_HANDLER_ARC]}
    assert evaluation.metrics["branches_compared_by_count"] == 0


def test_retention_real_run_lcov_against_json_counts(shop_reports: Reports) -> None:
    evaluation = evaluate(
        shop_reports["original"]["lcov"], shop_reports["subset"]["json"]
    )
    assert evaluation.metrics["branches_lost"] == 1
    assert evaluation.metrics["branches_compared_by_count"] > 0
    assert evaluation.details["lost_branches"] == {PAYMENT: ["8 (1 of 2 branches)"]}


@pytest.mark.parametrize("fmt", ["json", "lcov", "xml"])
def test_retention_checkouts_pair_by_suffix(
    checkout_reports: Reports, fmt: str
) -> None:
    evaluation = evaluate(
        checkout_reports["original"][fmt], checkout_reports["subset"][fmt]
    )
    assert evaluation.details["lost_lines"] == {PAYMENT: FAILED_HANDLER_LINES}
    assert evaluation.metrics["files_missing_from_subset"] == 0
    assert evaluation.metrics["files_paired"] == evaluation.metrics["files_original"]


def test_retention_checkouts_list_renamed_files(checkout_reports: Reports) -> None:
    evaluation = evaluate(
        checkout_reports["original"]["json"], checkout_reports["subset"]["json"]
    )
    renamed = evaluation.details["files_paired_by_suffix"]
    assert renamed["checkout-a/shop/payment.py"] == "checkout-b/shop/payment.py"
    assert evaluation.metrics["files_paired_by_suffix"] == len(renamed)


def test_retention_message_shows_counts(tmp_path: Path) -> None:
    covered = list(range(1, 1237))
    original = write(tmp_path, "a.info", lcov_report({"m.py": (covered, [])}))
    subset = write(
        tmp_path, "b.info", lcov_report({"m.py": (covered[:1204], covered[1204:])})
    )
    evaluation = evaluate(original, subset)
    lines = check(evaluation, "line_coverage_retention")
    assert lines.message == (
        "line coverage retention 97.4% (1,204 of 1,236 lines the original run "
        "covered) >= 95.0%"
    )
    assert lines.status == "passed"
    assert lines.comparator == ">="
    assert lines.unit == "fraction"
    assert lines.threshold == 0.95


def test_retention_below_threshold_fails(tmp_path: Path) -> None:
    original = write(tmp_path, "a.info", lcov_report({"m.py": ([1, 2, 3, 4], [])}))
    subset = write(tmp_path, "b.info", lcov_report({"m.py": ([1, 2, 3], [4])}))
    evaluation = evaluate(original, subset, Policy(min_coverage=0.8))
    lines = check(evaluation, "line_coverage_retention")
    assert lines.status == "failed"
    assert lines.message == (
        "line coverage retention 75.0% (3 of 4 lines the original run covered) < 80.0%"
    )


def test_retention_without_branch_data_skips_branch_check(tmp_path: Path) -> None:
    original = write(tmp_path, "a.info", lcov_report({"m.py": ([1, 2], [])}))
    evaluation = evaluate(original, original)
    branches = check(evaluation, "branch_coverage_retention")
    assert branches.status == "skipped"
    assert branches.value is None
    assert branches.message.startswith(
        "branch coverage retention is not applicable: the original report has no "
        "branch data"
    )
    assert evaluation.metrics["branch_coverage_retention"] is None
    assert evaluation.status == "passed"


def test_retention_no_branches_taken_skips_branch_check(tmp_path: Path) -> None:
    text = "SF:m.py\nDA:1,1\nDA:2,0\nBRDA:2,0,0,-\nBRDA:2,0,1,-\nend_of_record\n"
    original = write(tmp_path, "a.info", text)
    branches = check(evaluate(original, original), "branch_coverage_retention")
    assert branches.status == "skipped"
    assert branches.message == (
        "branch coverage retention is not applicable: the original run took no branches"
    )


def test_retention_subset_without_branch_data_skips(tmp_path: Path) -> None:
    text = "SF:m.py\nDA:1,1\nBRDA:1,0,0,1\nBRDA:1,0,1,0\nend_of_record\n"
    original = write(tmp_path, "a.info", text)
    subset = write(tmp_path, "b.info", lcov_report({"m.py": ([1], [])}))
    branches = check(evaluate(original, subset), "branch_coverage_retention")
    assert branches.status == "skipped"
    assert branches.message.startswith(
        "branch coverage retention is not applicable: the subset report has no "
        "branch data"
    )


def test_retention_original_covering_nothing_skips(tmp_path: Path) -> None:
    original = write(tmp_path, "a.info", lcov_report({"m.py": ([], [1, 2])}))
    lines = check(evaluate(original, original), "line_coverage_retention")
    assert lines.status == "skipped"
    assert lines.message == (
        "line coverage retention is not applicable: the original run covered no lines"
    )


def test_retention_missing_file_loses_all_lines(tmp_path: Path) -> None:
    original = write(
        tmp_path, "a.info", lcov_report({"a.py": ([1, 2], []), "b.py": ([5], [6])})
    )
    subset = write(tmp_path, "b.info", lcov_report({"a.py": ([1, 2], [])}))
    evaluation = evaluate(original, subset)
    assert evaluation.details["lost_lines"] == {"b.py": [5]}
    assert evaluation.details["files_missing_from_subset"] == ["b.py"]
    assert evaluation.metrics["files_missing_from_subset"] == 1
    assert check(evaluation, "line_coverage_retention").value == pytest.approx(2 / 3)


def test_retention_caps_listed_lines(tmp_path: Path) -> None:
    covered = list(range(1, 501))
    original = write(tmp_path, "a.info", lcov_report({"m.py": (covered, [])}))
    subset = write(tmp_path, "b.info", lcov_report({"m.py": ([1], covered[1:])}))
    evaluation = evaluate(original, subset)
    assert (
        evaluation.details["lost_lines"]["m.py"] == covered[1 : 1 + MAX_LISTED_PER_FILE]
    )
    assert evaluation.metrics["lines_lost"] == 499


def test_retention_rates_ignore_stated_totals(tmp_path: Path) -> None:
    text = "SF:m.py\nDA:1,1\nDA:2,0\nDA:3,0\nDA:4,1\nLF:99\nLH:98\nend_of_record\n"
    report = write(tmp_path, "a.info", text)
    evaluation = evaluate(report, report)
    assert evaluation.metrics["line_rate_original"] == 0.5
    assert evaluation.metrics["lines_measured_original"] == 4


def test_retention_subset_only_file_not_counted(tmp_path: Path) -> None:
    original = write(tmp_path, "a.info", lcov_report({"a.py": ([1], [])}))
    subset = write(
        tmp_path, "b.info", lcov_report({"a.py": ([1], []), "extra.py": ([1, 2], [])})
    )
    evaluation = evaluate(original, subset)
    assert check(evaluation, "line_coverage_retention").value == 1.0
    assert evaluation.metrics["lines_covered_subset"] == 3
    assert evaluation.metrics["files_subset"] == 2


def test_retention_result_is_strict_json(shop_reports: Reports) -> None:
    evaluation = evaluate(
        shop_reports["original"]["xml"], shop_reports["subset"]["xml"]
    )
    text = json.dumps(
        {
            "checks": [c.to_dict() for c in evaluation.checks],
            "metrics": evaluation.metrics,
            "details": evaluation.details,
        },
        allow_nan=False,
    )
    assert "lost_lines" in text
