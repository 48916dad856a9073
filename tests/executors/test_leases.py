"""Claims with leases, and re-queueing gates whose worker died, on real databases."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis

from app.config import Settings
from app.errors import ServiceUnavailableError
from app.executors.celery_executor import CeleryExecutor
from app.runtime import Runtime
from app.storage.models import GateRecord
from tests.scaleout.processes import BROKER_DB, RESULTS_DB, redis_base_url


@pytest.fixture
def runtime(database_url, tmp_path):
    base = redis_base_url()
    settings = Settings(
        database_url=database_url,
        data_dir=tmp_path,
        executor="celery",
        broker_url=f"{base}/{BROKER_DB}",
        result_backend=f"{base}/{RESULTS_DB}",
        task_queue=f"distilgate-test-{uuid.uuid4().hex[:12]}",
        job_max_attempts=2,
        max_pending_jobs=1,
    )
    runtime = Runtime(settings)
    runtime.database.migrate()
    broker = redis.Redis.from_url(settings.broker_url)
    yield runtime
    broker.delete(settings.task_queue)
    broker.close()
    runtime.stop()


def add_gate(runtime, gate_id):
    now = datetime.now(UTC)
    with runtime.scope() as service:
        service.repository.add(
            GateRecord(
                id=gate_id,
                kind="data",
                status="queued",
                project="leases",
                created_at=now,
                deadline_at=now + timedelta(hours=1),
                policy={},
                metrics={},
                checks=[],
                details={},
                artifacts={},
                request={"source": "metrics", "measured": {}},
            )
        )


def lapse(runtime, gate_id, attempt):
    past = datetime.now(UTC) - timedelta(seconds=1)
    with runtime.scope() as service:
        assert service.repository.renew_lease(gate_id, attempt, past)


def state(runtime, gate_id):
    with runtime.scope() as service:
        record = service.repository.find(gate_id)
        return record.status, record.attempts, record.error


def queue_length(runtime):
    broker = redis.Redis.from_url(runtime.settings.broker_url)
    try:
        return broker.llen(runtime.settings.task_queue)
    finally:
        broker.close()


def test_claim_waits_for_lapsed_lease(runtime):
    add_gate(runtime, "leased")
    with runtime.scope() as service:
        first = service.claim("leased", lease_s=60)
    with runtime.scope() as service:
        while_held = service.claim("leased", lease_s=60)
    lapse(runtime, "leased", first)
    with runtime.scope() as service:
        after_lapse = service.claim("leased", lease_s=60)
    assert first == 1
    assert while_held is None
    assert after_lapse == 2


def test_finish_only_by_current_attempt(runtime):
    add_gate(runtime, "twice")
    with runtime.scope() as service:
        first = service.claim("twice", lease_s=60)
    lapse(runtime, "twice", first)
    with runtime.scope() as service:
        second = service.claim("twice", lease_s=60)
    with runtime.scope() as service:
        stale = service.finish("twice", None, "from the lost worker", attempt=first)
        renewed = service.repository.renew_lease(
            "twice", first, datetime.now(UTC) + timedelta(seconds=60)
        )
    with runtime.scope() as service:
        current = service.finish("twice", None, "from the live worker", attempt=second)
    assert stale is None
    assert renewed is False
    assert current is not None
    assert state(runtime, "twice") == ("error", 2, "from the live worker")


def test_claim_without_lease_is_never_taken_over(runtime):
    add_gate(runtime, "inprocess")
    with runtime.scope() as service:
        assert service.claim("inprocess") == 1
    assert runtime.executor.requeue_lapsed() == 0
    with runtime.scope() as service:
        assert service.claim("inprocess", lease_s=60) is None


def test_requeue_lapsed_sends_gate_again(runtime):
    assert isinstance(runtime.executor, CeleryExecutor)
    add_gate(runtime, "orphan")
    with runtime.scope() as service:
        attempt = service.claim("orphan", lease_s=60)
    lapse(runtime, "orphan", attempt)
    requeued = runtime.executor.requeue_lapsed()
    assert requeued == 1
    assert state(runtime, "orphan") == ("queued", 1, None)
    assert queue_length(runtime) == 1


def test_requeue_lapsed_ends_gate_after_max_attempts(runtime):
    add_gate(runtime, "doomed")
    for _ in range(2):
        with runtime.scope() as service:
            attempt = service.claim("doomed", lease_s=60)
        lapse(runtime, "doomed", attempt)
    requeued = runtime.executor.requeue_lapsed()
    status, attempts, error = state(runtime, "doomed")
    assert requeued == 0
    assert (status, attempts) == ("error", 2)
    assert error.startswith(
        "interrupted: the worker evaluating the gate stopped during attempt 2 of 2"
    )
    assert queue_length(runtime) == 0


def test_submit_rejects_when_stored_gates_fill_queue(runtime):
    add_gate(runtime, "first")
    runtime.executor.submit("first", None)
    add_gate(runtime, "second")
    with pytest.raises(ServiceUnavailableError, match="queue is full"):
        runtime.executor.submit("second", None)
    assert queue_length(runtime) == 1


def lapse_send(runtime, gate_id):
    past = datetime.now(UTC) - timedelta(seconds=1)
    with runtime.scope() as service:
        service.repository.mark_sent(gate_id, past)


def test_unclaimed_gate_sent_again_once(runtime):
    add_gate(runtime, "unclaimed")
    runtime.executor.submit("unclaimed", None)
    broker = redis.Redis.from_url(runtime.settings.broker_url)
    # A broker restarted without persistence has lost the message.
    broker.delete(runtime.settings.task_queue)
    broker.close()
    before_lapse = runtime.executor.requeue_lapsed()
    length_before_lapse = queue_length(runtime)
    lapse_send(runtime, "unclaimed")
    runtime.executor.requeue_lapsed()
    length_after_resend = queue_length(runtime)
    runtime.executor.requeue_lapsed()
    assert before_lapse == 0
    assert length_before_lapse == 0
    assert length_after_resend == 1
    assert queue_length(runtime) == 1
    assert state(runtime, "unclaimed") == ("queued", 0, None)


def test_claimed_gate_not_sent_again(runtime):
    add_gate(runtime, "claimed")
    runtime.executor.submit("claimed", None)
    with runtime.scope() as service:
        assert service.claim("claimed", lease_s=60) == 1
    lapse_send(runtime, "claimed")
    runtime.executor.requeue_lapsed()
    assert queue_length(runtime) == 1
    assert state(runtime, "claimed") == ("running", 1, None)
