"""Data gates on image archives and on tables with free text, through a live server."""

from __future__ import annotations

import zipfile
from pathlib import Path

import httpx
import pytest

from tests.api.helpers import checks_by_name, only_error, post_files
from tests.evaluation.image_fixtures import (
    encode,
    screen_archives,
    screenshot,
    write_zip,
)
from tests.evaluation.test_readers_zip import tar_bytes
from tests.evaluation.text_fixtures import ticket_table, with_shouted_copies

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return screen_archives(tmp_path_factory.mktemp("api_images"))


@pytest.fixture(scope="module")
def texts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("api_texts")
    tickets = ticket_table()
    files = {
        "original": root / "tickets.csv",
        "good": root / "tickets_good.csv",
        "no_search": root / "tickets_no_search.csv",
    }
    with_shouted_copies(tickets).to_csv(files["original"], index=False)
    tickets.to_csv(files["good"], index=False)
    tickets[tickets["topic"] != "search"].to_csv(files["no_search"], index=False)
    return files


def gate_count(server) -> int:
    response = httpx.get(f"{server.url}/api/v1/gates", params={"limit": 500})
    return len(response.json()["items"])


def test_image_gate_passes_good_subset(server, images):
    files = {"original": images["original"], "subset": images["good"]}
    response = post_files(
        server.url, "data", files, project="screens", scenario_columns="folder"
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["status"] == "passed", result["checks"]
    assert checks_by_name(result)["feature_coverage"]["value"] == 1.0
    details = result["details"]
    assert details["images"]["near_duplicate_max_bits"] == 8
    assert details["images"]["blur"]["original"]["blurry"] == 2
    assert details["images"]["original"]["unreadable"] == 2
    assert result["metrics"]["exact_duplicate_rows"] == 4
    assert result["artifacts"]["original"]["filename"] == "original.zip"


def test_image_gate_fails_subset_without_screen(server, images):
    files = {"original": images["original"], "subset": images["no_search"]}
    response = post_files(
        server.url, "data", files, project="screens", scenario_columns="folder"
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["status"] == "failed"
    assert checks_by_name(result)["scenario_coverage"]["status"] == "failed"
    missing = result["details"]["missing_scenarios"]
    assert [entry["values"] for entry in missing] == [{"folder": "search"}]


def test_text_gate_passes_and_fails(server, texts):
    policy = {"text_column": "ticket", "pca_components": 0.9}
    verdicts = {}
    for subset in ("good", "no_search"):
        files = {"original": texts["original"], "subset": texts[subset]}
        response = post_files(
            server.url,
            "data",
            files,
            project="tickets",
            scenario_columns="topic",
            policy=policy,
        )
        assert response.status_code == 200, response.text
        verdicts[subset] = response.json()
    assert verdicts["good"]["status"] == "passed", verdicts["good"]["checks"]
    assert verdicts["no_search"]["status"] == "failed"
    assert verdicts["good"]["policy"]["text_column"] == "ticket"
    described = verdicts["good"]["details"]["feature_columns"]
    assert described["text"][0]["column"] == "ticket"
    assert described["pca"]["applied"] is True
    assert verdicts["good"]["metrics"]["near_duplicate_rows"] == 16


def test_text_gate_unknown_text_column(server, texts):
    before = gate_count(server)
    files = {"original": texts["original"], "subset": texts["good"]}
    response = post_files(server.url, "data", files, policy={"text_column": "tiket"})
    assert response.status_code == 422
    error = only_error(response)
    assert error["loc"] == ["body", "policy", "text_column"]
    assert "did you mean 'ticket'?" in error["msg"]
    assert gate_count(server) == before


@pytest.mark.parametrize(
    ("member", "problem"),
    [
        ("../escape.png", "contains a '..' part"),
        ("/abs/escape.png", "is an absolute path"),
    ],
)
def test_image_gate_unsafe_member_rejected(server, tmp_path, member, problem):
    path = tmp_path / "hostile.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ok.png", encode(screenshot("login", 0)))
        info = zipfile.ZipInfo("placeholder")
        info.filename = member
        archive.writestr(info, b"x")
    before = gate_count(server)
    response = post_files(server.url, "data", {"original": path, "subset": path})
    assert response.status_code == 422
    error = only_error(response)
    assert error["loc"] == ["body", "original"]
    assert error["msg"].startswith(
        f"original 'hostile.zip' member {member!r} {problem}"
    )
    assert gate_count(server) == before


def test_image_gate_symlink_member_rejected(server, tmp_path):
    path = write_zip(
        tmp_path / "links.zip",
        [("ok.png", encode(screenshot("login", 0)))],
        symlinks=[("login/a.png", "/etc/passwd")],
    )
    response = post_files(server.url, "data", {"original": path, "subset": path})
    assert response.status_code == 422
    assert "'login/a.png' is a symbolic link" in only_error(response)["msg"]


def test_image_gate_too_many_members(server, tmp_path):
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for index in range(20_001):
            archive.writestr(f"{index}.png", b"")
    response = post_files(server.url, "data", {"original": path, "subset": path})
    assert response.status_code == 413
    error = only_error(response)
    assert error["type"] == "payload_too_large"
    assert "has 20,001 members, more than the 20,000 allowed" in error["msg"]


def test_image_gate_tar_rejected(server, images, tmp_path):
    path = tmp_path / "shots.tar"
    path.write_bytes(tar_bytes())
    files = {"original": path, "subset": images["good"]}
    response = post_files(server.url, "data", files)
    assert response.status_code == 415
    assert "is a tar archive; tar is not read" in only_error(response)["msg"]


def test_image_gate_mixed_with_table(server, images, texts):
    files = {"original": images["original"], "subset": texts["good"]}
    response = post_files(server.url, "data", files)
    assert response.status_code == 422
    error = only_error(response)
    assert error["loc"] == ["body", "subset"]
    assert error["msg"] == (
        "subset is CSV but the other upload is a zip archive of images; send both "
        "original and subset as image archives, or both as tables"
    )
