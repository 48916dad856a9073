"""Stored progress of running data gates, against a real database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from app.auth import ANONYMOUS_ADMIN
from app.config import Settings
from app.gates import GateMeta, Upload
from app.runtime import Runtime

STAGES = {
    "clean",
    "encode",
    "clusters",
    "near_duplicates",
    "scenarios",
    "subset_neighbours",
    "coverage",
    "edge_cases",
    "distributions",
}


@pytest.fixture
def runtime(database_url: str, tmp_path: Path) -> Any:
    runtime = Runtime(Settings(database_url=database_url, data_dir=tmp_path / "data"))
    runtime.database.migrate()
    yield runtime
    runtime.stop()


@pytest.fixture
def tables(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(5)
    original = pd.DataFrame(
        {
            "x": rng.normal(size=600),
            "y": rng.normal(size=600),
            "kind": rng.choice(["a", "b", "c"], size=600),
        }
    )
    paths = {"original": tmp_path / "original.csv", "subset": tmp_path / "subset.csv"}
    original.to_csv(paths["original"], index=False)
    original.iloc[::3].to_csv(paths["subset"], index=False)
    return paths


@contextmanager
def uploads(paths: dict[str, Path]) -> Iterator[dict[str, Upload]]:
    with ExitStack() as stack:
        yield {
            role: Upload(
                field=role,
                filename=path.name,
                stream=stack.enter_context(path.open("rb")),
            )
            for role, path in paths.items()
        }


def test_data_gate_intake_reports_every_stage(
    runtime: Runtime, tables: dict[str, Path]
) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    with uploads(tables) as files, runtime.scope() as service:
        intake = service.intake_uploads(
            "data",
            files,
            GateMeta(project="progress"),
            {"scenario_columns": ["kind"]},
            None,
            save_progress=lambda gate, progress: seen.append((gate, progress)),
        )
    assert intake.runner is not None
    intake.runner()
    assert {gate for gate, _ in seen} == {intake.record.id}
    assert {progress["stage"] for _, progress in seen} == STAGES
    assert all(0.0 <= progress["fraction"] <= 1.0 for _, progress in seen)


def test_stored_data_gate_runner_reports_stages(
    runtime: Runtime, tables: dict[str, Path]
) -> None:
    with uploads(tables) as files, runtime.scope() as service:
        intake = service.intake_uploads(
            "data", files, GateMeta(project="progress"), {}, None
        )
    stages: set[str] = set()
    with runtime.scope() as service:
        runner = service.runner_for(
            intake.record,
            lambda _, progress: stages.add(progress["stage"]),
        )
    runner()
    assert stages == STAGES


def test_runtime_watch_sees_stored_progress(
    runtime: Runtime, tables: dict[str, Path]
) -> None:
    stages: list[str] = []
    with uploads(tables) as files:
        submitted = runtime.submit_uploads(
            "data",
            files,
            GateMeta(project="progress"),
            {"scenario_columns": ["kind"]},
            None,
            watch=lambda _, progress: stages.append(progress["stage"]),
        )
    result = runtime.wait(submitted.id, ANONYMOUS_ADMIN, 120.0)
    assert result.status in {"passed", "failed"}
    assert set(stages) == STAGES
    assert result.progress is None
