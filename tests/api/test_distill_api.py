"""POST /api/v1/distill and the subset download, against a live server."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from examples.artifacts import build_data_artifacts
from tests.api.helpers import TIMEOUT, checks_by_name, only_error, post_files
from tests.servers import LiveServer

pytestmark = pytest.mark.slow

SCENARIOS = {"scenario_columns": "ink,width", "label_column": "label"}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_data_artifacts(tmp_path_factory.mktemp("distill-api-data"))


def post_distill(server: LiveServer, original: Path, **form: Any) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/v1/distill",
        files={"original": (original.name, original.read_bytes())},
        data={key: str(value) for key, value in form.items()},
        timeout=TIMEOUT,
    )


@pytest.fixture(scope="module")
def fifth(server: LiveServer, data: dict[str, Path]) -> dict[str, Any]:
    """A distillation of a fifth of the example original, finished."""
    response = post_distill(
        server, data["original_csv"], fraction=0.2, project="digits", **SCENARIOS
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_distill_fifth_passes(fifth: dict[str, Any]) -> None:
    checks = checks_by_name(fifth)
    assert fifth["status"] == "passed", [c["message"] for c in fifth["checks"]]
    assert fifth["kind"] == "data"
    assert fifth["project"] == "digits"
    assert checks["scenario_coverage"]["status"] == "passed"
    assert checks["feature_coverage"]["status"] == "passed"
    assert fifth["details"]["distill"]["rows"] == 359
    assert fifth["artifacts"]["original"]["filename"] == "original.csv"


def test_subset_download_passes_data_gate(
    server: LiveServer,
    data: dict[str, Path],
    fifth: dict[str, Any],
    tmp_path: Path,
) -> None:
    response = httpx.get(
        f"{server.url}/api/v1/distill/{fifth['id']}/subset", timeout=TIMEOUT
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == (
        'attachment; filename="original-subset.csv"'
    )
    subset = pd.read_csv(io.BytesIO(response.content))
    assert len(subset) == 359

    path = tmp_path / "subset.csv"
    path.write_bytes(response.content)
    gate = post_files(
        server.url,
        "data",
        {"original": data["original_csv"], "subset": path},
        **SCENARIOS,
    )
    assert gate.status_code == 200
    assert gate.json()["status"] == "passed"


def test_distill_parquet_format(server: LiveServer, data: dict[str, Path]) -> None:
    response = post_distill(
        server, data["original_csv"], size=150, format="parquet", **SCENARIOS
    )
    assert response.status_code == 200, response.text
    download = httpx.get(
        f"{server.url}/api/v1/distill/{response.json()['id']}/subset",
        timeout=TIMEOUT,
    )
    subset = pd.read_parquet(io.BytesIO(download.content))
    assert download.headers["content-disposition"] == (
        'attachment; filename="original-subset.parquet"'
    )
    assert len(subset) == 150


def test_distill_idempotency_key_replays(
    server: LiveServer, data: dict[str, Path]
) -> None:
    def post(size: int) -> httpx.Response:
        return httpx.post(
            f"{server.url}/api/v1/distill",
            files={"original": ("original.csv", data["original_csv"].read_bytes())},
            data={"size": str(size), "project": "replays"},
            headers={"Idempotency-Key": "distill-run-1"},
            timeout=TIMEOUT,
        )

    first = post(100)
    again = post(100)
    other = post(101)
    assert first.status_code == 200
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert other.status_code == 409
    assert only_error(other)["loc"] == ["header", "Idempotency-Key"]


def test_distill_listed_as_data_gate(server: LiveServer, fifth: dict[str, Any]) -> None:
    response = httpx.get(
        f"{server.url}/api/v1/gates", params={"project": "digits", "kind": "data"}
    )
    assert fifth["id"] in [item["id"] for item in response.json()["items"]]


@pytest.mark.parametrize(
    ("form", "status", "loc", "message"),
    [
        (
            {"size": "10", "fraction": "0.2"},
            422,
            ["body", "size"],
            "send exactly one of size (a row count) and fraction (of the "
            "original's rows); got size='10' and fraction='0.2'",
        ),
        (
            {"fraction": "20%"},
            422,
            ["body", "fraction"],
            "fraction must be a number above 0 and at most 1, such as 0.2; got '20%'",
        ),
        (
            {"fraction": "0"},
            422,
            ["body", "fraction"],
            "fraction must be above 0 and at most 1, for example 0.2 for a fifth "
            "of the rows; got 0.0",
        ),
        (
            {"size": "1798"},
            422,
            ["body", "size"],
            "size must be a whole number of rows from 1 to 1797, the original's "
            "row count; got 1798",
        ),
        (
            {"fraction": "0.2", "format": "xlsx"},
            422,
            ["body", "format"],
            "format 'xlsx' is not supported for the subset; use csv, jsonl, parquet",
        ),
        (
            {"fraction": "0.2", "fractoin": "0.3"},
            422,
            ["body", "fractoin"],
            "unknown form field 'fractoin'; did you mean 'fraction'?; this gate "
            "takes branch, commit, format, fraction, label_column, original, "
            "policy, project, scenario_columns, size",
        ),
        (
            {"fraction": "0.2", "policy": '{"min_coverage": 95}'},
            422,
            ["body", "policy", "min_coverage"],
            None,
        ),
    ],
)
def test_distill_bad_input_rejected(
    server: LiveServer,
    data: dict[str, Path],
    form: dict[str, str],
    status: int,
    loc: list[str],
    message: str | None,
) -> None:
    response = post_distill(server, data["original_csv"], **form)
    error = only_error(response)
    assert response.status_code == status
    assert error["loc"] == loc
    if message is not None:
        assert error["msg"] == message


def test_distill_without_original_rejected(server: LiveServer) -> None:
    response = httpx.post(
        f"{server.url}/api/v1/distill", data={"fraction": "0.2"}, timeout=TIMEOUT
    )
    error = only_error(response)
    assert response.status_code == 422
    assert error["loc"] == ["body", "original"]


def test_distill_unreadable_original_rejected(
    server: LiveServer, tmp_path: Path
) -> None:
    path = tmp_path / "rows.csv"
    path.write_bytes(b"a,b,a\n1,2,3\n")
    response = post_distill(server, path, fraction="0.5")
    error = only_error(response)
    assert response.status_code == 422
    assert error["msg"] == (
        "original 'rows.csv' could not be read as CSV: the header row names the "
        "columns ['a'] more than once; give every column a unique name"
    )


def test_subset_of_plain_gate_not_found(
    server: LiveServer, data: dict[str, Path]
) -> None:
    gate = post_files(
        server.url,
        "data",
        {"original": data["original_csv"], "subset": data["subset_good_csv"]},
    )
    response = httpx.get(
        f"{server.url}/api/v1/distill/{gate.json()['id']}/subset", timeout=TIMEOUT
    )
    error = only_error(response)
    assert response.status_code == 404
    assert error["msg"] == (
        f"gate {gate.json()['id']} has no subset: it is a data gate, not a "
        "distillation; only gates created by POST /api/v1/distill have a subset"
    )


def test_subset_of_unknown_gate_not_found(server: LiveServer) -> None:
    response = httpx.get(f"{server.url}/api/v1/distill/{'0' * 32}/subset")
    assert response.status_code == 404
    assert only_error(response)["msg"] == f"gate {'0' * 32!r} not found"


def test_cli_distill_against_server(
    server: LiveServer, data: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "subset.jsonl"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.cli.main",
            "distill",
            "--server",
            server.url,
            "--original",
            str(data["original_csv"]),
            "--fraction",
            "0.2",
            "--scenario-column",
            "ink,width",
            "--label-column",
            "label",
            "--out",
            str(out),
        ],
        env={**os.environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    subset = pd.read_json(out, lines=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "data gate PASSED" in result.stdout
    assert len(subset) == 359
