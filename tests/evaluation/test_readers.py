"""Tests for reading uploaded tables and labelled evaluation sets."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.datasets import load_iris

from app.errors import InputError, UnsupportedFormatError
from app.evaluation.readers import detect_format, read_labelled, read_table


def stored(tmp_path: Path, content: bytes) -> Path:
    """Write content under its sha256 without a suffix, as the blob store does."""
    path = tmp_path / hashlib.sha256(content).hexdigest()
    path.write_bytes(content)
    return path


def npy_bytes(array: np.ndarray, *, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


FRAME = pd.DataFrame({"x": [1.5, 2.5, 3.5], "kind": ["a", "b", "a"], "n": [1, 2, 3]})


def test_read_table_csv_with_bom(tmp_path: Path) -> None:
    content = "\ufeffx,kind,n\n1.5,a,1\n2.5,b,2\n3.5,a,3\n".encode()
    frame = read_table(stored(tmp_path, content), field="original", filename="a.csv")
    assert list(frame.columns) == ["x", "kind", "n"]
    assert frame["n"].tolist() == [1, 2, 3]
    assert frame["kind"].tolist() == ["a", "b", "a"]


@pytest.mark.parametrize("filename", ["rows.jsonl", "rows.ndjson", "ROWS.JSONL"])
def test_read_table_jsonl_suffixes(tmp_path: Path, filename: str) -> None:
    content = b'{"x": 1.5, "kind": "a"}\n{"x": 2.5, "kind": "b"}\n'
    frame = read_table(stored(tmp_path, content), field="subset", filename=filename)
    assert list(frame.columns) == ["x", "kind"]
    assert frame["x"].tolist() == [1.5, 2.5]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b'{"a": 1}\n[1, 2]\n', "line 2 is an array, not an object"),
        (b'{"a": 1}\n\n"text"\n', "line 3 is a bare value, not an object"),
    ],
)
def test_read_table_jsonl_line_not_object(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    with pytest.raises(InputError) as caught:
        read_table(stored(tmp_path, content), field="original", filename="m.jsonl")
    assert problem in caught.value.message
    assert "write one JSON object per line" in caught.value.message
    assert caught.value.field == "original"


def test_read_table_jsonl_keeps_numeric_strings(tmp_path: Path) -> None:
    content = b'{"zip": "02134"}\n{"zip": "10001"}\n'
    frame = read_table(stored(tmp_path, content), field="subset", filename="z.jsonl")
    assert frame["zip"].tolist() == ["02134", "10001"]


def test_read_table_jsonl_floats_match_csv(tmp_path: Path) -> None:
    values = load_iris().data[:, 3]
    frame = pd.DataFrame({"x": values})
    csv_path = stored(tmp_path, frame.to_csv(index=False).encode())
    jsonl_text = frame.to_json(orient="records", lines=True)
    jsonl_path = stored(tmp_path, jsonl_text.encode())
    from_csv = read_table(csv_path, field="original", filename="a.csv")
    from_jsonl = read_table(jsonl_path, field="subset", filename="a.jsonl")
    assert from_jsonl["x"].tolist() == from_csv["x"].tolist()
    assert from_jsonl["x"].tolist() == values.tolist()


def test_read_table_parquet(tmp_path: Path) -> None:
    path = stored(tmp_path, parquet_bytes(FRAME))
    frame = read_table(path, field="original", filename="t.parquet")
    pd.testing.assert_frame_equal(frame, FRAME)


def test_read_table_npy_2d_names_columns(tmp_path: Path) -> None:
    array = np.arange(6, dtype=np.float64).reshape(3, 2)
    frame = read_table(stored(tmp_path, npy_bytes(array)), field="f", filename="a.npy")
    assert list(frame.columns) == ["f0", "f1"]
    assert frame.to_numpy().tolist() == array.tolist()


def test_read_table_npy_1d_is_one_column(tmp_path: Path) -> None:
    frame = read_table(stored(tmp_path, npy_bytes(np.arange(4))), field="f")
    assert list(frame.columns) == ["f0"]
    assert frame["f0"].tolist() == [0, 1, 2, 3]


def test_read_table_npy_3d_flattens_trailing_dims(tmp_path: Path) -> None:
    array = np.arange(24).reshape(2, 3, 4)
    frame = read_table(stored(tmp_path, npy_bytes(array)), field="f")
    assert frame.shape == (2, 12)
    assert frame.iloc[1].tolist() == list(range(12, 24))


def test_read_table_npz_x_and_y(tmp_path: Path) -> None:
    content = npz_bytes(X=np.ones((3, 2)), y=np.array([0, 1, 0]), extra=np.zeros(5))
    frame = read_table(stored(tmp_path, content), field="original", filename="d.npz")
    assert list(frame.columns) == ["f0", "f1", "label"]
    assert frame["label"].tolist() == [0, 1, 0]


def test_read_table_npz_single_array(tmp_path: Path) -> None:
    content = npz_bytes(data=np.arange(6).reshape(3, 2))
    frame = read_table(stored(tmp_path, content), field="original", filename="d.npz")
    assert frame.shape == (3, 2)
    assert list(frame.columns) == ["f0", "f1"]


def test_read_table_npz_many_arrays_without_x(tmp_path: Path) -> None:
    content = npz_bytes(a=np.zeros(2), b=np.zeros(2))
    with pytest.raises(
        InputError, match=r"contains the arrays \['a', 'b'\] but no 'X'"
    ):
        read_table(stored(tmp_path, content), field="original", filename="d.npz")


def test_read_table_npz_y_length_mismatch(tmp_path: Path) -> None:
    content = npz_bytes(X=np.ones((3, 2)), y=np.array([0, 1]))
    with pytest.raises(InputError, match="X has 3 rows but y has 2 labels"):
        read_table(stored(tmp_path, content), field="original")


def test_read_table_zip_without_arrays(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "hello")
    with pytest.raises(InputError, match="zip archive without .npy arrays"):
        read_table(stored(tmp_path, buffer.getvalue()), field="original")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"a,b\n1,2\n", "csv"),
        (b'\xef\xbb\xbf  \n{"a": 1}\n', "jsonl"),
        (parquet_bytes(FRAME), "parquet"),
        (npy_bytes(np.zeros(3)), "npy"),
        (npz_bytes(X=np.zeros((2, 2))), "npz"),
    ],
)
def test_detect_format_sniffs_without_filename(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    path = stored(tmp_path, content)
    assert detect_format(path, field="original") == expected
    assert len(read_table(path, field="original")) >= 1


def test_detect_format_unknown_binary(tmp_path: Path) -> None:
    path = stored(tmp_path, b"\x1f\x8b\x08\x00\x00\x00binary")
    with pytest.raises(UnsupportedFormatError, match="binary file of unknown format"):
        detect_format(path, field="original")


def test_read_table_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    with pytest.raises(
        InputError, match=r"original 'a.csv' is empty \(0 bytes\)"
    ) as info:
        read_table(path, field="original", filename="a.csv")
    assert info.value.field == "original"


def test_read_table_header_only_csv(tmp_path: Path) -> None:
    path = stored(tmp_path, b"a,b\n")
    with pytest.raises(InputError, match="has columns but no rows"):
        read_table(path, field="subset", filename="s.csv")


def test_read_table_no_columns(tmp_path: Path) -> None:
    path = stored(tmp_path, npy_bytes(np.zeros((3, 0))))
    with pytest.raises(InputError, match="has no columns"):
        read_table(path, field="subset")


def test_read_table_malformed_csv(tmp_path: Path) -> None:
    path = stored(tmp_path, b"a,b\n1,2\n3,4,5,6\n")
    with pytest.raises(
        InputError, match=r"could not be read as CSV \(Error tokenizing"
    ):
        read_table(path, field="subset", filename="s.csv")


def test_read_table_invalid_utf8(tmp_path: Path) -> None:
    path = stored(tmp_path, b"name\ncaf\xe9\n")
    with pytest.raises(InputError, match="is not valid UTF-8 text"):
        read_table(path, field="subset", filename="s.csv")


def test_read_table_corrupt_parquet(tmp_path: Path) -> None:
    content = parquet_bytes(FRAME)
    path = stored(tmp_path, content[: len(content) // 2])
    with pytest.raises(InputError, match="could not be read as Parquet"):
        read_table(path, field="original", filename="t.parquet")


def test_read_table_parquet_suffix_without_signature(tmp_path: Path) -> None:
    path = stored(tmp_path, b"a,b\n1,2\n")
    with pytest.raises(InputError, match="is not a valid Parquet file"):
        read_table(path, field="original", filename="t.parquet")


def test_read_table_binary_content_with_csv_suffix(tmp_path: Path) -> None:
    path = stored(tmp_path, parquet_bytes(FRAME))
    with pytest.raises(InputError, match="has a CSV suffix but contains Parquet data"):
        read_table(path, field="original", filename="t.csv")


def test_read_table_parquet_duplicate_columns(tmp_path: Path) -> None:
    table = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"])
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    path = stored(tmp_path, buffer.getvalue())
    with pytest.raises(InputError, match=r"'t.parquet' could not be read as Parquet"):
        read_table(path, field="original", filename="t.parquet")


def test_read_table_unsupported_suffix(tmp_path: Path) -> None:
    path = stored(tmp_path, b"a,b\n1,2\n")
    with pytest.raises(
        UnsupportedFormatError, match=r"unsupported suffix '.xlsx'"
    ) as info:
        read_table(path, field="original", filename="book.xlsx")
    assert "Parquet (.parquet)" in info.value.message
    assert "JSON Lines (.jsonl, .ndjson)" in info.value.message


def test_read_table_object_npy_rejected(tmp_path: Path) -> None:
    array = np.array([{"a": 1}, None], dtype=object)
    path = stored(tmp_path, npy_bytes(array, allow_pickle=True))
    with pytest.raises(InputError, match="has dtype object .* never unpickled"):
        read_table(path, field="original", filename="o.npy")


def test_read_table_object_array_in_npz_rejected(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, X=np.array([[1, "a"]], dtype=object))
    path = stored(tmp_path, buffer.getvalue())
    with pytest.raises(InputError, match="array 'X' has dtype object"):
        read_table(path, field="original")


def test_read_table_truncated_npy(tmp_path: Path) -> None:
    content = npy_bytes(np.zeros((100, 4)))
    path = stored(tmp_path, content[:200])
    with pytest.raises(InputError, match=r"the array could not be read as .npy"):
        read_table(path, field="original", filename="a.npy")


def test_read_table_complex_npy_rejected(tmp_path: Path) -> None:
    path = stored(tmp_path, npy_bytes(np.ones(3, dtype=np.complex128)))
    with pytest.raises(InputError, match="dtype complex128; expected numbers"):
        read_table(path, field="original")


def test_read_table_scalar_npy_rejected(tmp_path: Path) -> None:
    path = stored(tmp_path, npy_bytes(np.array(3.0)))
    with pytest.raises(InputError, match="contains a single value"):
        read_table(path, field="original")


def test_read_labelled_npz(tmp_path: Path) -> None:
    features = np.arange(12, dtype=np.float32).reshape(4, 3)
    content = npz_bytes(X=features, y=np.array([0, 1, 1, 0]))
    X, y = read_labelled(stored(tmp_path, content), field="dataset", label_column="y")
    assert X.dtype == np.float32
    assert X.shape == (4, 3)
    assert y.tolist() == [0, 1, 1, 0]


def test_read_labelled_npz_keeps_image_dims(tmp_path: Path) -> None:
    content = npz_bytes(X=np.zeros((5, 1, 8, 8)), y=np.arange(5).reshape(5, 1))
    X, y = read_labelled(stored(tmp_path, content), field="dataset", label_column="y")
    assert X.shape == (5, 1, 8, 8)
    assert y.shape == (5,)


def test_read_labelled_npz_missing_y(tmp_path: Path) -> None:
    content = npz_bytes(X=np.zeros((5, 2)), labels=np.zeros(5))
    with pytest.raises(InputError, match=r"has no array y \(found \['X', 'labels'\]\)"):
        read_labelled(stored(tmp_path, content), field="dataset", label_column="y")


def test_read_labelled_npz_1d_features(tmp_path: Path) -> None:
    content = npz_bytes(X=np.zeros(5), y=np.zeros(5))
    with pytest.raises(InputError, match=r"X has shape \(5,\); expected at least 2"):
        read_labelled(stored(tmp_path, content), field="dataset", label_column="y")


def test_read_labelled_npz_text_features(tmp_path: Path) -> None:
    content = npz_bytes(X=np.array([["a", "b"]]), y=np.array([1]))
    with pytest.raises(InputError, match="dtype <U1; expected numbers"):
        read_labelled(stored(tmp_path, content), field="dataset", label_column="y")


def test_read_labelled_npz_length_mismatch(tmp_path: Path) -> None:
    content = npz_bytes(X=np.zeros((4, 2)), y=np.zeros(3))
    with pytest.raises(InputError, match="X has 4 rows but y has 3 labels"):
        read_labelled(stored(tmp_path, content), field="dataset", label_column="y")


def test_read_labelled_npz_two_column_labels(tmp_path: Path) -> None:
    content = npz_bytes(X=np.zeros((4, 2)), y=np.zeros((4, 2)))
    with pytest.raises(InputError, match=r"y has shape \(4, 2\); expected one label"):
        read_labelled(stored(tmp_path, content), field="dataset", label_column="y")


def test_read_labelled_csv_integer_features(tmp_path: Path) -> None:
    path = stored(tmp_path, b"a,b,label\n1,2,cat\n3,4,dog\n")
    X, y = read_labelled(path, field="dataset", label_column="label", filename="d.csv")
    assert X.dtype == np.int64
    assert X.tolist() == [[1, 2], [3, 4]]
    assert y.tolist() == ["cat", "dog"]


def test_read_labelled_csv_mixed_features_are_float(tmp_path: Path) -> None:
    path = stored(tmp_path, b"a,b,label\n1,2.5,0\n3,,1\n")
    X, _ = read_labelled(path, field="dataset", label_column="label")
    assert X.dtype == np.float64
    assert X[0].tolist() == [1.0, 2.5]
    assert np.isnan(X[1, 1])


def test_read_labelled_missing_label_column(tmp_path: Path) -> None:
    path = stored(tmp_path, b"a,b,target\n1,2,0\n")
    with pytest.raises(InputError) as info:
        read_labelled(path, field="dataset", label_column="targt", filename="d.csv")
    assert info.value.field == "label_column"
    assert info.value.message == (
        "label_column 'targt' not found in dataset; available columns: "
        "['a', 'b', 'target']; did you mean 'target'?"
    )


def test_read_labelled_non_numeric_features(tmp_path: Path) -> None:
    path = stored(tmp_path, b"a,colour,size,label\n1,red,L,0\n2,blue,S,1\n")
    with pytest.raises(InputError, match=r"non-numeric feature columns \['colour', "):
        read_labelled(path, field="dataset", label_column="label", filename="d.csv")


def test_read_labelled_missing_labels(tmp_path: Path) -> None:
    path = stored(tmp_path, b"a,label\n1,0\n2,\n3,\n")
    with pytest.raises(
        InputError, match=r"has 2 missing labels \(first rows \[1, 2\]\)"
    ):
        read_labelled(path, field="dataset", label_column="label", filename="d.csv")


def test_read_labelled_only_label_column(tmp_path: Path) -> None:
    path = stored(tmp_path, b"label\n0\n1\n")
    with pytest.raises(InputError, match="has only the label column"):
        read_labelled(path, field="dataset", label_column="label", filename="d.csv")
