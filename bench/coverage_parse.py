"""Parse speed and peak memory of the coverage report readers, by report size.

Generates synthetic Cobertura, JaCoCo and lcov reports of increasing size in a
temporary directory and parses each in a fresh child process. For each it prints
the throughput and the peak resident memory the parse added. For each format it
prints the exponent ``b`` of ``time ~ size**b`` fitted over the sizes (1.0 is
linear). Throughput, ratios and
the exponent use the child's CPU time, which other load on the machine does not
inflate; wall time is printed too. Ratios are relative to the smallest size of the
same format, measured in the same run.

    .venv/bin/python bench/coverage_parse.py --sizes 10,50,200
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MB = 1024 * 1024
LINES_PER_FILE = 300


def cobertura_parts() -> Iterator[str]:
    """Yield a coverage.py-style Cobertura report, one class at a time."""
    yield '<?xml version="1.0" ?>\n<coverage version="7.18.0" line-rate="0.5">\n'
    yield "\t<sources>\n\t\t<source>/home/ci/work/repo/src</source>\n\t</sources>\n"
    yield '\t<packages>\n\t\t<package name="app" line-rate="0.5">\n\t\t\t<classes>\n'
    for index in _count():
        rows = []
        for line in range(1, LINES_PER_FILE + 1):
            if line % 10 == 0:
                rows.append(
                    f'\t\t\t\t\t\t<line number="{line}" hits="{line % 3}" '
                    f'branch="true" condition-coverage="50% (1/2)" '
                    f'missing-branches="{line + 2}"/>\n'
                )
            else:
                rows.append(f'\t\t\t\t\t\t<line number="{line}" hits="{line % 3}"/>\n')
        yield (
            f'\t\t\t\t<class name="m{index}.py" filename="app/m{index}.py" '
            'complexity="0" line-rate="0.5" branch-rate="0.5">\n'
            "\t\t\t\t\t<methods/>\n\t\t\t\t\t<lines>\n"
            + "".join(rows)
            + "\t\t\t\t\t</lines>\n\t\t\t\t</class>\n"
        )


def cobertura_end() -> str:
    return "\t\t\t</classes>\n\t\t</package>\n\t</packages>\n</coverage>\n"


def jacoco_parts() -> Iterator[str]:
    """Yield a JaCoCo report, one package with one class and source file at a time."""
    yield (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><!DOCTYPE report '
        'PUBLIC "-//JACOCO//DTD Report 1.1//EN" "report.dtd"><report name="bench">'
    )
    counters = (
        '<counter type="INSTRUCTION" missed="10" covered="20"/>'
        '<counter type="BRANCH" missed="1" covered="1"/>'
        '<counter type="LINE" missed="3" covered="7"/>'
    )
    for index in _count():
        rows = []
        for line in range(1, LINES_PER_FILE + 1):
            missed, covered = (0, 3) if line % 3 else (3, 0)
            branches = 'mb="1" cb="1"' if line % 10 == 0 else 'mb="0" cb="0"'
            rows.append(f'<line nr="{line}" mi="{missed}" ci="{covered}" {branches}/>')
        yield (
            f'<package name="org/app/p{index}"><class name="org/app/p{index}/C" '
            f'sourcefilename="C.java"><method name="run" desc="()V" line="1">'
            f"{counters}</method>{counters}</class>"
            f'<sourcefile name="C.java">{"".join(rows)}{counters}</sourcefile>'
            f"{counters}</package>"
        )


def jacoco_end() -> str:
    return "</report>\n"


def lcov_parts() -> Iterator[str]:
    """Yield a geninfo-style lcov tracefile, one record at a time."""
    for index in _count():
        rows = [f"TN:\nSF:/home/ci/work/repo/src/m{index}.c\nFN:1,run\nFNDA:1,run\n"]
        for line in range(1, LINES_PER_FILE + 1):
            rows.append(f"DA:{line},{line % 3}\n")
            if line % 10 == 0:
                rows.append(f"BRDA:{line},0,0,1\nBRDA:{line},0,1,-\n")
        rows.append(f"LF:{LINES_PER_FILE}\nLH:200\nend_of_record\n")
        yield "".join(rows)


GENERATORS: dict[str, tuple[Callable[[], Iterator[str]], Callable[[], str]]] = {
    "cobertura": (cobertura_parts, cobertura_end),
    "jacoco": (jacoco_parts, jacoco_end),
    "lcov": (lcov_parts, lambda: ""),
}


def _count() -> Iterator[int]:
    index = 0
    while True:
        yield index
        index += 1


def generate(fmt: str, path: Path, megabytes: int) -> int:
    """Write a report of at least ``megabytes`` MB and return its size in bytes."""
    parts, end = GENERATORS[fmt]
    written = 0
    with path.open("w") as handle:
        for part in parts():
            handle.write(part)
            written += len(part)
            if written >= megabytes * MB:
                break
        handle.write(end())
    return path.stat().st_size


def parse_in_child(path: Path, trace: bool) -> dict[str, float]:
    command = [sys.executable, __file__, "--parse", str(path)]
    if trace:
        command.append("--tracemalloc")
    output = subprocess.run(command, check=True, capture_output=True, text=True)
    result: dict[str, float] = json.loads(output.stdout)
    return result


def parse_here(path: Path, trace: bool) -> dict[str, float]:
    """Parse one report and return its time, lines and memory figures."""
    from app.evaluation.code_coverage import read_coverage

    baseline_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if trace:
        tracemalloc.start()
    started, started_cpu = time.perf_counter(), time.process_time()
    report = read_coverage(path, field="bench")
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - started_cpu
    traced_peak = tracemalloc.get_traced_memory()[1] if trace else 0
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "lines": report.lines_measured(),
        "rss_added_mb": (peak_kb - baseline_kb) / 1024,
        "traced_peak_mb": traced_peak / MB,
    }


def exponent(sizes: list[float], seconds: list[float]) -> float:
    """Return the least-squares slope of log(seconds) against log(size)."""
    xs = [math.log(s) for s in sizes]
    ys = [math.log(t) for t in seconds]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    numerator = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    denominator = sum((x - mean_x) ** 2 for x in xs)
    return numerator / denominator


def run(formats: list[str], sizes: list[int], trace: bool) -> None:
    print(
        f"{'format':<10} {'MB':>7} {'lines':>10} {'wall s':>7} {'CPU s':>7} "
        f"{'MB/s':>6} "
        f"{'RSS+ MB':>8} {'RSS/size':>8} {'traced MB':>9} {'size x':>7} {'time x':>7}"
    )
    with tempfile.TemporaryDirectory() as scratch:
        for fmt in formats:
            measured: list[tuple[float, float]] = []
            for megabytes in sizes:
                path = Path(scratch) / f"{fmt}-{megabytes}"
                size_mb = generate(fmt, path, megabytes) / MB
                result = parse_in_child(path, trace)
                path.unlink()
                cpu = result["cpu_seconds"]
                measured.append((size_mb, cpu))
                size_ratio = size_mb / measured[0][0]
                time_ratio = cpu / measured[0][1]
                print(
                    f"{fmt:<10} {size_mb:>7.1f} {int(result['lines']):>10,} "
                    f"{result['seconds']:>7.2f} {cpu:>7.2f} {size_mb / cpu:>6.1f} "
                    f"{result['rss_added_mb']:>8.1f} "
                    f"{result['rss_added_mb'] / size_mb:>8.3f} "
                    f"{result['traced_peak_mb']:>9.1f} "
                    f"{size_ratio:>7.1f} {time_ratio:>7.1f}",
                    flush=True,
                )
            if len(measured) > 1:
                slope = exponent([m[0] for m in measured], [m[1] for m in measured])
                print(f"{fmt:<10} CPU time ~ size^{slope:.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,50,200", help="report sizes in MB")
    parser.add_argument("--formats", default=",".join(GENERATORS))
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="also record the peak of Python allocations (parsing runs slower)",
    )
    parser.add_argument("--parse", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.parse is not None:
        print(json.dumps(parse_here(args.parse, args.tracemalloc)))
        return
    sizes = [int(size) for size in args.sizes.split(",")]
    run(args.formats.split(","), sizes, args.tracemalloc)


if __name__ == "__main__":
    main()
