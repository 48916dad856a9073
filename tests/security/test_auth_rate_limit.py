"""Repeated failed authentications from one address get 429."""

import httpx
import pytest

from tests.api.helpers import only_error
from tests.security.helpers import ADMIN, bearer
from tests.servers import live_server

pytestmark = pytest.mark.slow

LIMIT = 5


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def limited(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"auth-limit-{request.param}")
    env = {
        "DISTILGATE_ADMIN_TOKEN": ADMIN,
        "DISTILGATE_AUTH_FAILURES_PER_MINUTE": str(LIMIT),
    }
    with live_server(request.param, root, env) as live:
        yield live


def test_auth_failures_are_rate_limited(limited):
    url = f"{limited.url}/api/v1/gates"
    failures = [
        httpx.get(url, headers=bearer(f"dg_guess_{n}")).status_code
        for n in range(LIMIT)
    ]
    blocked = httpx.get(url, headers=bearer("dg_guess_next"))
    valid = httpx.get(url, headers=bearer(ADMIN))
    error = only_error(blocked)
    assert failures == [401] * LIMIT
    assert blocked.status_code == 429
    assert 1 <= int(blocked.headers["retry-after"]) <= 60
    assert error["type"] == "rate_limited"
    assert f"the limit is {LIMIT} per minute" in error["msg"]
    assert "127.0.0.1" in error["msg"]
    assert valid.status_code == 429
    assert "dg_guess" not in limited.log_path.read_text()
