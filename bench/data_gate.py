"""Time and peak memory of the data gate, against a floor and a naive path.

Every figure is a ratio against references run in the same process:

- floor: one float32 matrix product of the cleaned original by the subset, in
  the same tiles the gate uses (the work of a brute-force nearest-subset-row
  search, which the gate's cluster-pruned search does less of on clustered
  data);
- naive: what a user would write with scikit-learn defaults, NearestNeighbors
  for the k-th neighbour radii and the nearest subset row, and KMeans.

Peak memory is the largest traced allocation (tracemalloc, which numpy reports
to) during the gate, over the bytes of the input arrays or tables.

    .venv/bin/python bench/data_gate.py                 # 100k x 20k, 64 dims
    .venv/bin/python bench/data_gate.py --case uniform  # same, no clusters
    .venv/bin/python bench/data_gate.py --case tabular  # 50k-row CSV
    .venv/bin/python bench/data_gate.py --case scaling  # 10k..100k rows
    .venv/bin/python bench/data_gate.py --case huge     # 1M x 50k, minutes
"""

from __future__ import annotations

import argparse
import io
import math
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.datasets import load_wine
from sklearn.neighbors import NearestNeighbors

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.evaluation.clusters import cluster_count  # noqa: E402
from app.evaluation.data_gate import evaluate_data  # noqa: E402
from app.evaluation.features import TableFeaturiser  # noqa: E402
from app.evaluation.neighbours import (  # noqa: E402
    TILE_POINTS,
    block_rows,
    parallel_map,
)
from app.policy import Policy  # noqa: E402

SEED = 0
DIMS = 64


def mixture(rows: int, dims: int, seed: int) -> np.ndarray:
    """Draw float32 rows from 50 Gaussian blobs with centres spread 3 sd apart."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(50, dims)) * 3.0
    labels = rng.integers(0, 50, rows)
    noise = rng.standard_normal(size=(rows, dims), dtype=np.float32)
    return (centres[labels].astype(np.float32) + noise).astype(np.float32)


def float_tables(
    rows: int, subset_rows: int, *, clustered: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Build a 64-column float32 original and a uniform random subset of it.

    The rows come from Gaussian blobs, or without ``clustered`` uniformly from
    the unit cube, where no cluster can be skipped in a neighbour search.
    """
    if clustered:
        values = mixture(rows, DIMS, SEED)
    else:
        values = np.random.default_rng(SEED).random((rows, DIMS), dtype=np.float32)
    original = pd.DataFrame(values, columns=[f"f{i}" for i in range(DIMS)])
    rng = np.random.default_rng(SEED + 1)
    chosen = np.sort(rng.choice(rows, subset_rows, replace=False))
    return original, original.iloc[chosen].reset_index(drop=True)


def wine_table(rows: int) -> pd.DataFrame:
    """Resample scikit-learn's wine table with noise and add categorical columns.

    Each row copies a random wine and adds Gaussian noise of 5% of each
    column's standard deviation. ``cultivar`` is the class, ``alcohol_band``
    a tertile of alcohol, ``region`` one of 12 names drawn per row, and
    ``batch`` one of 400 codes, so that one-hot encoding groups rare values.
    """
    wine = load_wine(as_frame=True).frame
    rng = np.random.default_rng(SEED)
    picks = rng.integers(0, len(wine), rows)
    numeric = wine.drop(columns="target")
    noise = rng.normal(size=(rows, numeric.shape[1])) * numeric.std().to_numpy()
    table = pd.DataFrame(
        numeric.to_numpy()[picks] + 0.05 * noise, columns=numeric.columns
    )
    table["cultivar"] = wine["target"].to_numpy()[picks].astype(str)
    table["alcohol_band"] = pd.qcut(
        table["alcohol"], 3, labels=["low", "mid", "high"]
    ).astype(str)
    table["region"] = rng.choice([f"region-{i}" for i in range(12)], rows)
    table["batch"] = rng.choice([f"b{i:03d}" for i in range(400)], rows)
    return table


def floor_seconds(points: np.ndarray, subset: np.ndarray) -> float:
    """Time one tiled float32 product of ``points`` by ``subset``.

    Two ways are timed, each twice, and the fastest run counts: blocks in turn
    with a multi-threaded BLAS, and blocks on one thread per core with a
    single-threaded BLAS, as the gate runs them.
    """
    width = min(TILE_POINTS, len(subset))
    step = block_rows(len(points), width)

    def product(start: int) -> None:
        block = points[start : start + step]
        out = np.empty((len(block), width), dtype=np.float32)
        for first in range(0, len(subset), TILE_POINTS):
            tile = subset[first : first + TILE_POINTS].T
            np.matmul(block, tile, out=out[:, : tile.shape[1]])

    starts = range(0, len(points), step)
    best = math.inf
    for _ in range(2):
        for parallel in (False, True):
            start = time.perf_counter()
            if parallel:
                list(parallel_map(product, starts))
            else:
                for first in starts:
                    product(first)
            best = min(best, time.perf_counter() - start)
    return best


def naive_seconds(points: np.ndarray, subset: np.ndarray, k: int) -> float:
    """Time NN-ball coverage and a cluster map with scikit-learn defaults."""
    start = time.perf_counter()
    radii, _ = NearestNeighbors(n_neighbors=k + 1).fit(points).kneighbors(points)
    nearest, _ = NearestNeighbors(n_neighbors=1).fit(subset).kneighbors(points)
    covered = float((nearest[:, 0] <= radii[:, -1]).mean())
    clusters = cluster_count(len(points), len(points))
    KMeans(n_clusters=clusters, random_state=SEED).fit(points).predict(subset)
    del covered
    return time.perf_counter() - start


