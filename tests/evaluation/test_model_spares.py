"""Spare model children: started at the end of one gate, used by the next."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.evaluation.model_probe import ProbeSettings, started_children
from app.evaluation.model_spares import SparePool

ROLES = ("teacher", "student")
SETTINGS = ProbeSettings(timeout_s=60.0)


@pytest.fixture
def pool() -> Iterator[SparePool]:
    spares = SparePool()
    yield spares
    spares.close()


def waiting(
    pool: SparePool, count: int, *, besides: frozenset[int] = frozenset()
) -> dict[str, int]:
    """Wait until the pool has ``count`` children not in ``besides``; return pids."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pids = pool.waiting()
        if len(pids) == count and besides.isdisjoint(pids.values()):
            return pids
        time.sleep(0.02)
    raise AssertionError(f"the pool has {pool.waiting()}, expected {count} children")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child stays a zombie until the pool reaps it.
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        return stat.read().split(") ")[1][0] != "Z"


def test_next_gate_takes_spares(pool: SparePool, tmp_path: Path) -> None:
    with started_children(ROLES, SETTINGS, tmp_path, spares=pool) as first:
        first_pids = {role: child.process.pid for role, child in first.items()}
    spares = waiting(pool, 2)
    with started_children(ROLES, SETTINGS, tmp_path, spares=pool) as second:
        report = second["teacher"].request({"command": "time", "runs": 1})
        second_pids = {role: child.process.pid for role, child in second.items()}
        assert pool.waiting() == {}
    assert second_pids == spares
    assert set(second_pids.values()).isdisjoint(first_pids.values())
    assert second["teacher"].subject == "teacher"
    # The spare runs commands: before a probe, "time" reports an error.
    assert report["message"] == "KeyError: 'runner'"
    assert not any(alive(pid) for pid in second_pids.values())


def test_dead_spare_replaced(pool: SparePool, tmp_path: Path) -> None:
    pool.refill(ROLES, SETTINGS)
    spares = waiting(pool, 2)
    os.kill(spares["student"], signal.SIGKILL)
    while alive(spares["student"]):
        time.sleep(0.01)
    with started_children(ROLES, SETTINGS, tmp_path, spares=pool) as children:
        report = children["student"].request({"command": "time", "runs": 1})
        pids = {role: child.process.pid for role, child in children.items()}
    assert pids["teacher"] == spares["teacher"]
    assert pids["student"] != spares["student"]
    assert report["status"] == "error"


def test_other_limits_stop_spares(pool: SparePool, tmp_path: Path) -> None:
    pool.refill(ROLES, SETTINGS)
    old = waiting(pool, 2)
    other = ProbeSettings(timeout_s=60.0, memory_limit_bytes=4 * 2**30)
    with started_children(ROLES, other, tmp_path, spares=pool) as children:
        pids = {role: child.process.pid for role, child in children.items()}
    assert set(pids.values()).isdisjoint(old.values())
    new = waiting(pool, 2, besides=frozenset(old.values()))
    assert set(new.values()).isdisjoint(pids.values())
    assert not any(alive(pid) for pid in old.values())


def test_close_stops_spares(pool: SparePool) -> None:
    pool.refill(ROLES, SETTINGS)
    pids = waiting(pool, 2)
    pool.close()
    assert pool.waiting() == {}
    assert not any(alive(pid) for pid in pids.values())
