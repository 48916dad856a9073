"""A numeric column with one text cell, sent as a data gate to a live server."""

from pathlib import Path

from tests.api.helpers import post_files
from tests.evaluation.test_coercion import BAD_ROW, mixed_csv_lines, write


def test_text_cell_reported_not_categorical(server, tmp_path: Path) -> None:
    lines = mixed_csv_lines()
    files = {
        "original": write(tmp_path / "original.csv", lines),
        "subset": write(tmp_path / "subset.csv", lines[:61]),
    }
    response = post_files(server.url, "data", files, scenario_columns="a,b")
    assert response.status_code == 200, response.text
    details = response.json()["details"]
    assert details["feature_columns"]["numeric"] == ["v"]
    assert details["feature_columns"]["categorical"] == ["a", "b"]
    invalid = details["cleaning"]["invalid"]["unparsed_number"]
    assert invalid == {"rows": 1, "examples": [BAD_ROW]}
    assert details["cleaning"]["near_duplicate_threshold"] > 0.0
    (note,) = details["reader_notes"]["original"]
    assert "column 'v' is read as numeric" in note
    assert f"row {BAD_ROW} 'hello'" in note
