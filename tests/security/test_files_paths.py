"""An upload's file name is metadata only: it never chooses where bytes go.

Uploads with hostile names go to the live server (SQLite, then PostgreSQL).
The server must store the bytes under the sha256 it computes, record the name
as sent, and create no file outside its artifact store.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import httpx
import pytest

from tests.security.corpus import csv_table, post_gate

pytestmark = pytest.mark.slow

TOKEN = uuid.uuid4().hex[:12]
HOSTILE_NAMES = [
    f"../../../../../../tmp/dg-dotdot-{TOKEN}.csv",
    f"/tmp/dg-absolute-{TOKEN}.csv",
    f"..\\..\\..\\..\\dg-backslash-{TOKEN}.csv",
    f"C:\\Windows\\Temp\\dg-drive-{TOKEN}.csv",
    f"%2e%2e%2f%2e%2e%2f%2e%2e%2fdg-encoded-{TOKEN}.csv",
    f"..%2f..%2f..%2fdg-encoded-slash-{TOKEN}.csv",
    f"dg-nul-{TOKEN}\x00/../../dg-nul-{TOKEN}.csv",
    f"incoming/../../dg-incoming-{TOKEN}.csv",
]


def table(seed: int) -> bytes:
    rows = [[i % 4, (i * seed) % 7, i % 2] for i in range(40)]
    return csv_table(["a", "b", "label"], rows)


def snapshot(root: Path, data_dir: Path) -> set[Path]:
    """Every file under ``root`` except the artifact store and the database."""
    return {
        path
        for path in root.rglob("*")
        if path.is_file()
        and data_dir not in path.parents
        and not path.name.startswith("distilgate.db")
        and path.name != "server.log"
    }


def escaped_files() -> list[Path]:
    """Files named with this run's token anywhere a hostile name could point."""
    places = [Path("/tmp"), Path("/"), Path.cwd(), Path("C:")]
    return [hit for place in places for hit in place.glob(f"*{TOKEN}*")]


# Test ids name the kind of path only, so that every xdist worker collects the
# same ids although the token differs between processes.
HOSTILE_IDS = [
    "dotdot",
    "absolute",
    "backslash",
    "drive",
    "encoded",
    "encoded-slash",
    "nul",
    "incoming",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=HOSTILE_IDS)
def test_hostile_name_stays_metadata(server, name: str) -> None:
    data_dir = Path(server.env["DISTILGATE_DATA_DIR"])
    root = data_dir.parent
    before = snapshot(root, data_dir)
    original, subset = table(3), table(5)
    files = {"original": (name, original), "subset": (name, subset)}
    response = post_gate(server.url, "data", files, label_column="label")
    result = response.json()
    assert response.status_code == 200, result
    stored = result["artifacts"]["original"]
    expected = hashlib.sha256(original).hexdigest()
    assert stored["sha256"] == expected
    assert stored["size_bytes"] == len(original)
    assert stored["filename"] is not None
    blob = data_dir / expected[:2] / expected[2:4] / expected
    assert blob.read_bytes() == original
    assert snapshot(root, data_dir) == before
    assert escaped_files() == []


def test_store_holds_only_hash_named_blobs(server) -> None:
    data_dir = Path(server.env["DISTILGATE_DATA_DIR"])
    for path in data_dir.rglob("*"):
        if path.is_dir():
            continue
        relative = path.relative_to(data_dir).parts
        assert len(relative) == 3, path
        assert relative[0] == relative[2][:2]
        assert relative[1] == relative[2][2:4]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == relative[2]


def test_sent_hash_is_ignored(server) -> None:
    # A client cannot choose the hash: only the bytes decide it.
    original = table(3)
    response = httpx.post(
        f"{server.url}/api/v1/gates/data",
        files={
            "original": ("a.csv", original, "text/csv"),
            "subset": ("b.csv", table(5), "text/csv"),
        },
        data={"label_column": "label"},
        headers={"Content-MD5": "0" * 32, "Digest": "sha-256=" + "A" * 44},
        timeout=120.0,
    )
    assert response.status_code == 200
    stored = response.json()["artifacts"]["original"]["sha256"]
    assert stored == hashlib.sha256(original).hexdigest()


def test_nul_in_table_text_is_stored(server) -> None:
    # PostgreSQL cannot store NUL in JSON text. Column names and values reach
    # the stored result, so they are escaped as text instead of failing the job.
    table = b"a\x00b,c\n1,x\x00y\n2,z\n3,z\n"
    files = {"original": ("o.csv", table), "subset": ("s.csv", table)}
    response = httpx.post(
        f"{server.url}/api/v1/gates/data",
        files=files,
        params={"wait": 60},
        timeout=120.0,
    )
    result = response.json()
    assert response.status_code == 200, result
    assert result["status"] in ("passed", "failed", "inconclusive"), result


def test_nul_in_policy_text_is_stored(server) -> None:
    body = {
        "kind": "data",
        "original": {"coverage": 1.0},
        "subset": {"coverage": 1.0},
        "policy": {"required_scenarios": [{"name\x00": "value\x00"}]},
    }
    response = httpx.post(f"{server.url}/api/v1/gates/metrics", json=body)
    result = response.json()
    assert response.status_code == 200, result
    assert result["policy"]["required_scenarios"] == [{"name\\x00": "value\\x00"}]
