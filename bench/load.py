"""Throughput and latency of 200 gates from 20 clients, scaled out and in-process.

Runs the same load against two setups that the bench starts on 127.0.0.1:

(a) ``scaled``: one API (``DISTILGATE_EXECUTOR=celery``) and two
    ``distilgate worker`` processes (prefork, concurrency 1, no shared disk),
    on Redis and a fresh PostgreSQL database ``distilgate_load`` that the bench
    creates and drops;
(b) ``inprocess``: the same API on SQLite, evaluating gates on its own thread
    pool of two (``DISTILGATE_JOB_WORKERS=2``).

Each client submits its share of the gates with ``wait=0`` and an
``Idempotency-Key``, resends a submission that failed with a transport error
or a 5xx, and long-polls the gate until it is terminal. The mix is mostly
metrics-only gates, with every fifth a model gate on the small example models
(``examples/artifacts.py``, quick build). The bench prints throughput
(terminal gates per minute), p50 and p95 submit-to-verdict latency, and the
ratio of (a) to (b). Then it audits the database and the process logs. A gate
is lost when it never became terminal or has no row, and duplicated when its
key has two rows or two jobs stored its outcome. The bench also counts 5xx
responses, and exits 1 when any gate is lost or duplicated.

Every run is bounded by ``--timeout`` seconds, and every process it started
is stopped when it ends.

    .venv/bin/python bench/load.py
    .venv/bin/python bench/load.py --gates 60 --clients 6 --artifacts /tmp/dg-art
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import psycopg
import redis
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.scaleout.load import LoadClient, LoadRun, audit, plan  # noqa: E402
from tests.scaleout.processes import Cluster  # noqa: E402
from tests.servers import LiveServer  # noqa: E402

DATABASE = "distilgate_load"
# Redis databases of the bench, apart from those the tests use (11 and 12).
BROKER_DB = 13
RESULTS_DB = 14
PROJECT = "load"
COMMON_ENV = {
    "DISTILGATE_MAX_PENDING_JOBS": "1000",
    "DISTILGATE_SWEEP_INTERVAL_S": "1",
    "DISTILGATE_LOG_LEVEL": "INFO",
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--gates", type=int, default=200, help="gates per setup")
    parser.add_argument("--clients", type=int, default=20, help="client threads")
    parser.add_argument(
        "--model-every",
        type=int,
        default=5,
        help="every N-th gate is a model gate (0: metrics gates only)",
    )
    parser.add_argument(
        "--timeout", type=float, default=600, help="time limit of each setup, in s"
    )
    parser.add_argument(
        "--artifacts",
        type=Path,
        help="directory of example artifacts, built there when missing "
        "(default: a temporary directory)",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("DISTILGATE_TEST_POSTGRES_URL"),
        help="admin URL of a PostgreSQL server (default $DISTILGATE_TEST_POSTGRES_URL)",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("DISTILGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379"),
        help="Redis URL without a database number (default "
        "$DISTILGATE_TEST_REDIS_URL or redis://127.0.0.1:6379)",
    )
    return parser.parse_args()


def build_artifacts(directory: Path) -> dict[str, Path]:
    from examples.artifacts import build_all

    directory.mkdir(parents=True, exist_ok=True)
    return build_all(directory, quick=True, reuse=True)


def postgres_conninfo(admin_url: str) -> str:
    url = make_url(admin_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def create_database(admin_url: str) -> str:
    """Create an empty ``distilgate_load`` database; return its SQLAlchemy URL."""
    with psycopg.connect(postgres_conninfo(admin_url), autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        connection.execute(f"CREATE DATABASE {DATABASE}")
    url = make_url(admin_url).set(drivername="postgresql+psycopg", database=DATABASE)
    return url.render_as_string(hide_password=False)


def drop_database(admin_url: str) -> None:
    with psycopg.connect(postgres_conninfo(admin_url), autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


def full_logs(root: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(root.glob("*.log")))


def run_scaled(args: argparse.Namespace, artifacts: dict, root: Path) -> bool:
    database_url = create_database(args.postgres_url)
    redis_url = args.redis_url.rstrip("/")
    env = {
        **COMMON_ENV,
        "DISTILGATE_BROKER_URL": f"{redis_url}/{BROKER_DB}",
        "DISTILGATE_RESULT_BACKEND": f"{redis_url}/{RESULTS_DB}",
    }
    cluster = Cluster(database_url, root, redis_url, env)
    try:
        cluster.start_api()
        cluster.worker()
        cluster.worker()
        return measure("scaled", cluster.url, database_url, args, artifacts, root)
    finally:
        cluster.stop()
        redis.Redis.from_url(f"{redis_url}/{BROKER_DB}").delete(cluster.queue)
        drop_database(args.postgres_url)


def run_inprocess(args: argparse.Namespace, artifacts: dict, root: Path) -> bool:
    database_url = f"sqlite:///{root / 'load.db'}"
    env = {**COMMON_ENV, "DISTILGATE_EXECUTOR": "inprocess"}
    env["DISTILGATE_JOB_WORKERS"] = "2"
    server = LiveServer(database_url, root / "data", root / "api.log", env).start()
    try:
        return measure("inprocess", server.url, database_url, args, artifacts, root)
    finally:
        server.stop()


RUNS: dict[str, LoadRun] = {}


def measure(
    name: str,
    url: str,
    database_url: str,
    args: argparse.Namespace,
    artifacts: dict,
    root: Path,
) -> bool:
    """Run the load on one setup, print its figures; False if a gate was lost."""
    specs = plan(args.gates, args.model_every, name)
    client = LoadClient(url, artifacts, PROJECT)
    run = client.run(specs, args.clients, args.timeout)
    RUNS[name] = run
    found = audit(database_url, PROJECT, specs, full_logs(root))
    print(
        f"{name:>9}: {len(run.terminal)}/{len(specs)} terminal in "
        f"{run.elapsed_s:.1f} s, {run.throughput_per_min():.0f} gates/min, "
        f"p50 {run.latency_percentile(50):.2f} s, "
        f"p95 {run.latency_percentile(95):.2f} s"
    )
    print(
        f"{'':>9}  statuses {dict(run.statuses)}; 5xx {dict(run.server_errors)}; "
        f"transport errors {run.transport_errors}"
    )
    print(f"{'':>9}  audit {found.summary()}")
    return not found.lost and not found.duplicated


def main() -> int:
    args = parse_args()
    if not args.postgres_url:
        print("set --postgres-url or DISTILGATE_TEST_POSTGRES_URL", file=sys.stderr)
        return 2
    with ExitStack() as stack:
        temporary = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        artifacts = build_artifacts(args.artifacts or temporary / "artifacts")
        print(
            f"{args.gates} gates per setup from {args.clients} clients, "
            f"every {args.model_every}th a model gate; {os.cpu_count()} CPUs"
        )
        scaled_root = temporary / "scaled"
        inprocess_root = temporary / "inprocess"
        scaled_root.mkdir()
        inprocess_root.mkdir()
        clean = run_scaled(args, artifacts, scaled_root)
        clean = run_inprocess(args, artifacts, inprocess_root) and clean
    scaled, inprocess = RUNS["scaled"], RUNS["inprocess"]
    print(
        "scaled / inprocess: throughput "
        f"{scaled.throughput_per_min() / inprocess.throughput_per_min():.2f}x, "
        "p50 latency "
        f"{scaled.latency_percentile(50) / inprocess.latency_percentile(50):.2f}x, "
        "p95 latency "
        f"{scaled.latency_percentile(95) / inprocess.latency_percentile(95):.2f}x"
    )
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
