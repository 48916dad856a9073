"""`distilgate distill` run as a real process on the bundled example data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from app.evaluation.readers import read_table
from app.evaluation.required import rule_mask
from examples.artifacts import build_data_artifacts

pytestmark = pytest.mark.slow

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_data_artifacts(tmp_path_factory.mktemp("distill-data"))


@pytest.fixture
def cli(tmp_path: Path) -> Run:
    env = {
        **os.environ,
        "DISTILGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "DISTILGATE_DATA_DIR": str(tmp_path / "data"),
        "COLUMNS": "200",
    }

    def run(*args: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "app.cli.main", *map(str, args)],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
        )

    return run


def scenario_args(data: dict[str, Path]) -> list[object]:
    return [
        "--original",
        data["original_csv"],
        "--scenario-column",
        "ink",
        "--scenario-column",
        "width",
        "--label-column",
        "label",
    ]


def test_distill_fifth_passes_and_rechecks(
    cli: Run, data: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = cli(
        "distill",
        *scenario_args(data),
        "--fraction",
        "0.2",
        "--out",
        out / "subset.csv",
        "--result",
        out / "result.json",
        "--junit",
        out / "junit.xml",
        "--markdown",
        out / "report.md",
    )
    assert result.returncode == 0, result.stderr
    assert "data gate PASSED" in result.stdout
    stored = json.loads((out / "result.json").read_text())
    original = pd.read_csv(data["original_csv"])
    subset = pd.read_csv(out / "subset.csv")
    assert stored["status"] == "passed"
    assert stored["details"]["distill"]["rows"] == round(0.2 * len(original))
    assert len(subset) == round(0.2 * len(original))
    assert list(subset.columns) == list(original.columns)
    assert "<testsuite" in (out / "junit.xml").read_text()
    assert "PASSED" in (out / "report.md").read_text().upper()

    recheck = cli(
        "check",
        "data",
        "--original",
        data["original_csv"],
        "--subset",
        out / "subset.csv",
        "--scenario-columns",
        "ink,width",
        "--label-column",
        "label",
    )
    assert recheck.returncode == 0, recheck.stdout + recheck.stderr


def test_distill_parquet_to_jsonl_keeps_required(
    cli: Run, data: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "subset.jsonl"
    result = cli(
        "distill",
        "--original",
        data["original_parquet"],
        "--size",
        "120",
        "--scenario-column",
        "ink,width",
        "--required",
        "label=8",
        "--required",
        "ink=low",
        "--policy",
        '{"min_required_rows": 4}',
        "--out",
        out,
        "--json",
    )
    body = json.loads(result.stdout)
    subset = read_table(out, field="subset", filename=out.name)
    assert result.returncode == 0, result.stderr
    assert body["policy"]["required_scenarios"] == [{"label": "8"}, {"ink": "low"}]
    assert len(subset) == 120
    assert int(rule_mask(subset, {"label": 8}).sum()) >= 4
    assert int(rule_mask(subset, {"ink": "low"}).sum()) >= 4


def test_distill_failing_subset_exits_1(
    cli: Run, data: dict[str, Path], tmp_path: Path
) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text('{"min_coverage": 0.99}')
    out = tmp_path / "subset.parquet"
    result = cli(
        "distill",
        *scenario_args(data),
        "--size",
        "20",
        "--policy",
        policy,
        "--out",
        out,
    )
    assert result.returncode == 1, result.stderr
    assert "data gate FAILED" in result.stdout
    assert len(read_table(out, field="subset", filename=out.name)) == 20


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            ["--fraction", "0.2", "--out", "subset.xlsx"],
            "error: out: --out 'subset.xlsx' has the suffix '.xlsx', which sets no "
            "subset format; end the file name with .csv, .jsonl, .ndjson, .parquet",
        ),
        (
            ["--fraction", "1.5", "--out", "subset.csv"],
            "error: fraction: fraction must be above 0 and at most 1, for example "
            "0.2 for a fifth of the rows; got 1.5",
        ),
        (
            ["--size", "5000", "--out", "subset.csv"],
            "error: size: size must be a whole number of rows from 1 to 1797, the "
            "original's row count; got 5000",
        ),
        (
            ["--fraction", "0.2", "--required", "label", "--out", "subset.csv"],
            "error: required: --required 'label' is not COLUMN=VALUE; write for "
            "example --required 'status=failed'",
        ),
        (
            ["--fraction", "0.2", "--policy", "{min_coverage: 1}", "--out", "s.csv"],
            "error: policy: --policy '{min_coverage: 1}' is not valid JSON "
            "(Expecting property name "
            "enclosed in double quotes at column 2); write an object such as "
            "'{\"min_coverage\": 0.9}' or give a file name",
        ),
    ],
)
def test_distill_bad_input_exits_2(
    cli: Run, data: dict[str, Path], tmp_path: Path, options: list[str], message: str
) -> None:
    result = cli("distill", "--original", data["original_csv"], *options)
    assert result.returncode == 2
    assert result.stderr.strip() == message
    assert not (tmp_path / "subset.csv").exists()


def test_distill_unknown_scenario_column_exits_2(
    cli: Run, data: dict[str, Path]
) -> None:
    result = cli(
        "distill",
        "--original",
        data["original_csv"],
        "--scenario-column",
        "inc",
        "--fraction",
        "0.2",
        "--out",
        "subset.csv",
    )
    assert result.returncode == 2
    assert "'inc'" in result.stderr
    assert "did you mean 'ink'?" in result.stderr


def test_distill_size_and_fraction_exclusive(cli: Run, data: dict[str, Path]) -> None:
    result = cli(
        "distill",
        "--original",
        data["original_csv"],
        "--size",
        "10",
        "--fraction",
        "0.2",
        "--out",
        "subset.csv",
    )
    assert result.returncode == 2
    assert "not allowed with argument" in result.stderr


def test_distill_budget_below_required_exits_2(
    cli: Run, data: dict[str, Path], tmp_path: Path
) -> None:
    result = cli(
        "distill",
        "--original",
        data["original_csv"],
        "--size",
        "4",
        "--required",
        "label=1",
        "--required",
        "label=2",
        "--policy",
        '{"min_required_rows": 3}',
        "--out",
        "subset.csv",
        "--json",
    )
    body = json.loads(result.stdout)
    assert result.returncode == 2
    assert body["status"] == "error"
    assert body["error"] == (
        "size: size gives 4 rows, too few to keep the required scenarios "
        "(label='1'; label='2') with min_required_rows=3 rows each, or all the "
        "original has: they need at least 6 rows; ask for a size of at least 6 or "
        "lower min_required_rows"
    )
    assert not (tmp_path / "subset.csv").exists()
