"""Submit many gates from concurrent clients and audit what became of each.

A client submits a gate with ``wait=0`` and an ``Idempotency-Key``, then
long-polls it until it is terminal. A failed submission (a transport error
or a 5xx) is sent again with the same key, the way a CI client retries, so
the server must store it once. After the load, ``audit`` reads the database
and the process logs to count gates lost (never terminal), duplicated (two
rows for one key, or two stored outcomes for one gate) and retried.

The bench ``bench/load.py`` and the fault tests ``test_faults.py`` share it.
"""

from __future__ import annotations

import logging
import re
import statistics
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

logger = logging.getLogger(__name__)

TERMINAL = {"passed", "failed", "error", "inconclusive", "waived"}
RETRY_PAUSE_S = 0.5
POLL_WAIT_S = 20
_STORED = re.compile(r"job finished gate_id=([0-9a-f]{32}) .*stored=True")
_STARTED = re.compile(r"job started gate_id=([0-9a-f]{32})")
# Log messages of the recovery paths, counted in an audit.
RECOVERIES = {
    "resent": "gate sent again, no worker claimed it",
    "requeued": "gate queued again, its worker stopped",
    "task_retries": "Retry in",
    "jobs_skipped": "job skipped, gate not queued",
}


@dataclass(frozen=True)
class GateSpec:
    """One gate to submit: ``metrics`` (reported numbers) or ``model`` (ONNX)."""

    kind: str
    key: str


@dataclass
class Outcome:
    """What one client saw of one gate."""

    spec: GateSpec
    gate_id: str | None = None
    status: str | None = None
    error: str | None = None
    latency_s: float | None = None
    submit_attempts: int = 0


@dataclass
class LoadRun:
    """Every outcome of one load, with the server errors the clients saw."""

    outcomes: list[Outcome]
    elapsed_s: float
    server_errors: Counter[int] = field(default_factory=Counter)
    transport_errors: int = 0

    @property
    def terminal(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status in TERMINAL]

    @property
    def statuses(self) -> Counter[str]:
        return Counter(o.status or "never terminal" for o in self.outcomes)

    def throughput_per_min(self) -> float:
        return 60.0 * len(self.terminal) / self.elapsed_s

    def latency_percentile(self, percent: int) -> float:
        """Return the submit-to-verdict latency percentile, in seconds."""
        latencies = sorted(o.latency_s for o in self.terminal if o.latency_s)
        if len(latencies) < 2:
            return latencies[0] if latencies else float("nan")
        return statistics.quantiles(latencies, n=100, method="inclusive")[percent - 1]


def plan(total: int, model_every: int, prefix: str) -> list[GateSpec]:
    """Return ``total`` gates, every ``model_every``-th of them a model gate."""
    return [
        GateSpec(
            "model" if model_every and index % model_every == 0 else "metrics",
            f"{prefix}-{index}-{uuid.uuid4().hex[:8]}",
        )
        for index in range(total)
    ]


