"""Parsers check declared sizes before they allocate, and XML is read safely.

Unit tests call the readers directly. Live tests send the same files to the
server (SQLite, then PostgreSQL) and check the response. They also check that
the server's resident memory stays flat and that it still serves requests.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest

from app.errors import InputError, PayloadTooLargeError
from app.evaluation.code_coverage import read_coverage
from app.evaluation.code_coverage.xml_stream import MAX_DEPTH, MAX_TOKEN_BYTES
from app.evaluation.model_forms import open_model
from app.evaluation.numpy_files import MAX_ARRAY_BYTES
from app.evaluation.readers import read_labelled, read_table
from app.evaluation.upload_limits import MAX_TABLE_CELLS
from tests.security.corpus import (
    billion_laughs,
    cobertura,
    damaged_zip,
    deep_xml,
    error_of,
    external_entity,
    forged_npy,
    forged_npz,
    jacoco,
    long_attribute_xml,
    npy_bytes,
    parquet_declaring_rows,
    post_gate,
    resident_bytes,
)

# Loose on purpose: the point is that no file makes the server allocate what
# its header declares (terabytes here), not a precise memory budget.
RSS_GROWTH_LIMIT = 500 * 1024**2
HUGE_SHAPE = (10**12,)
BEYOND_FILE_SHAPE = (10**6, 10)


def write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


# NumPy headers


def test_npy_huge_shape_rejected_before_allocation(tmp_path: Path) -> None:
    path = write(tmp_path, "x.npy", forged_npy(HUGE_SHAPE))
    with pytest.raises(PayloadTooLargeError) as caught:
        read_table(path, field="original", filename="x.npy")
    assert caught.value.message == (
        "original 'x.npy': the array declares shape (1000000000000,) of dtype "
        "float64, 8,000,000,000,000 bytes, more than the "
        f"{MAX_ARRAY_BYTES:,} bytes an array may take; upload fewer rows or a "
        "smaller dtype"
    )
    assert caught.value.status_code == 413


def test_npy_shape_beyond_file_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "x.npy", forged_npy(BEYOND_FILE_SHAPE))
    with pytest.raises(InputError) as caught:
        read_table(path, field="subset", filename="x.npy")
    assert caught.value.message == (
        "subset 'x.npy': the array could not be read as .npy: its header declares "
        "shape (1000000, 10) of dtype float64, 80,000,000 bytes, but only 64 bytes "
        "of data follow; the file is truncated, save it again with numpy.save or "
        "numpy.savez"
    )
    assert caught.value.status_code == 422


def test_npy_negative_shape_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "x.npy", forged_npy((-1, 4)))
    with pytest.raises(InputError, match=r"declares the negative shape \(-1, 4\)"):
        read_table(path, field="original", filename="x.npy")


def python2_npy(values: list[float]) -> bytes:
    """Return a version 1.0 ``.npy`` whose header has a Python 2 long, ``3L``."""
    header = f"{{'descr': '<f8', 'fortran_order': False, 'shape': ({len(values)}L,), }}"
    padding = 64 - (10 + len(header) + 1) % 64
    text = (header + " " * padding + "\n").encode("latin1")
    prefix = b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little")
    return prefix + text + np.asarray(values, dtype="<f8").tobytes()


def test_npy_python2_header_reads(tmp_path: Path) -> None:
    path = write(tmp_path, "old.npy", python2_npy([1.5, 2.5, 3.5]))
    table = read_table(path, field="original", filename="old.npy")
    assert table["f0"].tolist() == [1.5, 2.5, 3.5]


@pytest.mark.parametrize(
    ("shape", "error"),
    [(HUGE_SHAPE, PayloadTooLargeError), (BEYOND_FILE_SHAPE, InputError)],
)
def test_npz_member_shape_checked(
    tmp_path: Path, shape: tuple[int, ...], error: type[InputError]
) -> None:
    path = write(tmp_path, "x.npz", forged_npz(shape))
    with pytest.raises(error, match=r"array 'X' (declares|could not be read)"):
        read_labelled(path, field="dataset", label_column="label", filename="x.npz")


def test_npz_real_arrays_still_read(tmp_path: Path) -> None:
    path = tmp_path / "ok.npz"
    np.savez_compressed(path, X=np.ones((6, 3)), y=np.arange(6))
    features, labels = read_labelled(path, field="dataset", label_column="label")
    assert features.shape == (6, 3)
    assert labels.tolist() == [0, 1, 2, 3, 4, 5]


# Parquet footer


def test_parquet_forged_footer_declares_billion_rows(tmp_path: Path) -> None:
    path = write(tmp_path, "x.parquet", parquet_declaring_rows(10**9))
    # The forgery must have worked, or the test below proves nothing.
    assert pq.ParquetFile(path).metadata.num_rows == 10**9
    with pytest.raises(PayloadTooLargeError) as caught:
        read_table(path, field="original", filename="x.parquet")
    assert caught.value.message == (
        "original 'x.parquet' declares 1,000,000,000 rows of 1 columns in its "
        f"Parquet footer, more than the {MAX_TABLE_CELLS:,} cells a table may "
        "have; upload fewer rows"
    )


def test_parquet_honest_footer_read(tmp_path: Path) -> None:
    path = write(tmp_path, "x.parquet", parquet_declaring_rows(4242))
    assert read_table(path, field="original", filename="x.parquet").shape == (4242, 1)


# XML


def test_xml_deep_nesting_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "c.xml", deep_xml(MAX_DEPTH + 10))
    with pytest.raises(InputError) as caught:
        read_coverage(path, field="original")
    assert caught.value.message == (
        f"original nests elements more than {MAX_DEPTH} levels deep; coverage "
        "reports nest a few levels, so upload the report as the coverage tool "
        "wrote it"
    )


def test_xml_long_attribute_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "c.xml", long_attribute_xml(MAX_TOKEN_BYTES + 1))
    with pytest.raises(PayloadTooLargeError) as caught:
        read_coverage(path, field="subset")
    assert caught.value.message.startswith(
        f"subset has a tag or text longer than {MAX_TOKEN_BYTES:,} bytes"
    )


def test_xml_jacoco_doctype_accepted(tmp_path: Path) -> None:
    report = read_coverage(write(tmp_path, "j.xml", jacoco()), field="original")
    assert report.format == "jacoco"


# Live server


def healthy(server) -> bool:
    return httpx.get(f"{server.url}/healthz", timeout=10.0).status_code == 200


def post_and_measure(server, kind: str, files: dict[str, tuple[str, bytes]]):
    before = resident_bytes(server.process.pid)
    response = post_gate(server.url, kind, files)
    growth = resident_bytes(server.process.pid) - before
    return response, growth


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "content", "status", "fragment"),
    [
        ("x.npy", forged_npy(HUGE_SHAPE), 413, "8,000,000,000,000 bytes"),
        ("x.npy", forged_npy(BEYOND_FILE_SHAPE), 422, "only 64 bytes"),
        ("x.npz", forged_npz(HUGE_SHAPE), 413, "array 'X' declares shape"),
        ("x.parquet", parquet_declaring_rows(10**9), 413, "1,000,000,000 rows"),
    ],
    ids=["npy-huge", "npy-beyond-file", "npz-huge", "parquet-billion-rows"],
)
def test_declared_size_refused_live(
    server, name: str, content: bytes, status: int, fragment: str
) -> None:
    files = {"original": (name, content), "subset": (name, content)}
    response, growth = post_and_measure(server, "data", files)
    error = error_of(response)
    assert response.status_code == status
    assert error["loc"] == ["body", "original"]
    assert fragment in str(error["msg"])
    assert growth < RSS_GROWTH_LIMIT
    assert healthy(server)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("content", "status", "fragment"),
    [
        (billion_laughs(), 422, "declares the XML entity 'lol0'"),
        (billion_laughs("report"), 422, "declares the XML entity 'lol0'"),
        (external_entity(Path("/etc/passwd")), 422, "declares the XML entity 'x'"),
        (deep_xml(MAX_DEPTH + 1), 422, "levels deep"),
        (long_attribute_xml(MAX_TOKEN_BYTES + 1), 413, "tag or text longer"),
    ],
    ids=["laughs-cobertura", "laughs-jacoco", "external", "deep", "long-token"],
)
def test_hostile_xml_refused_live(
    server, content: bytes, status: int, fragment: str
) -> None:
    files = {
        "original_coverage": ("coverage.xml", content),
        "subset_coverage": ("coverage.xml", cobertura()),
    }
    response, growth = post_and_measure(server, "data", files)
    error = error_of(response)
    assert response.status_code == status
    assert error["loc"] == ["body", "original_coverage"]
    assert fragment in str(error["msg"])
    assert "root:" not in str(error["msg"])
    assert growth < RSS_GROWTH_LIMIT
    assert healthy(server)


@pytest.mark.slow
def test_jacoco_doctype_accepted_live(server) -> None:
    files = {
        "original_coverage": ("jacoco.xml", jacoco(covered_second_line=True)),
        "subset_coverage": ("jacoco.xml", jacoco(covered_second_line=False)),
    }
    response = post_gate(server.url, "data", files)
    result = response.json()
    assert response.status_code == 200, result
    assert result["status"] == "failed"
    assert result["artifacts"]["original_coverage"]["filename"] == "jacoco.xml"


# Damaged archives


@pytest.mark.parametrize("flaw", ["encrypted", "unknown-method"])
def test_npz_damaged_member_is_input_error(tmp_path: Path, flaw: str) -> None:
    content = damaged_zip("X.npy", npy_bytes(np.ones((2, 2))), flaw)
    path = write(tmp_path, "x.npz", content)
    with pytest.raises(InputError) as caught:
        read_table(path, field="original", filename="x.npz")
    assert caught.value.message.startswith(
        "original 'x.npz' could not be read as .npz ("
    )
    assert caught.value.status_code == 422


@pytest.mark.parametrize("flaw", ["encrypted", "unknown-method"])
def test_model_zip_damaged_member_is_input_error(tmp_path: Path, flaw: str) -> None:
    path = write(tmp_path, "m.zip", damaged_zip("model.onnx", b"\x08\x07", flaw))
    workdir = tmp_path / "work"
    workdir.mkdir()
    with pytest.raises(InputError) as caught:
        open_model(path, field="student", workdir=workdir)
    assert caught.value.message.startswith(
        "student file 'm.zip' is a corrupt zip archive ("
    )
    assert caught.value.field == "student"
