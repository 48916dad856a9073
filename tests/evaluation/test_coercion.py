"""Numeric columns with a few cells that are not numbers, read from real files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from app.evaluation.coercion import coerce_numeric_columns
from app.evaluation.readers import read_table, reading_notes
from app.gate_inputs import ArtifactRef, prepare
from app.policy import Policy
from app.results import Evaluation

BAD_ROW = 17


def mixed_csv_lines(rows: int = 200, bad: dict[int, str] | None = None) -> list[str]:
    """Return CSV lines of scenario columns a, b and a float column v."""
    bad = {BAD_ROW: "hello"} if bad is None else bad
    rng = np.random.default_rng(7)
    first = rng.choice(["x", "y"], rows)
    second = rng.choice(["p", "q"], rows)
    values = rng.normal(size=rows).round(4)
    lines = ["a,b,v"]
    for row in range(rows):
        cell = bad.get(row, str(values[row]))
        lines.append(f"{first[row]},{second[row]},{cell}")
    return lines


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def run_gate(tmp_path: Path, original: list[str], subset: list[str]) -> Evaluation:
    artifacts = {
        "original": ArtifactRef(write(tmp_path / "original", original), "o.csv"),
        "subset": ArtifactRef(write(tmp_path / "subset", subset), "s.csv"),
    }
    request = {"source": "upload", "scenario_columns": ["a", "b"]}
    run = prepare("data", request, artifacts, Policy(), model_timeout_s=60.0)
    return run()


def test_one_text_cell_keeps_column_numeric(tmp_path: Path) -> None:
    lines = mixed_csv_lines()
    details = run_gate(tmp_path, lines, lines[:61]).details
    assert details["feature_columns"]["numeric"] == ["v"]
    assert details["feature_columns"]["categorical"] == ["a", "b"]
    invalid = details["cleaning"]["invalid"]["unparsed_number"]
    assert invalid == {"rows": 1, "examples": [BAD_ROW]}
    assert details["cleaning"]["invalid_rows"] == 1
    assert details["cleaning"]["near_duplicate_threshold"] > 0.0


def test_text_cell_named_in_reader_notes(tmp_path: Path) -> None:
    lines = mixed_csv_lines()
    details = run_gate(tmp_path, lines, lines[:61]).details
    (original,) = details["reader_notes"]["original"]
    (subset,) = details["reader_notes"]["subset"]
    for note in (original, subset):
        assert "column 'v' is read as numeric" in note
        assert f"row {BAD_ROW} 'hello'" in note
    assert "199 of its 200 non-missing cells" in original
    assert "the 1 other cells" in original
    assert "unparsed_number" in original
    assert "59 of its 60 non-missing cells" in subset


def test_small_subset_follows_original_kind(tmp_path: Path) -> None:
    lines = mixed_csv_lines()
    # Ten subset rows with one text cell: 90% numbers, below the 95% of the
    # original's rule, but the original's column is numeric.
    subset = [lines[0], *lines[BAD_ROW - 8 : BAD_ROW + 2]]
    details = run_gate(tmp_path, lines, subset).details
    assert details["feature_columns"]["numeric"] == ["v"]
    assert "9 of its 10 non-missing cells" in details["reader_notes"]["subset"][0]


def test_clean_subset_matches_coerced_original(tmp_path: Path) -> None:
    lines = mixed_csv_lines()
    subset = [lines[0], *lines[1 : BAD_ROW + 1], *lines[BAD_ROW + 2 :]]
    evaluation = run_gate(tmp_path, lines, subset)
    assert "subset" not in evaluation.details["reader_notes"]
    assert evaluation.metrics["subset_rows_not_in_original"] == 0
    assert evaluation.metrics["feature_coverage"] == 1.0


def coerce_csv(
    tmp_path: Path, original: list[str], subset: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, np.ndarray]]:
    tables = [
        read_table(write(tmp_path / name, lines), field=name, filename=f"{name}.csv")
        for name, lines in (("original", original), ("subset", subset))
    ]
    kinds = [table["v"].dtype for table in tables]
    coerced = coerce_numeric_columns(*tables, text_numbers=(True, True))
    # The tables that were read stay as they were.
    assert [table["v"].dtype for table in tables] == kinds
    assert [reading_notes(table) for table in tables] == [[], []]
    return coerced.original, coerced.subset, coerced.unparsed


def test_mostly_text_column_stays_text(tmp_path: Path) -> None:
    bad = {row: f"w{row}" for row in range(11)}
    lines = mixed_csv_lines(bad=bad)
    original, subset, unparsed = coerce_csv(tmp_path, lines, lines)
    assert original["v"].dtype.kind == "O"
    assert subset["v"].dtype.kind == "O"
    assert unparsed == {}
    assert reading_notes(original) == []


def test_five_percent_text_is_read_as_numbers(tmp_path: Path) -> None:
    bad = {row: f"w{row}" for row in range(10)}
    lines = mixed_csv_lines(bad=bad)
    original, _, unparsed = coerce_csv(tmp_path, lines, lines[:2])
    assert original["v"].dtype == np.float64
    assert original["v"].isna().sum() == 10
    assert unparsed["v"].tolist() == list(range(10))
    (note,) = reading_notes(original)
    assert "row 4 'w4' and 5 more" in note
    assert "row 5" not in note


def test_coerced_values_equal_parsed_numbers(tmp_path: Path) -> None:
    lines = mixed_csv_lines()
    clean = [lines[0], *lines[1 : BAD_ROW + 1], *lines[BAD_ROW + 2 :]]
    original, _, _ = coerce_csv(tmp_path, lines, lines[:2])
    expected = read_table(write(tmp_path / "clean", clean), field="c", filename="c.csv")
    values = original["v"].drop(index=BAD_ROW).to_numpy()
    assert expected["v"].dtype == np.float64
    assert np.array_equal(values, expected["v"].to_numpy())


def coerce_jsonl(tmp_path: Path, cells: list[Any]) -> pd.DataFrame:
    path = tmp_path / "original"
    path.write_text("".join(json.dumps({"v": cell}) + "\n" for cell in cells))
    frame = read_table(path, field="original", filename="o.jsonl")
    coerced = coerce_numeric_columns(frame, frame.iloc[:1], text_numbers=(False, False))
    return coerced.original


def test_jsonl_number_strings_stay_text(tmp_path: Path) -> None:
    frame = coerce_jsonl(tmp_path, [f"{code:05d}" for code in range(40)] + ["n/a"])
    assert frame["v"].tolist()[:2] == ["00000", "00001"]
    assert reading_notes(frame) == []


def test_jsonl_string_in_numbers_is_unparsed(tmp_path: Path) -> None:
    frame = coerce_jsonl(tmp_path, [float(n) for n in range(39)] + ["1.5", True])
    assert frame["v"].dtype == np.float64
    assert frame["v"].iloc[:39].tolist() == [float(n) for n in range(39)]
    assert frame["v"].iloc[39:].isna().all()
    (note,) = reading_notes(frame)
    assert "39 of its 41 non-missing cells are JSON numbers" in note
    assert "row 39 '1.5', row 40 True" in note


def test_long_integer_column_stays_text(tmp_path: Path) -> None:
    # 9007199254740993 is 2**53 + 1, which float64 rounds to 2**53.
    bad = {0: "9007199254740993", 1: "9007199254740992", BAD_ROW: "hello"}
    lines = mixed_csv_lines(bad=bad)
    subset_lines = [*lines[:3], lines[BAD_ROW + 1]]
    original, subset, unparsed = coerce_csv(tmp_path, lines, subset_lines)
    assert original["v"].iloc[:2].tolist() == ["9007199254740993", "9007199254740992"]
    assert subset["v"].dtype.kind == "O"
    assert unparsed == {}
    assert reading_notes(original) == []
