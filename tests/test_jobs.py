"""Job claiming, deadlines and restarts against a real database."""

import threading
from datetime import UTC, datetime, timedelta

import pytest

from app.config import Settings
from app.errors import ServiceUnavailableError
from app.jobs import INTERRUPTED, DeadlineSweeper, InProcessExecutor, run_job
from app.results import Evaluation, compare
from app.runtime import Runtime
from app.storage.models import GateRecord


@pytest.fixture
def runtime(database_url, tmp_path):
    runtime = Runtime(Settings(database_url=database_url, data_dir=tmp_path))
    runtime.database.migrate()
    yield runtime
    runtime.stop()


def add_gate(runtime, gate_id, status="queued", deadline=None):
    now = datetime.now(UTC)
    with runtime.scope() as service:
        service.repository.add(
            GateRecord(
                id=gate_id,
                kind="data",
                status=status,
                project="jobs",
                created_at=now,
                deadline_at=deadline or now + timedelta(hours=1),
                policy={},
                metrics={},
                checks=[],
                details={},
                artifacts={},
                request={},
            )
        )


def status_of(runtime, gate_id):
    with runtime.scope() as service:
        record = service.repository.find(gate_id)
        return record.status, record.error


def passing():
    check = compare(
        "coverage_retention",
        1.0,
        0.95,
        ">=",
        unit="fraction",
        describe="coverage retention 100.0%",
        bound="95.0%",
    )
    return Evaluation(kind="data", checks=[check], metrics={"n": 1})


def test_run_job_writes_outcome_once(runtime):
    add_gate(runtime, "once")
    first = run_job("once", passing, runtime.scope)
    second = run_job("once", passing, runtime.scope)
    assert first is not None
    assert first.status == "passed"
    assert second is None
    assert status_of(runtime, "once") == ("passed", None)


def test_run_job_turns_crash_into_error(runtime):
    add_gate(runtime, "crash")

    def crash():
        raise RuntimeError("boom")

    run_job("crash", crash, runtime.scope)
    status, error = status_of(runtime, "crash")
    assert status == "error"
    assert "internal error" in error


def test_sweeper_ends_overdue_gates(runtime):
    past = datetime.now(UTC) - timedelta(seconds=1)
    add_gate(runtime, "late", status="running", deadline=past)
    add_gate(runtime, "fine", status="running")
    ended = DeadlineSweeper(runtime.scope, interval_s=60).sweep()
    assert ended == 1
    assert status_of(runtime, "late") == (
        "error",
        "timed out: the evaluation passed its deadline",
    )
    assert status_of(runtime, "fine")[0] == "running"


def test_finish_after_deadline_keeps_timeout(runtime):
    past = datetime.now(UTC) - timedelta(seconds=1)
    add_gate(runtime, "slow", deadline=past)
    with runtime.scope() as service:
        assert service.claim("slow")
    DeadlineSweeper(runtime.scope, interval_s=60).sweep()
    with runtime.scope() as service:
        assert service.finish("slow", passing()) is None
    assert status_of(runtime, "slow")[0] == "error"


def test_start_marks_left_over_gates_interrupted(runtime):
    add_gate(runtime, "left-queued")
    add_gate(runtime, "left-running", status="running")
    runtime.start()
    assert status_of(runtime, "left-queued") == ("error", INTERRUPTED)
    assert status_of(runtime, "left-running") == ("error", INTERRUPTED)


def test_executor_rejects_when_queue_full(runtime):
    release = threading.Event()
    add_gate(runtime, "blocking")
    executor = InProcessExecutor(runtime.scope, workers=1, max_pending=1)

    def blocked():
        release.wait(10)
        return passing()

    executor.submit("blocking", blocked)
    with pytest.raises(ServiceUnavailableError, match=r"job queue is full \(1 gates"):
        executor.submit("another", passing)
    release.set()
    executor.shutdown()
