"""A distillation evaluated by a `distilgate worker` without the API's disk."""

from __future__ import annotations

import time

import httpx

from tests.databases import database_url_for
from tests.scaleout.processes import TERMINAL

TIMEOUT_S = 180


def progress_while_running(url: str, gate_id: str) -> list[dict]:
    """Poll a gate until it is terminal; return the progress values it showed.

    A finished gate's progress is cleared, so it is read while the gate runs.
    """
    seen: list[dict] = []
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        body = httpx.get(f"{url}/api/v1/gates/{gate_id}", timeout=30).json()
        if body["status"] in TERMINAL:
            break
        if body.get("progress"):
            seen.append(body["progress"])
        time.sleep(0.05)
    return seen


def test_worker_distillation_without_shared_disk(artifacts, cluster_for, tmp_path):
    """The worker stores progress in the database, but the subset on its own disk.

    The API cannot serve a subset that only the worker's store has, so the
    download is a 404 stating that distillation needs a shared data directory.
    """
    with database_url_for("sqlite", tmp_path) as database_url:
        cluster = cluster_for(database_url)
        cluster.start_api()
        worker = cluster.worker()
        original = artifacts["original_csv"]
        queued = httpx.post(
            f"{cluster.url}/api/v1/distill",
            params={"wait": 0},
            files={"original": (original.name, original.read_bytes())},
            data={
                "fraction": "0.2",
                "scenario_columns": "ink,width",
                "label_column": "label",
            },
            headers={"X-Request-ID": "distill-on-worker"},
            timeout=60,
        )
        assert queued.status_code == 202, queued.text
        gate_id = queued.json()["id"]
        progress = progress_while_running(cluster.url, gate_id)
        result = cluster.wait_for(gate_id, TERMINAL, TIMEOUT_S)
        download = httpx.get(
            f"{cluster.url}/api/v1/distill/{gate_id}/subset", timeout=30
        )
        cluster.stop()

    assert result["status"] == "passed", cluster.logs()
    assert progress, "the worker stored no progress while the gate ran"
    assert {"stage", "fraction"} <= set(progress[0])
    sha256 = result["details"]["distill"]["subset"]["sha256"]
    assert (cluster.root / "worker-0" / sha256[:2] / sha256[2:4] / sha256).is_file()
    assert download.status_code == 404, download.text
    message = download.json()["detail"][0]["msg"]
    assert f"not in this server's store (sha256 {sha256})" in message
    assert "shared data directory" in message
    # The bracketed ids come from the handler of configure_logging, which
    # Celery must not replace.
    assert f"[request_id=distill-on-worker gate_id={gate_id}" in worker.log_text()
