"""Latency of the history queries on 100,000 stored results, against 1,000.

Fills a large and a reference database of each backend with the same spread of
results: projects of uneven size, main, release and feature branches, both
gate kinds, mostly passing. Then it times each query the REST routes make,
through the same ``Runtime`` methods the routes call, including turning the
rows into API results. Runs alternate between the two databases, and every
figure is printed with its ratio to the same query on the reference database.
A ratio near 1 means the query does not slow down as the history grows.

PostgreSQL runs when ``--postgres-url`` (default: $DISTILGATE_TEST_POSTGRES_URL)
names a server and a user who may create databases. The bench creates the
databases ``distilgate_bench_large`` and ``distilgate_bench_reference`` there
and drops them when it ends. SQLite files go to a temporary directory.

    .venv/bin/python bench/history.py
    .venv/bin/python bench/history.py --without-history-indexes
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import insert, select, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.auth import ANONYMOUS_ADMIN  # noqa: E402
from app.config import Settings  # noqa: E402
from app.runtime import Runtime  # noqa: E402
from app.storage.db import MIGRATIONS_DIR  # noqa: E402
from app.storage.models import GateRecord  # noqa: E402
from app.storage.repository import GateFilter, encode_cursor  # noqa: E402

PAGE = 50  # the default `limit` of GET /api/v1/gates
TREND_POINTS = 100  # the default `limit` of the trend route
BATCH = 5_000
START = datetime(2026, 6, 1, tzinfo=UTC)
SPAN = timedelta(days=180)
STATUSES = (
    ("passed", 0.75),
    ("failed", 0.15),
    ("error", 0.04),
    ("inconclusive", 0.03),
    ("waived", 0.02),
    ("queued", 0.005),
    ("running", 0.005),
)
CHECK_NAMES = {
    "model": ("accuracy_loss", "size_reduction", "latency_reduction", "param_ratio"),
    "data": ("scenario_coverage", "pairwise_coverage", "feature_coverage"),
}


@dataclass(frozen=True)
class Query:
    """One timed query: ``run`` is called with the runtime and a seeded RNG."""

    name: str
    run: Callable[[Runtime, random.Random], Any]


# Data


def projects() -> list[str]:
    return [f"project-{index:02d}" for index in range(40)]


def project_weights() -> list[float]:
    """Zipf-like weights: the first project gets about a quarter of the gates."""
    return [1.0 / (rank + 1) for rank in range(len(projects()))]


def make_rows(count: int, seed: int) -> Iterator[dict[str, Any]]:
    """Yield ``count`` gate rows, oldest first, spread over 180 days."""
    rng = random.Random(seed)
    names, weights = projects(), project_weights()
    statuses = [status for status, _ in STATUSES]
    status_weights = [weight for _, weight in STATUSES]
    commit = ""
    for number in range(count):
        if number % 2 == 0:  # about two gates per commit
            commit = f"{rng.getrandbits(160):040x}"
        kind = "model" if rng.random() < 0.55 else "data"
        status = rng.choices(statuses, status_weights)[0]
        yield {
            "id": f"{seed:04x}{number:028x}",
            "kind": kind,
            "status": status,
            "project": rng.choices(names, weights)[0],
            "branch": _branch(rng),
            "commit": commit,
            "created_at": START + SPAN * (number / count),
            "policy": {"min_coverage": 0.95, "max_accuracy_loss": 0.03},
            "metrics": _metrics(rng, kind),
            "checks": _checks(rng, kind, status),
            "details": {},
            "artifacts": _artifacts(rng, kind),
            "policy_version": 1,
            "fingerprint": f"{rng.getrandbits(256):064x}",
        }


def _branch(rng: random.Random) -> str:
    draw = rng.random()
    if draw < 0.5:
        return "main"
    if draw < 0.6:
        return f"release/1.{rng.randrange(12)}"
    return f"feature/{rng.randrange(400)}"


def _metrics(rng: random.Random, kind: str) -> dict[str, Any]:
    if kind == "model":
        teacher = rng.uniform(0.90, 0.99)
        return {
            "teacher_accuracy": teacher,
            "student_accuracy": teacher - rng.uniform(0.0, 0.05),
            "size_reduction": rng.uniform(0.6, 0.99),
            "latency_reduction": rng.uniform(0.6, 0.99),
            "param_ratio": rng.uniform(2, 40),
        }
    return {
        "scenario_coverage": rng.uniform(0.85, 1.0),
        "pairwise_coverage": rng.uniform(0.85, 1.0),
        "feature_coverage": rng.uniform(0.85, 1.0),
        "rows_original": rng.randrange(10_000, 1_000_000),
    }


def _checks(rng: random.Random, kind: str, status: str) -> list[dict[str, Any]]:
    checks = []
    for name in CHECK_NAMES[kind]:
        value = rng.uniform(0.8, 1.0)
        checks.append(
            {
                "name": name,
                "value": value,
                "threshold": 0.95,
                "comparator": ">=",
                "unit": "ratio",
                "status": "failed" if status == "failed" and value < 0.9 else "passed",
                "advisory": name == "param_ratio",
                "message": f"{name} {value:.4f} >= 0.9500 (measured on this run)",
                "interval": [value - 0.01, value + 0.01],
            }
        )
    return checks


def _artifacts(rng: random.Random, kind: str) -> dict[str, Any]:
    fields = ("teacher", "student", "dataset") if kind == "model" else ("subset",)
    return {
        field: {
            "sha256": f"{rng.getrandbits(256):064x}",
            "size_bytes": rng.randrange(1_000, 50_000_000),
            "filename": f"{field}.onnx",
        }
        for field in fields
    }


def fill(runtime: Runtime, count: int, seed: int) -> None:
    """Bulk-insert ``count`` rows through the ORM model, in batches."""
    rows = make_rows(count, seed)
    while True:
        batch = [row for _, row in zip(range(BATCH), rows, strict=False)]
        if not batch:
            break
        with runtime.database.session() as session:
            session.execute(insert(GateRecord), batch)


# Queries


def queries(runtime: Runtime) -> list[Query]:
    """Return the timed queries, with parameters taken from the stored rows."""
    names = projects()[:5]  # the busiest projects
    deep = _deep_cursor(runtime, depth=0.9)
    commits = _sample_commits(runtime, 50)
    newest = _newest_records(runtime, names)
    week_ago = START + SPAN - timedelta(days=7)

    def history(filters: GateFilter, cursor: str | None = None) -> Any:
        return runtime.history(filters, limit=PAGE, cursor=cursor)

    def baseline(runtime: Runtime, rng: random.Random) -> Any:
        record = rng.choice(newest)
        with runtime.scope() as service:
            return service.repository.last_before(
                record, status="passed", same_commit=False
            )

    return [
        Query("first page", lambda r, rng: history(GateFilter())),
        Query(
            "project + branch",
            lambda r, rng: history(
                GateFilter(project=rng.choice(names), branch="main")
            ),
        ),
        Query(
            "project + rare branch",
            lambda r, rng: history(
                GateFilter(
                    project=rng.choice(names), branch=f"feature/{rng.randrange(400)}"
                )
            ),
        ),
        Query("status failed", lambda r, rng: history(GateFilter(status="failed"))),
        Query(
            "project + status error",
            lambda r, rng: history(
                GateFilter(project=rng.choice(names), status="error")
            ),
        ),
        Query("commit", lambda r, rng: history(GateFilter(commit=rng.choice(commits)))),
        Query(
            "project, last 7 days",
            lambda r, rng: history(
                GateFilter(project=rng.choice(names), since=week_ago)
            ),
        ),
        Query("deep cursor (90%)", lambda r, rng: history(GateFilter(), deep)),
        Query("latest passing baseline", baseline),
        Query(
            "badge (latest verdict)",
            lambda r, rng: r.latest(
                GateFilter(project=rng.choice(names), branch="main", kind="model")
            ),
        ),
        Query(
            "trend, 100 points",
            lambda r, rng: r.series(
                GateFilter(project=rng.choice(names), branch="main", kind="data"),
                limit=TREND_POINTS,
            ),
        ),
        Query(
            "gate by id", lambda r, rng: r.get(rng.choice(newest).id, ANONYMOUS_ADMIN)
        ),
    ]


def _deep_cursor(runtime: Runtime, depth: float) -> str:
    with runtime.database.session() as session:
        count = session.scalar(select(GateRecord.seq).order_by(GateRecord.seq.desc()))
    return encode_cursor(int((count or 0) * (1 - depth)))


def _sample_commits(runtime: Runtime, count: int) -> list[str]:
    with runtime.database.session() as session:
        commits = session.scalars(select(GateRecord.commit).limit(count * 20))
        return [commit for commit in commits if commit][::20]


def _newest_records(runtime: Runtime, names: list[str]) -> list[GateRecord]:
    records = []
    with runtime.database.session() as session:
        for name in names:
            query = (
                select(GateRecord)
                .where(GateRecord.project == name, GateRecord.branch == "main")
                .order_by(GateRecord.seq.desc())
                .limit(4)
            )
            records.extend(session.scalars(query))
    return records


def measure_pair(
    runtimes: dict[str, Runtime], name: str, repeats: int, seed: int
) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Time query ``name`` on every runtime, alternating between them each run.

    Alternating exposes both databases to the same load on the machine. Each
    runtime gets the same parameter sequence from its own seeded RNG. Returns
    the timings in seconds and the rows the last run returned, per runtime.
    """
    chosen = {label: _query(runtime, name) for label, runtime in runtimes.items()}
    rngs = {label: random.Random(seed) for label in runtimes}
    for label, runtime in runtimes.items():
        for _ in range(5):  # warm-up
            chosen[label].run(runtime, rngs[label])
    rngs = {label: random.Random(seed) for label in runtimes}
    timings: dict[str, list[float]] = {label: [] for label in runtimes}
    returned = {label: 0 for label in runtimes}
    for _ in range(repeats):
        for label, runtime in runtimes.items():
            start = time.perf_counter()
            result = chosen[label].run(runtime, rngs[label])
            timings[label].append(time.perf_counter() - start)
            returned[label] = count_rows(result)
    return timings, returned


