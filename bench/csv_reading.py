"""CPU time of ``read_table`` on CSV against a bare ``pandas.read_csv`` call.

``read_table`` guesses the delimiter from the first 4 KiB, reads the header
row once more to reject duplicate names, and then calls ``pandas.read_csv``
with the C parser. This script writes a synthetic CSV table per delimiter
to a temporary directory and prints, for each, the best-of-``--repeats``
process CPU time of both readers and their ratio, measured in the same run.
A ratio near 1.0 means the added steps cost nothing measurable. It also prints
the CPU time of guessing the delimiter from 4 KiB and 16 KiB of the comma file.

    .venv/bin/python bench/csv_reading.py --rows 200000 --repeats 3
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.evaluation.readers import _sniff_delimiter, read_table  # noqa: E402


def write_table(path: Path, rows: int, delimiter: str) -> None:
    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        {
            "x": rng.normal(size=rows),
            "y": rng.uniform(size=rows),
            "n": rng.integers(0, 10_000, size=rows),
            "kind": rng.choice(["alpha", "beta", "gamma", "delta"], size=rows),
            "note": rng.choice(["plain", "with space", "a, b"], size=rows),
        }
    )
    table.to_csv(path, index=False, sep=delimiter)


def best_cpu_seconds(read: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        read()
        best = min(best, time.process_time() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    print(f"rows={args.rows} repeats={args.repeats}")
    print("delimiter  bytes       pandas_s  read_table_s  ratio")
    with tempfile.TemporaryDirectory() as folder:
        for name, delimiter in (("comma", ","), ("semicolon", ";"), ("tab", "\t")):
            path = Path(folder) / f"{name}.csv"
            write_table(path, args.rows, delimiter)

            def bare(path: Path = path, delimiter: str = delimiter) -> object:
                return pd.read_csv(
                    path, sep=delimiter, encoding="utf-8-sig", low_memory=False
                )

            def full(path: Path = path) -> object:
                return read_table(path, field="original", filename="t.csv")

            bare_s = best_cpu_seconds(bare, args.repeats)
            full_s = best_cpu_seconds(full, args.repeats)
            print(
                f"{name:<10} {path.stat().st_size:<11,} {bare_s:<9.3f} "
                f"{full_s:<13.3f} {full_s / bare_s:.2f}"
            )
        head = (Path(folder) / "comma.csv").read_bytes()[:16384]
        for size in (4096, 16384):
            sample = head[:size]
            seconds = best_cpu_seconds(lambda s=sample: _sniff_delimiter(s), 20)
            print(f"delimiter guess from {size // 1024} KiB: {1000 * seconds:.1f} ms")


if __name__ == "__main__":
    main()