class LoadClient:
    """Submits gates to one API and waits for their verdicts."""

    def __init__(self, base_url: str, artifacts: dict[str, Path], project: str):
        self.base_url = base_url
        self.project = project
        self._model_files = {
            role: (artifacts[name].name, artifacts[name].read_bytes())
            for role, name in (
                ("teacher", "teacher"),
                ("student", "student"),
                ("dataset", "digits_test_npz"),
            )
        }
        self._lock = threading.Lock()
        self.server_errors: Counter[int] = Counter()
        self.transport_errors = 0
        self.finished = 0

    def run(self, specs: list[GateSpec], clients: int, timeout_s: float) -> LoadRun:
        """Submit ``specs`` from ``clients`` threads; stop after ``timeout_s``."""
        outcomes = [Outcome(spec) for spec in specs]
        deadline = time.monotonic() + timeout_s
        started = time.monotonic()
        threads = [
            threading.Thread(
                target=self._client,
                args=(outcomes[index::clients], deadline),
                name=f"load-client-{index}",
                daemon=True,
            )
            for index in range(clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(deadline - time.monotonic(), 0) + 60)
        return LoadRun(
            outcomes,
            time.monotonic() - started,
            self.server_errors.copy(),
            self.transport_errors,
        )

    def _client(self, outcomes: list[Outcome], deadline: float) -> None:
        with httpx.Client(base_url=self.base_url, timeout=60) as http:
            for outcome in outcomes:
                if time.monotonic() >= deadline:
                    return
                began = time.monotonic()
                self._submit(http, outcome, deadline)
                if outcome.gate_id is not None:
                    self._wait(http, outcome, deadline)
                if outcome.status in TERMINAL:
                    outcome.latency_s = time.monotonic() - began
                    with self._lock:
                        self.finished += 1

    def _submit(self, http: httpx.Client, outcome: Outcome, deadline: float) -> None:
        while time.monotonic() < deadline:
            outcome.submit_attempts += 1
            response = self._send(http, outcome.spec)
            if response is not None and response.status_code < 500:
                body = response.json()
                if response.status_code >= 400:
                    outcome.status, outcome.error = "rejected", response.text
                    return
                outcome.gate_id = body["id"]
                outcome.status, outcome.error = body["status"], body.get("error")
                return
            time.sleep(RETRY_PAUSE_S)

    def _send(self, http: httpx.Client, spec: GateSpec) -> httpx.Response | None:
        headers = {"Idempotency-Key": spec.key}
        try:
            if spec.kind == "model":
                response = http.post(
                    "/api/v1/gates/model",
                    params={"wait": 0},
                    files=self._model_files,
                    data={"project": self.project},
                    headers=headers,
                )
            else:
                response = http.post(
                    "/api/v1/gates/metrics",
                    params={"wait": 0},
                    json=_metrics_body(self.project),
                    headers=headers,
                )
        except httpx.TransportError as exc:
            self._count_transport_error(spec, exc)
            return None
        if response.status_code >= 500:
            self._count_server_error(spec, response)
        return response

    def _wait(self, http: httpx.Client, outcome: Outcome, deadline: float) -> None:
        while outcome.status not in TERMINAL and time.monotonic() < deadline:
            wait_s = int(min(POLL_WAIT_S, max(deadline - time.monotonic(), 1)))
            try:
                response = http.get(
                    f"/api/v1/gates/{outcome.gate_id}", params={"wait": wait_s}
                )
            except httpx.TransportError as exc:
                self._count_transport_error(outcome.spec, exc)
                time.sleep(RETRY_PAUSE_S)
                continue
            if response.status_code >= 500:
                self._count_server_error(outcome.spec, response)
                time.sleep(RETRY_PAUSE_S)
                continue
            body = response.json()
            outcome.status, outcome.error = body["status"], body.get("error")

    def _count_server_error(self, spec: GateSpec, response: httpx.Response) -> None:
        logger.warning(
            "server error key=%s status=%d body=%s",
            spec.key,
            response.status_code,
            response.text[:300],
        )
        with self._lock:
            self.server_errors[response.status_code] += 1

    def _count_transport_error(self, spec: GateSpec, exc: Exception) -> None:
        logger.warning("request failed key=%s error=%r", spec.key, exc)
        with self._lock:
            self.transport_errors += 1


def _metrics_body(project: str) -> dict[str, object]:
    return {
        "kind": "data",
        "project": project,
        "original": {"coverage": 1.0},
        "subset": {"coverage": 0.99},
    }


@dataclass
class Audit:
    """What the database and the logs show about one load."""

    rows: int
    keys_with_many_rows: list[str]
    not_terminal: list[str]
    missing_keys: list[str]
    stored_twice: list[str]
    attempts: Counter[int]
    jobs_started: int
    errors: Counter[str]
    recoveries: dict[str, int]

    @property
    def lost(self) -> list[str]:
        return self.not_terminal + self.missing_keys

    @property
    def duplicated(self) -> list[str]:
        return self.keys_with_many_rows + self.stored_twice

    def summary(self) -> str:
        return (
            f"rows={self.rows} lost={len(self.lost)} "
            f"duplicated={len(self.duplicated)} attempts={dict(self.attempts)} "
            f"jobs_started={self.jobs_started} errors={dict(self.errors)} "
            f"recoveries={self.recoveries}"
        )


def audit(database_url: str, project: str, specs: list[GateSpec], logs: str) -> Audit:
    """Compare the stored gates of ``project`` with the ``specs`` submitted."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT id, status, attempts, error, idempotency_key "
                    "FROM gates WHERE project = :project"
                ),
                {"project": project},
            ).all()
    finally:
        engine.dispose()
    per_key = Counter(row.idempotency_key for row in rows)
    stored = Counter(_STORED.findall(logs))
    return Audit(
        rows=len(rows),
        keys_with_many_rows=[key for key, count in per_key.items() if count > 1],
        not_terminal=[row.id for row in rows if row.status not in TERMINAL],
        missing_keys=[spec.key for spec in specs if spec.key not in per_key],
        stored_twice=[gate_id for gate_id, count in stored.items() if count > 1],
        attempts=Counter(int(row.attempts) for row in rows),
        jobs_started=len(_STARTED.findall(logs)),
        errors=Counter(_error_kind(row.error) for row in rows if row.error),
        recoveries={name: logs.count(line) for name, line in RECOVERIES.items()},
    )


def _error_kind(error: str) -> str:
    """Return the first words of a stored error, such as ``interrupted``."""
    return error.split(":", 1)[0][:40]
