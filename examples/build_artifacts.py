"""Build the example models, data sets and manifest from scikit-learn's digits.

Usage: python examples/build_artifacts.py [--out examples/out] [--quick] [--reuse]

Exits 0 when the artifacts are built and give the verdicts the demo expects,
1 when they are built but one verdict would differ.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

EXAMPLES_DIR = Path(__file__).resolve().parent
# Python puts examples/ on sys.path when this file runs as a script, but the
# package imports below need the repository root.
if str(EXAMPLES_DIR.parent) not in sys.path:
    sys.path.insert(0, str(EXAMPLES_DIR.parent))

from examples.artifacts import build_all, outcome_problems  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=EXAMPLES_DIR / "out",
        help="directory the artifacts are written to (default: examples/out)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="train the teacher for 5 epochs instead of 10 (same verdicts, faster)",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep artifacts already in --out when their manifest still matches",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    started = time.perf_counter()
    paths = build_all(args.out, quick=args.quick, reuse=args.reuse)
    elapsed = time.perf_counter() - started
    manifest = json.loads(paths["manifest"].read_text())
    print_summary(manifest, args.out, elapsed)
    problems = outcome_problems(manifest)
    for problem in problems:
        print(f"unexpected outcome: {problem}", file=sys.stderr)
    return 1 if problems else 0


def print_summary(manifest: dict[str, Any], out: Path, elapsed: float) -> None:
    print(f"built {len(manifest['files'])} files in {out} ({elapsed:.1f} s)")
    for name, model in manifest["models"].items():
        line = f"  {name:13} {model['parameters']:>9,} params  "
        line += f"accuracy {model['accuracy']:.2%}"
        if "accuracy_loss" in model:
            line += f"  loss {model['accuracy_loss'] * 100:.2f} pp"
            line += f"  ratio {model['parameter_ratio']:.0f}:1"
        print(line)
    for name, table in manifest["data"].items():
        print(
            f"  {name:13} {table['rows']:>5} rows  "
            f"{table['scenario_tuples']} scenario tuples  "
            f"{table['unusual_rows']} unusual rows"
        )


if __name__ == "__main__":
    sys.exit(main())
