"""GET /metrics on a live server: gate counts, durations, uploads and access."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.observability.exposition import key, samples
from tests.servers import live_server

pytestmark = pytest.mark.slow

ADMIN = "bootstrap-admin-secret-for-metrics"
MODEL_PASS = {
    "kind": "model",
    "project": "metrics",
    "teacher": {"accuracy": 0.98, "size_bytes": 1000},
    "student": {"accuracy": 0.97, "size_bytes": 100},
}
MODEL_FAIL = {**MODEL_PASS, "student": {"accuracy": 0.80, "size_bytes": 100}}
DATA_PASS = {
    "kind": "data",
    "project": "metrics",
    "original": {"coverage": 0.9},
    "subset": {"coverage": 0.89},
}
DURATION_COUNT = "distilgate_gate_duration_seconds_count"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def observed(request, tmp_path_factory):
    """A server without tokens that reads gate counts on every scrape."""
    root = tmp_path_factory.mktemp(f"metrics-{request.param}")
    env = {"DISTILGATE_METRICS_CACHE_S": "0"}
    with live_server(request.param, root, env) as live:
        yield live


def scrape(server, headers=None):
    response = httpx.get(f"{server.url}/metrics", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return samples(response.content)


def scrape_until(server, sample, expected, timeout_s=20.0):
    """Scrape until ``sample`` reaches ``expected``, or give up after ``timeout_s``.

    A job observes its duration just after it stores the verdict that the POST
    returns, so the first scrape may miss it.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        values = scrape(server)
        if values.get(sample, 0) >= expected or time.monotonic() > deadline:
            return values
        time.sleep(0.1)


def submit_metrics(server, body):
    response = httpx.post(f"{server.url}/api/v1/gates/metrics", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def lcov(path, covered):
    lines = ["TN:", "SF:src/shop/cart.py"]
    lines += [f"DA:{n},{1 if n in covered else 0}" for n in range(1, 11)]
    path.write_text("\n".join([*lines, "end_of_record", ""]))
    return path


def test_metrics_count_gates_by_kind_and_status(observed):
    before = scrape(observed)
    for body in (MODEL_PASS, MODEL_PASS, MODEL_FAIL, DATA_PASS):
        submit_metrics(observed, body)
    passed = key(DURATION_COUNT, kind="model", status="passed")
    after = scrape_until(observed, passed, before.get(passed, 0) + 2)

    def added(sample):
        return after.get(sample, 0) - before.get(sample, 0)

    assert added(key("distilgate_gates", kind="model", status="passed")) == 2
    assert added(key("distilgate_gates", kind="model", status="failed")) == 1
    assert added(key("distilgate_gates", kind="data", status="passed")) == 1
    assert added(key("distilgate_gates", kind="data", status="failed")) == 0
    assert added(passed) == 2
    assert added(key(DURATION_COUNT, kind="model", status="failed")) == 1
    assert (
        added(
            key("distilgate_gate_duration_seconds_sum", kind="model", status="passed")
        )
        > 0
    )
    assert added(key("distilgate_gate_queue_wait_seconds_count", kind="data")) == 1
    assert after[key("distilgate_queue_depth")] == 0
    assert after[key("distilgate_jobs_in_flight")] == 0
    assert after[key("distilgate_database_up")] == 1


def test_metrics_histogram_buckets_are_cumulative(observed):
    submit_metrics(observed, DATA_PASS)
    count = key(DURATION_COUNT, kind="data", status="passed")
    values = scrape_until(observed, count, 1)
    buckets = sorted(
        (float(dict(labels)["le"]), value)
        for (name, labels), value in values.items()
        if name == "distilgate_gate_duration_seconds_bucket"
        and dict(labels)["kind"] == "data"
        and dict(labels)["status"] == "passed"
    )
    assert buckets[-1] == (float("inf"), values[count])
    assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:], strict=False))


def test_metrics_count_upload_bytes_by_field(observed, tmp_path):
    files = {
        "original_coverage": lcov(tmp_path / "full.info", set(range(1, 11))),
        "subset_coverage": lcov(tmp_path / "subset.info", set(range(1, 10))),
    }
    before = scrape(observed)
    response = httpx.post(
        f"{observed.url}/api/v1/gates/data",
        files={field: (p.name, p.read_bytes()) for field, p in files.items()},
        timeout=60,
    )
    after = scrape(observed)
    assert response.status_code == 200, response.text
    for field, path in files.items():
        sample = key("distilgate_upload_bytes_total", kind="data", field=field)
        assert after[sample] - before.get(sample, 0) == path.stat().st_size


def test_metrics_content_type_is_prometheus_text(observed):
    response = httpx.get(f"{observed.url}/metrics", timeout=30)
    assert response.headers["content-type"].startswith("text/plain; version=")
    assert "# TYPE distilgate_gates gauge" in response.text


ACCESS_CONFIGS = {
    "tokens": {},
    "public_read": {"DISTILGATE_PUBLIC_READ": "true"},
    "metrics_public": {"DISTILGATE_METRICS_PUBLIC": "true"},
}
# Expected status of GET /metrics for each caller, by server configuration.
ACCESS_TABLE = {
    "tokens": {"none": 401, "wrong": 401, "read": 200, "submit": 403, "admin": 200},
    "public_read": {
        "none": 200,
        "wrong": 401,
        "read": 200,
        "submit": 403,
        "admin": 200,
    },
    "metrics_public": {
        "none": 200,
        "wrong": 200,
        "read": 200,
        "submit": 200,
        "admin": 200,
    },
}


@pytest.fixture(scope="module", params=sorted(ACCESS_CONFIGS))
def access(request, tmp_path_factory):
    """A server with tokens on, in one of the access configurations."""
    root = tmp_path_factory.mktemp(f"metrics-access-{request.param}")
    env = {"DISTILGATE_ADMIN_TOKEN": ADMIN, **ACCESS_CONFIGS[request.param]}
    with live_server("sqlite", root, env) as live:
        yield request.param, live


def make_token(server, scopes):
    response = httpx.post(
        f"{server.url}/api/v1/tokens",
        json={"name": "-".join(scopes), "scopes": scopes, "projects": ["*"]},
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return response.json()["token"]


def test_metrics_access_by_token_scope(access):
    config, server = access
    tokens = {
        "none": None,
        "wrong": "dg_" + "x" * 43,
        "read": make_token(server, ["read"]),
        "submit": make_token(server, ["submit"]),
        "admin": ADMIN,
    }
    for caller, token in tokens.items():
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = httpx.get(f"{server.url}/metrics", headers=headers, timeout=30)
        expected = ACCESS_TABLE[config][caller]
        assert response.status_code == expected, (config, caller, response.text)
        if expected == 200:
            assert "distilgate_gates" in response.text
        else:
            assert response.json()["detail"][0]["loc"] == ["header", "Authorization"]
