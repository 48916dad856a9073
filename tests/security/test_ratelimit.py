"""Sliding-window counts: limits, expiry, wait times and bounded memory."""

import pytest

from app import ratelimit
from app.ratelimit import RateLimitedError, RateLimits, SlidingWindow


class Clock:
    """A clock the test moves by hand, in seconds."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_window_allows_up_to_limit():
    clock = Clock()
    window = SlidingWindow(3, window_s=60, clock=clock)
    assert [window.hit("a") for _ in range(3)] == [None, None, None]
    assert window.hit("a") == 60
    assert window.hit("b") is None


def test_window_slides_with_time():
    clock = Clock()
    window = SlidingWindow(2, window_s=60, clock=clock)
    window.hit("a")
    clock.now += 30
    window.hit("a")
    clock.now += 10
    assert window.hit("a") == 20
    clock.now += 20
    assert window.hit("a") is None


def test_record_and_retry_after():
    clock = Clock()
    window = SlidingWindow(2, window_s=60, clock=clock)
    assert window.retry_after("a") is None
    window.record("a")
    window.record("a")
    assert window.retry_after("a") == 60
    clock.now += 60
    assert window.retry_after("a") is None


def test_zero_limit_is_off():
    window = SlidingWindow(0)
    assert all(window.hit("a") is None for _ in range(1000))
    assert window.retry_after("a") is None


def test_keys_are_bounded(monkeypatch):
    monkeypatch.setattr(ratelimit, "MAX_KEYS", 3)
    window = SlidingWindow(1, clock=Clock())
    for key in ("a", "b", "c", "d"):
        window.hit(key)
    assert window.hit("a") is None
    assert window.hit("d") == 60


def test_limits_raise_with_retry_after():
    limits = RateLimits(submissions_per_minute=1, auth_failures_per_minute=1)
    limits.check_submission("token-1")
    limits.auth_failures.record("127.0.0.1")
    with pytest.raises(RateLimitedError, match="1 per minute per token") as info:
        limits.check_submission("token-1")
    assert info.value.status_code == 429
    assert 1 <= info.value.retry_after_s <= 60
    with pytest.raises(RateLimitedError, match="failed authentications from 127"):
        limits.check_auth_allowed("127.0.0.1")
    limits.check_auth_allowed("127.0.0.2")
