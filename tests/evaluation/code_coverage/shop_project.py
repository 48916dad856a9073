"""A small Python project whose test script really runs under coverage.py.

``run_coverage`` writes the ``shop`` package and an order script into a directory,
runs ``coverage run --branch`` over a CSV of orders, and writes the Cobertura XML,
JSON and lcov reports of that run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PAYMENT = '''\
"""Settling one order's payment."""

def settle(order_id, amount, outcome):
    if amount <= 0:
        raise ValueError("amount must be positive")
    if outcome == "ok":
        return f"{order_id}: paid {amount}"
    if outcome == "failed":
        refund = amount
        message = f"{order_id}: declined, refund {refund}"
        return message
    if outcome == "timeout":
        return f"{order_id}: retry later"
    raise ValueError(f"unknown outcome {outcome!r}")
'''

# Lines of shop/payment.py that only the payment-failed scenario runs, and the
# branch that enters them.
FAILED_HANDLER_LINES = [9, 10, 11]
FAILED_HANDLER_ARC = "8->9"

CART = '''\
"""Cart totals with a bulk discount."""

def total(amount, items):
    if items >= 10:
        return amount * 0.9
    return amount
'''

RUN_ORDERS = """\
import csv
import sys

from shop.cart import total
from shop.payment import settle

with open(sys.argv[1], newline="") as handle:
    for row in csv.DictReader(handle):
        amount = total(int(row["amount"]), int(row["items"]))
        print(settle(row["order_id"], amount, row["outcome"]))
"""

ORDERS = [
    ("A1", 40, 1, "ok"),
    ("A2", 25, 12, "failed"),
    ("A3", 60, 3, "timeout"),
    ("A4", 15, 11, "ok"),
    ("A5", 80, 2, "failed"),
]
FORMATS = {"xml": "coverage.xml", "json": "coverage.json", "lcov": "coverage.info"}


def write_project(root: Path) -> None:
    """Write the shop package and the order script under ``root``."""
    package = root / "shop"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "payment.py").write_text(PAYMENT)
    (package / "cart.py").write_text(CART)
    (root / "run_orders.py").write_text(RUN_ORDERS)


def write_orders(path: Path, *, without_outcome: str | None = None) -> None:
    """Write the orders as CSV, leaving out those with ``without_outcome``."""
    lines = ["order_id,amount,items,outcome"]
    for order_id, amount, items, outcome in ORDERS:
        if outcome != without_outcome:
            lines.append(f"{order_id},{amount},{items},{outcome}")
    path.write_text("\n".join(lines) + "\n")


def run_coverage(
    project: Path, orders: Path, out: Path, *, cwd: Path | None = None
) -> dict[str, Path]:
    """Run the order script under coverage.py and return its reports by format.

    ``cwd`` is the directory coverage runs in (``project`` by default), which
    decides how the reports name the files.
    """
    out.mkdir(parents=True)
    workdir = cwd or project
    data_file = out / ".coverage"
    script = project / "run_orders.py"
    _coverage(
        workdir, "run", "--branch", f"--data-file={data_file}", str(script), str(orders)
    )
    reports = {}
    for fmt, name in FORMATS.items():
        target = out / name
        _coverage(workdir, fmt, f"--data-file={data_file}", "-o", str(target))
        reports[fmt] = target
    return reports


def _coverage(cwd: Path, *args: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE")}
    subprocess.run(
        [sys.executable, "-m", "coverage", *args],
        cwd=cwd,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