class Stages:
    """Progress callback that records the seconds spent in each stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._stage = ""
        self._since = time.perf_counter()

    def __call__(self, stage: str, fraction: float) -> None:
        now = time.perf_counter()
        if stage != self._stage:
            if self._stage:
                self.seconds[self._stage] = (
                    self.seconds.get(self._stage, 0.0) + now - self._since
                )
            self._stage, self._since = stage, now

    def close(self) -> dict[str, float]:
        self("", 0.0)
        return self.seconds


def run_gate(
    original: pd.DataFrame, subset: pd.DataFrame, **options: object
) -> tuple[float, dict[str, float], object]:
    stages = Stages()
    start = time.perf_counter()
    evaluation = evaluate_data(
        original,
        subset,
        policy=Policy(),
        progress=stages,
        **options,  # type: ignore[arg-type]
    )
    return time.perf_counter() - start, stages.close(), evaluation


def traced_peak(call: Callable[[], object]) -> int:
    tracemalloc.start()
    call()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def report_case(
    name: str,
    original: pd.DataFrame,
    subset: pd.DataFrame,
    *,
    naive: bool,
    memory: bool = True,
    repeats: int = 3,
    **options: object,
) -> float:
    """Run the gate timed, then traced; print the figures and return the time.

    The floor and the naive path run on the gate's own encoding of the tables.
    """
    runs = [run_gate(original, subset, **options) for _ in range(repeats)]
    seconds, stages, evaluation = min(runs, key=lambda run: run[0])
    median = float(np.median([run[0] for run in runs]))
    metrics = evaluation.metrics  # type: ignore[attr-defined]
    featuriser = TableFeaturiser()
    featuriser.fit(original, np.arange(len(original)))
    points = featuriser.transform(original)
    subset_points = featuriser.transform(subset)
    floor = floor_seconds(points, subset_points)
    inputs = original.memory_usage(deep=True).sum()
    inputs += subset.memory_usage(deep=True).sum()
    print(f"\n## {name}: {len(original):,} x {len(subset):,} rows")
    print(f"columns {original.shape[1]}, encoded width {featuriser.width}")
    print(f"gate best of {repeats} {seconds:.2f} s (median {median:.2f} s)", end="")
    print(f" = {seconds / floor:.2f} x floor ({floor:.2f} s, best of 4)")
    print("stages: " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()))
    coverage, k = metrics.get("feature_coverage"), metrics.get("feature_coverage_k")
    print(f"feature_coverage {coverage} with k={k}")
    if memory:
        peak = traced_peak(lambda: run_gate(original, subset, **options))
        ratio = peak / inputs
        print(f"peak traced {peak / 2**20:.1f} MiB = {ratio:.2f} x inputs", end="")
        print(f" ({inputs / 2**20:.1f} MiB)")
        encoded = points.nbytes + subset_points.nbytes
        print(f"  = {peak / encoded:.2f} x the encoded float32 arrays", end="")
        print(f" ({encoded / 2**20:.1f} MiB)")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"process max RSS {rss:.2f} GiB")
    if naive:
        naive_time = naive_seconds(points, subset_points, int(k))
        print(f"naive scikit-learn path {naive_time:.2f} s", end="")
        print(f" = {naive_time / seconds:.2f} x gate")
    return seconds


def scaling() -> None:
    """Fit the exponent of time against original rows, subset fixed at 5,000.

    Each size counts the best of two gate runs.
    """
    sizes = [10_000, 20_000, 50_000, 100_000]
    gate, floor = [], []
    for rows in sizes:
        original, subset = float_tables(rows, 5_000)
        seconds = min(run_gate(original, subset)[0] for _ in range(2))
        points = original.to_numpy(dtype=np.float32)
        gate.append(seconds)
        floor.append(floor_seconds(points, subset.to_numpy(dtype=np.float32)))
        print(f"{rows:>7,} x 5,000 rows: gate {seconds:.2f} s", end="")
        print(f", floor {floor[-1]:.2f} s")
    logs = np.log(sizes)
    slope = np.polyfit(logs, np.log(gate), 1)[0]
    floor_slope = np.polyfit(logs, np.log(floor), 1)[0]
    print(f"exponent 10k..100k rows: gate {slope:.2f}, floor {floor_slope:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--case",
        choices=["float", "uniform", "tabular", "scaling", "huge"],
        default="float",
    )
    parser.add_argument("--no-naive", action="store_true", help="skip the naive path")
    args = parser.parse_args()
    if args.case == "float":
        original, subset = float_tables(100_000, 20_000)
        report_case("float32 features", original, subset, naive=not args.no_naive)
    elif args.case == "uniform":
        original, subset = float_tables(100_000, 20_000, clustered=False)
        report_case(
            "float32 features, uniform", original, subset, naive=not args.no_naive
        )
    elif args.case == "tabular":
        table = wine_table(50_000)
        buffer = io.StringIO()
        table.to_csv(buffer, index=False)
        original = pd.read_csv(io.StringIO(buffer.getvalue()))
        subset = original.sample(10_000, random_state=SEED).reset_index(drop=True)
        report_case(
            "tabular CSV (wine resampled)",
            original,
            subset,
            naive=not args.no_naive,
            scenario_columns=["cultivar", "alcohol_band", "region"],
        )
    elif args.case == "scaling":
        scaling()
    else:
        original, subset = float_tables(1_000_000, 50_000)
        report_case(
            "float32 features, large",
            original,
            subset,
            naive=False,
            memory=False,
            repeats=1,
        )


if __name__ == "__main__":
    main()
