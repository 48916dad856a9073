"""Tables written in the variants real exports produce, read from real files."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from app.errors import InputError
from app.evaluation.cleaning import row_hashes
from app.evaluation.readers import read_table, reading_notes
from app.gate_inputs import ArtifactRef, prepare
from app.policy import Policy


def stored(tmp_path: Path, content: bytes, name: str = "upload") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def read_csv_bytes(tmp_path: Path, content: bytes) -> pd.DataFrame:
    return read_table(stored(tmp_path, content), field="original", filename="t.csv")


def parquet_file(tmp_path: Path, table: pa.Table, name: str, **options: object) -> Path:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, **options)  # type: ignore[arg-type]
    return stored(tmp_path, buffer.getvalue(), name)


def test_csv_with_bom_names_first_column(tmp_path: Path) -> None:
    frame = read_csv_bytes(tmp_path, "\ufeffx;kind\n1.5;a\n2.5;b\n".encode())
    assert list(frame.columns) == ["x", "kind"]
    assert frame["x"].tolist() == [1.5, 2.5]


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_csv_delimiter_detected(tmp_path: Path, delimiter: str) -> None:
    lines = ["x,kind,n".replace(",", delimiter)]
    lines += [
        f"{x}{delimiter}{kind}{delimiter}{n}"
        for x, kind, n in [(1.5, "a", 1), (2.5, "b", 2), (3.5, "a c", 3)]
    ]
    frame = read_csv_bytes(tmp_path, ("\n".join(lines) + "\n").encode())
    assert list(frame.columns) == ["x", "kind", "n"]
    assert frame["x"].tolist() == [1.5, 2.5, 3.5]
    assert frame["kind"].tolist() == ["a", "b", "a c"]
    assert frame["n"].tolist() == [1, 2, 3]


def test_csv_semicolon_values_stay_comma(tmp_path: Path) -> None:
    frame = read_csv_bytes(tmp_path, b"path\na;b\nc;d\ne;f\n")
    assert list(frame.columns) == ["path"]
    assert frame["path"].tolist() == ["a;b", "c;d", "e;f"]


def test_csv_quoted_semicolons_stay_comma(tmp_path: Path) -> None:
    content = b'id,note\n1,"x;y;z"\n2,"p;q;r"\n3,"s;t;u"\n'
    frame = read_csv_bytes(tmp_path, content)
    assert list(frame.columns) == ["id", "note"]
    assert frame["note"].tolist() == ["x;y;z", "p;q;r", "s;t;u"]


def test_csv_quoted_field_holds_newlines(tmp_path: Path) -> None:
    content = b'id;note\n1;"first line\nsecond line"\n2;"plain"\n'
    frame = read_csv_bytes(tmp_path, content)
    assert frame["id"].tolist() == [1, 2]
    assert frame["note"].tolist() == ["first line\nsecond line", "plain"]


def test_csv_multiline_header_not_duplicate(tmp_path: Path) -> None:
    frame = read_csv_bytes(tmp_path, b'"a\nb",a\n1,2\n')
    assert list(frame.columns) == ["a\nb", "a"]


def test_csv_duplicate_header_rejected(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        read_csv_bytes(tmp_path, b"id,a,b,a,b,c\n1,2,3,4,5,6\n")
    assert info.value.field == "original"
    assert info.value.message == (
        "original 't.csv' could not be read as CSV: the header row names the "
        "columns ['a', 'b'] more than once; give every column a unique name"
    )


def test_csv_duplicate_header_rejected_with_tabs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"names the columns \['x'\] more than once"):
        read_csv_bytes(tmp_path, b"x\ty\tx\n1\t2\t3\n4\t5\t6\n")


@pytest.mark.parametrize(
    "cell", ["", "NaN", "nan", "inf", "-inf", "+inf", "Infinity", "-Infinity"]
)
def test_csv_nan_and_inf_cells_missing(tmp_path: Path, cell: str) -> None:
    frame = read_csv_bytes(tmp_path, f"x,kind\n1.5,a\n{cell},{cell}\n".encode())
    assert frame["x"].dtype.kind == "f"
    assert frame["x"].tolist()[0] == 1.5
    assert math.isnan(frame["x"].tolist()[1])
    assert frame["kind"].isna().tolist() == [False, True]
    assert not np.isinf(frame["x"].to_numpy()).any()


def test_csv_infinity_not_a_category(tmp_path: Path) -> None:
    frame = read_csv_bytes(tmp_path, b"kind\na\ninf\n-inf\nb\n")
    assert frame["kind"].dropna().tolist() == ["a", "b"]


def test_parquet_dictionary_matches_plain_rows(tmp_path: Path) -> None:
    kinds = ["red", "green", "red", "blue", "green", "red"]
    plain = pa.table({"kind": pa.array(kinds), "n": pa.array(range(6))})
    encoded = pa.table(
        {"kind": pa.array(kinds).dictionary_encode(), "n": pa.array(range(6))}
    ).slice(1, 3)
    original = read_table(
        parquet_file(tmp_path, plain, "plain", use_dictionary=False),
        field="original",
        filename="original.parquet",
    )
    subset = read_table(
        parquet_file(tmp_path, encoded, "encoded", use_dictionary=True),
        field="subset",
        filename="subset.parquet",
    )
    original_hashes, subset_hashes = row_hashes(original, subset)
    assert subset["kind"].tolist() == ["green", "red", "blue"]
    assert subset["kind"].dtype == original["kind"].dtype
    assert subset_hashes.tolist() == original_hashes[1:4].tolist()


def test_parquet_nested_columns_skipped_with_note(tmp_path: Path) -> None:
    table = pa.table(
        {
            "n": pa.array([1, 2]),
            "point": pa.array([{"x": 1, "y": 2}, {"x": 3, "y": 4}]),
            "tags": pa.array([["a"], []]),
            "attributes": pa.array(
                [[("k", "v")], []], type=pa.map_(pa.string(), pa.string())
            ),
        }
    )
    frame = read_table(
        parquet_file(tmp_path, table, "nested"), field="original", filename="t.parquet"
    )
    notes = reading_notes(frame)
    assert list(frame.columns) == ["n"]
    assert len(notes) == 1
    assert notes[0] == (
        "nested columns skipped: 'point' (struct), 'tags' (list), 'attributes' "
        "(map); struct, list and map values are not compared"
    )


def test_parquet_duplicate_columns_named(tmp_path: Path) -> None:
    table = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"])
    path = parquet_file(tmp_path, table, "dup")
    with pytest.raises(InputError, match=r"names the columns \['a'\] more than once"):
        read_table(path, field="subset", filename="t.parquet")


def test_data_gate_notes_nested_columns(tmp_path: Path) -> None:
    rows = 40
    table = pa.table(
        {
            "x": pa.array(np.linspace(0.0, 1.0, rows)),
            "kind": pa.array(["a", "b"] * (rows // 2)),
            "tags": pa.array([["t"]] * rows),
        }
    )
    path = parquet_file(tmp_path, table, "original")
    refs = {
        "original": ArtifactRef(path, "original.parquet"),
        "subset": ArtifactRef(path, "subset.parquet"),
    }
    run = prepare(
        "data",
        {"source": "upload", "scenario_columns": ["kind"]},
        refs,
        Policy(),
        model_timeout_s=0,
    )
    notes = run().details["reader_notes"]
    assert set(notes) == {"original", "subset"}
    assert "'tags' (list)" in notes["original"][0]


def test_npy_object_array_rejected(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.array([[1, "a"], [2, None]], dtype=object), allow_pickle=True)
    path = stored(tmp_path, buffer.getvalue())
    with pytest.raises(InputError, match="has dtype object") as info:
        read_table(path, field="original", filename="t.npy")
    assert info.value.field == "original"