def _query(runtime: Runtime, name: str) -> Query:
    return next(query for query in queries(runtime) if query.name == name)


def count_rows(result: Any) -> int:
    """Return how many results a Runtime call returned."""
    if result is None:
        return 0
    if isinstance(result, tuple):  # a history page and its cursor
        return len(result[0])
    if isinstance(result, list):
        return len(result)
    return 1


def percentile(timings: list[float], fraction: float) -> float:
    ordered = sorted(timings)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# Databases


@contextmanager
def sqlite_url(directory: Path, name: str) -> Iterator[str]:
    yield f"sqlite:///{directory / name}.db"


@contextmanager
def postgres_url(admin_url: str, name: str) -> Iterator[str]:
    """Create database ``name`` on the server of ``admin_url``; drop it after."""
    admin = make_url(admin_url)
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def history_indexes() -> list[str]:
    """Return the names of the indexes migration 0003 adds."""
    path = next((MIGRATIONS_DIR / "versions").glob("0003_*.py"))
    spec = importlib.util.spec_from_file_location("migration_0003", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [name for name, _columns in module.INDEXES]


@contextmanager
def filled_runtime(
    url: str, rows: int, args: argparse.Namespace, data_dir: Path
) -> Iterator[Runtime]:
    runtime = Runtime(Settings(database_url=url, data_dir=data_dir))
    try:
        runtime.database.migrate()
        if args.without_history_indexes:
            with runtime.database.engine.begin() as connection:
                for name in history_indexes():
                    connection.execute(text(f"DROP INDEX {name}"))
        started = time.perf_counter()
        fill(runtime, rows, seed=7)
        if runtime.database.engine.dialect.name == "postgresql":
            # What autovacuum does after a bulk load; plans need the statistics.
            with runtime.database.engine.begin() as connection:
                connection.execute(text("ANALYZE gates"))
        elapsed = time.perf_counter() - started
        print(f"  filled {rows:,} rows in {elapsed:.1f} s", flush=True)
        yield runtime
    finally:
        runtime.stop()


Row = tuple[str, str, float, float, float, float, int, int]


def bench_backend(
    backend: str,
    make_url_for: Callable[[str], Any],
    args: argparse.Namespace,
    directory: Path,
) -> list[Row]:
    """Return one row per query: backend, query, then p50 and p99 of the large
    database, p50 and p99 of the reference, and the rows each returned."""
    sizes = {"large": args.rows, "reference": args.reference_rows}
    results = []
    with ExitStack() as stack:
        runtimes = {}
        for label, rows in sizes.items():
            print(f"{backend}: {label} database", flush=True)
            url = stack.enter_context(make_url_for(f"distilgate_bench_{label}"))
            runtimes[label] = stack.enter_context(
                filled_runtime(url, rows, args, directory / f"data-{label}")
            )
        for query in queries(runtimes["large"]):
            timings, returned = measure_pair(runtimes, query.name, args.repeats, 11)
            large, reference = timings["large"], timings["reference"]
            results.append(
                (
                    backend,
                    query.name,
                    percentile(large, 0.5),
                    percentile(large, 0.99),
                    percentile(reference, 0.5),
                    percentile(reference, 0.99),
                    returned["large"],
                    returned["reference"],
                )
            )
    return results


def print_table(results: list[Row], args: argparse.Namespace) -> None:
    large, reference = f"{args.rows:,}", f"{args.reference_rows:,}"
    indexes = "without" if args.without_history_indexes else "with"
    print(f"\n{indexes} the history indexes, {args.repeats} runs per query\n")
    print(
        f"| backend | query | p50 ({large}) | p99 ({large}) | p50 ({reference}) "
        f"| p99 ({reference}) | p50 ratio | p99 ratio | rows returned |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for backend, name, p50, p99, ref50, ref99, rows, ref_rows in results:
        print(
            f"| {backend} | {name} | {p50 * 1e3:.2f} ms | {p99 * 1e3:.2f} ms "
            f"| {ref50 * 1e3:.2f} ms | {ref99 * 1e3:.2f} ms "
            f"| {p50 / ref50:.2f} | {p99 / ref99:.2f} | {rows} / {ref_rows} |"
        )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="large table rows")
    parser.add_argument(
        "--reference-rows", type=int, default=1_000, help="reference table rows"
    )
    parser.add_argument(
        "--repeats", type=int, default=200, help="timed runs of each query"
    )
    parser.add_argument(
        "--backends", default="sqlite,postgres", help="comma-separated backends"
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("DISTILGATE_TEST_POSTGRES_URL"),
        help="SQLAlchemy URL of a PostgreSQL database whose user may create "
        "databases (default: $DISTILGATE_TEST_POSTGRES_URL)",
    )
    parser.add_argument(
        "--without-history-indexes",
        action="store_true",
        help="drop the indexes of migration 0003 before filling, to compare",
    )
    return parser.parse_args()


def url_factory(
    backend: str, args: argparse.Namespace, directory: Path
) -> Callable[[str], Any] | None:
    """Return a function that yields a fresh database URL by name, or None."""
    if backend == "sqlite":
        return lambda name: sqlite_url(directory, name)
    if backend == "postgres" and args.postgres_url:
        admin_url = str(args.postgres_url)
        return lambda name: postgres_url(admin_url, name)
    return None


def main() -> int:
    args = parse_args()
    backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    unknown = sorted(set(backends) - {"sqlite", "postgres"})
    if unknown:
        print(
            f"error: unknown backends {unknown}; use sqlite or postgres",
            file=sys.stderr,
        )
        return 2
    results = []
    with tempfile.TemporaryDirectory(prefix="distilgate-bench-") as temp:
        directory = Path(temp)
        for backend in backends:
            make_url_for = url_factory(backend, args, directory)
            if make_url_for is None:
                print(f"{backend}: skipped, set --postgres-url", file=sys.stderr)
                continue
            results.extend(bench_backend(backend, make_url_for, args, directory))
    print_table(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
