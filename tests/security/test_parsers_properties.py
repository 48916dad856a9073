"""Property tests: any bytes give a parsed result or a DistilGateError.

Every parser of uploads gets random bytes and valid samples with one slice
replaced by random bytes: CSV, JSON Lines, Parquet, .npy and .npz tables, an
evaluation set, each coverage format, and model zips. Any other exception,
such as MemoryError, KeyError or a pandas or pyarrow error, fails the test.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.errors import DistilGateError
from app.evaluation.code_coverage import read_coverage
from app.evaluation.model_forms import open_model
from app.evaluation.readers import read_labelled, read_table
from tests.security.corpus import cobertura, jacoco, npy_bytes


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {"a": [1, 2, 3], "b": [0.5, None, 2.5], "label": ["x", "y", "x"]}
    )


def _parquet() -> bytes:
    buffer = io.BytesIO()
    _frame().to_parquet(buffer)
    return buffer.getvalue()


def _npz() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, X=np.arange(12.0).reshape(4, 3), y=np.array([0, 1, 0, 1]))
    return buffer.getvalue()


def _model_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model/model.onnx", b"\x08\x07\x12\x04test")
        archive.writestr("model/model.data", bytes(64))
    return buffer.getvalue()


SAMPLES: dict[str, bytes] = {
    "t.csv": _frame().to_csv(index=False).encode(),
    "t.jsonl": _frame().to_json(orient="records", lines=True).encode(),
    "t.parquet": _parquet(),
    "t.npy": npy_bytes(np.arange(12, dtype=np.int32).reshape(4, 3)),
    "t.npz": _npz(),
}
COVERAGE: dict[str, bytes] = {
    "cobertura": cobertura(),
    "jacoco": jacoco(),
    "lcov": b"TN:\nSF:/src/a.c\nDA:1,1\nDA:2,0\nBRDA:2,0,0,-\nend_of_record\n",
    "json": (
        b'{"meta": {"format": 3}, "files": {"a.py": {"executed_lines": [1], '
        b'"missing_lines": [2], "executed_branches": [[1, 2]], '
        b'"missing_branches": [[1, -1]]}}}'
    ),
}
EXAMPLES = 120


def mutated(sample: bytes) -> st.SearchStrategy[bytes]:
    """The sample with one slice replaced by up to 32 random bytes."""
    cut = st.integers(min_value=0, max_value=len(sample))
    return st.tuples(cut, cut, st.binary(max_size=32)).map(
        lambda parts: (
            sample[: min(parts[0], parts[1])]
            + parts[2]
            + sample[max(parts[0], parts[1]) :]
        )
    )


def contents(sample: bytes) -> st.SearchStrategy[bytes]:
    return st.one_of(
        mutated(sample),
        st.binary(min_size=1, max_size=300),
        st.text(min_size=1, max_size=200).map(str.encode),
    )


def check_any_bytes(
    scratch: Path, sample: bytes, parse: Callable[[Path], object]
) -> None:
    """Parse the sample, then generated contents: a result or DistilGateError."""
    scratch.write_bytes(sample)
    assert parse(scratch) is not None

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(content=contents(sample))
    def check(content: bytes) -> None:
        scratch.write_bytes(content)
        try:
            parse(scratch)
        except DistilGateError as exc:
            assert exc.status_code < 500
            assert exc.field is not None

    check()


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_table_reader_any_bytes(tmp_path: Path, name: str) -> None:
    check_any_bytes(
        tmp_path / "upload",
        SAMPLES[name],
        lambda path: read_table(path, field="original", filename=name),
    )


@pytest.mark.parametrize("name", ["t.csv", "t.npz"])
def test_labelled_reader_any_bytes(tmp_path: Path, name: str) -> None:
    sample = SAMPLES[name]
    if name == "t.csv":
        sample = b"a,b,label\n1,2,0\n3,4,1\n"
    check_any_bytes(
        tmp_path / "upload",
        sample,
        lambda path: read_labelled(
            path, field="dataset", label_column="label", filename=name
        ),
    )


@pytest.mark.parametrize("name", sorted(COVERAGE))
def test_coverage_reader_any_bytes(tmp_path: Path, name: str) -> None:
    check_any_bytes(
        tmp_path / "upload",
        COVERAGE[name],
        lambda path: read_coverage(path, field="original_coverage"),
    )


def test_model_zip_any_bytes(tmp_path: Path) -> None:
    counter = iter(range(10**6))

    def parse(path: Path) -> object:
        workdir = tmp_path / f"work{next(counter)}"
        workdir.mkdir()
        return open_model(path, field="teacher", workdir=workdir)

    check_any_bytes(tmp_path / "model.zip", _model_zip(), parse)
