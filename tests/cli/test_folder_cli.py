"""The data gate on folders of images, given to the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest

from app.cli.folders import zip_folders
from tests.evaluation.image_fixtures import screen_archives

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The screenshot archives unpacked into folders, as a user would have them."""
    root = tmp_path_factory.mktemp("folders")
    (root / "zips").mkdir()
    archives = screen_archives(root / "zips")
    unpacked = {}
    for role in ("original", "good", "no_search"):
        target = root / role
        with zipfile.ZipFile(archives[role]) as archive:
            archive.extractall(target)
        unpacked[role] = target
    return unpacked


def run_cli(tmp_path: Path, *args: object) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DISTILGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "DISTILGATE_DATA_DIR": str(tmp_path / "data"),
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "app.cli.main", *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )


def folder_args(folders: dict[str, Path], subset: str) -> list[object]:
    return [
        "check",
        "data",
        "--original",
        folders["original"],
        "--subset",
        folders[subset],
        "--scenario-columns",
        "folder",
        "--json",
    ]


def test_cli_folder_gate_runs_locally(folders, tmp_path):
    passed = run_cli(tmp_path, *folder_args(folders, "good"))
    failed = run_cli(tmp_path, *folder_args(folders, "no_search"))
    assert passed.returncode == 0, passed.stderr
    assert failed.returncode == 1, failed.stderr
    result = json.loads(failed.stdout)
    missing = result["details"]["missing_scenarios"]
    assert [entry["values"] for entry in missing] == [{"folder": "search"}]
    assert result["artifacts"]["original"]["filename"] == "original.zip"


def test_cli_folder_gate_posts_zip(folders, tmp_path, server):
    completed = run_cli(tmp_path, *folder_args(folders, "good"), "--server", server.url)
    assert completed.returncode == 0, completed.stderr
    body = json.loads(completed.stdout)
    stored = httpx.get(f"{server.url}/api/v1/gates/{body['id']}").json()
    assert stored["artifacts"]["subset"]["filename"] == "good.zip"
    assert stored["details"]["images"]["subset"]["images"] == 42


def test_zip_folders_replaces_only_data_folders(folders, tmp_path):
    report = tmp_path / "coverage.xml"
    report.write_text("<coverage/>")
    files = {"original": folders["good"], "original_coverage": report}
    zipped = zip_folders(files)
    assert zipped["original_coverage"] == report
    assert zipped["original"].name == "good.zip"
    with zipfile.ZipFile(zipped["original"]) as archive:
        names = archive.namelist()
    assert len(names) == 42
    assert "login/login_00.png" in names
    assert zip_folders({"original": report}) == {"original": report}
