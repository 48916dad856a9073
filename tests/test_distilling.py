"""Distillation jobs: request checks, subset files and their download names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from app.auth import ANONYMOUS_ADMIN
from app.config import Settings
from app.distilling import (
    DistillService,
    distill_request,
    encode_table,
    prepare_distill,
    subset_file,
    subset_filename,
)
from app.errors import ConflictError, InputError, NotFoundError
from app.evaluation.cleaning import row_hashes
from app.evaluation.readers import read_table
from app.gate_inputs import ArtifactRef
from app.gates import GateMeta, Upload
from app.jobs import run_job
from app.policy import Policy
from app.runtime import Runtime
from app.storage.blobs import BlobStore
from app.storage.repository import GateRepository


def request(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "size": None,
        "fraction": "0.2",
        "scenario_columns": [],
        "label_column": None,
        "output_format": None,
    }
    return distill_request(**(values | changes))


def mixed_table(rows: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    table = pd.DataFrame(
        {
            "x": rng.normal(size=rows) / 3.0,
            "y": rng.uniform(size=rows) * 1e-7,
            "n": rng.integers(0, 1000, size=rows),
            "kind": rng.choice(["a", "b", "c d"], size=rows),
        }
    )
    table.loc[5, "x"] = np.nan
    return table


def test_request_fraction_parsed_from_text() -> None:
    stored = request(fraction="0.25", scenario_columns=["kind"], output_format="csv")
    assert stored == {
        "source": "distill",
        "size": None,
        "fraction": 0.25,
        "scenario_columns": ["kind"],
        "label_column": None,
        "format": "csv",
    }


def test_request_size_parsed_from_text() -> None:
    assert request(size="40", fraction=None)["size"] == 40


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        (
            {"size": "40", "fraction": "0.2"},
            "size",
            "send exactly one of size (a row count) and fraction (of the "
            "original's rows); got size='40' and fraction='0.2'",
        ),
        (
            {"size": None, "fraction": None},
            "size",
            "send exactly one of size (a row count) and fraction (of the "
            "original's rows); got size=None and fraction=None",
        ),
        (
            {"size": "12.5", "fraction": None},
            "size",
            "size must be a whole number of rows, such as 200; got '12.5'",
        ),
        (
            {"size": 12.5, "fraction": None},
            "size",
            "size must be a whole number of rows, such as 200; got 12.5",
        ),
        (
            {"size": True, "fraction": None},
            "size",
            "size must be a whole number of rows, such as 200; got True",
        ),
        (
            {"fraction": "a fifth"},
            "fraction",
            "fraction must be a number above 0 and at most 1, such as 0.2; got "
            "'a fifth'",
        ),
        (
            {"fraction": "nan"},
            "fraction",
            "fraction must be a number above 0 and at most 1, such as 0.2; got 'nan'",
        ),
        (
            {"output_format": "xlsx"},
            "format",
            "format 'xlsx' is not supported for the subset; use csv, jsonl, parquet",
        ),
    ],
)
def test_request_bad_value_rejected(
    changes: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(InputError) as info:
        request(**changes)
    assert info.value.field == field
    assert info.value.message == message


@pytest.mark.parametrize(
    ("name", "output_format", "expected"),
    [
        ("orders.csv", "csv", "orders-subset.csv"),
        (r"C:\data\orders 2026.parquet", "jsonl", "orders_2026-subset.jsonl"),
        (
            '../"evil"\r\nSet-Cookie: x.csv',
            "parquet",
            "evil_Set-Cookie_x-subset.parquet",
        ),
        ("..", "csv", "original-subset.csv"),
        (None, "csv", "original-subset.csv"),
        ("données.csv", "csv", "donn_es-subset.csv"),
    ],
)
def test_subset_filename_safe(
    name: str | None, output_format: str, expected: str
) -> None:
    assert subset_filename(name, output_format) == expected


@pytest.mark.parametrize("output_format", ["csv", "jsonl", "parquet"])
def test_encoded_subset_rows_match_original(tmp_path: Path, output_format: str) -> None:
    original = mixed_table()
    subset = original.iloc[[0, 5, 17, 99]]
    path = tmp_path / "subset"
    path.write_bytes(encode_table(subset, output_format))
    read_back = read_table(path, field="subset", filename=f"s.{output_format}")
    original_hashes, subset_hashes = row_hashes(original, read_back)
    assert list(read_back.columns) == list(original.columns)
    assert subset_hashes.tolist() == original_hashes[[0, 5, 17, 99]].tolist()


def test_prepare_rejects_size_above_rows(tmp_path: Path) -> None:
    path = tmp_path / "original"
    path.write_bytes(encode_table(mixed_table(), "csv"))
    ref = ArtifactRef(path, "original.csv")
    with pytest.raises(InputError) as info:
        prepare_distill(
            request(size="500", fraction=None), ref, Policy(), BlobStore(tmp_path)
        )
    assert info.value.field == "size"
    assert info.value.message == (
        "size must be a whole number of rows from 1 to 120, the original's row "
        "count; got 500"
    )


def test_prepare_rejects_unknown_scenario_column(tmp_path: Path) -> None:
    path = tmp_path / "original"
    path.write_bytes(encode_table(mixed_table(), "csv"))
    ref = ArtifactRef(path, "original.csv")
    with pytest.raises(InputError, match="'knid'") as info:
        prepare_distill(
            request(scenario_columns=["knid"]), ref, Policy(), BlobStore(tmp_path)
        )
    assert info.value.field == "scenario_columns"


def test_distill_job_keeps_original_format(tmp_path: Path) -> None:
    original = mixed_table()
    path = tmp_path / "original"
    path.write_bytes(encode_table(original, "jsonl"))
    store = BlobStore(tmp_path / "blobs")
    stages: list[str] = []
    run = prepare_distill(
        request(fraction="0.25", scenario_columns=["kind"]),
        ArtifactRef(path, "rows.jsonl"),
        Policy(),
        store,
        lambda stage, _fraction: stages.append(stage),
    )
    details = run().details
    stored = details["distill"]["subset"]
    subset = read_table(
        store.path_for(stored["sha256"]), field="subset", filename="s.jsonl"
    )
    assert stored["format"] == "jsonl"
    assert stored["filename"] == "rows-subset.jsonl"
    assert details["distill"]["rows"] == 30
    assert len(subset) == 30
    assert set(subset["kind"]) == {"a", "b", "c d"}
    assert "distill_coverage" in stages


def test_distill_job_explains_fewer_rows(tmp_path: Path) -> None:
    # 40 rows, but only four distinct ones: ten copies each.
    original = mixed_table(4).loc[np.repeat(np.arange(4), 10)]
    path = tmp_path / "original.csv"
    path.write_bytes(encode_table(original, "csv"))
    run = prepare_distill(
        request(fraction=None, size="20"),
        ArtifactRef(path, "original.csv"),
        Policy(),
        BlobStore(tmp_path / "blobs"),
    )
    details = run().details["distill"]
    assert details["rows"] == 4
    assert details["requested_rows"] == 20
    assert details["note"] == (
        "4 rows, fewer than the 20 requested: the original has 4 rows left after "
        "removing invalid rows and duplicates, and only those are chosen"
    )


def test_stored_distill_runs_without_runner(database_url: str, tmp_path: Path) -> None:
    runtime = Runtime(Settings(database_url=database_url, data_dir=tmp_path / "data"))
    runtime.database.migrate()
    original = tmp_path / "original.csv"
    original.write_bytes(encode_table(mixed_table(), "csv"))
    try:
        with original.open("rb") as stream, runtime.database.session() as session:
            service = DistillService(
                GateRepository(session), runtime.store, runtime.limits
            )
            intake = service.intake_distill(
                Upload(field="original", filename="original.csv", stream=stream),
                GateMeta(project="jobs"),
                request(fraction="0.25", scenario_columns=["kind"]),
                None,
            )
        gate_id = intake.record.id
        queued = runtime.get(gate_id, ANONYMOUS_ADMIN)
        with pytest.raises(ConflictError, match="is still queued"):
            subset_file(queued, runtime.store)

        record = run_job(gate_id, None, runtime.scope)
        result = runtime.get(gate_id, ANONYMOUS_ADMIN)
        found = subset_file(result, runtime.store)
        subset = read_table(found.path, field="subset", filename=found.filename)
        assert record is not None
        assert result.status in {"passed", "failed"}
        assert found.filename == "original-subset.csv"
        assert found.media_type == "text/csv"
        assert len(subset) == 30

        found.path.unlink()
        with pytest.raises(NotFoundError, match="not in this server's store"):
            subset_file(result, runtime.store)
    finally:
        runtime.stop()
