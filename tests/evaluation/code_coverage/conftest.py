"""Coverage reports written by real coverage.py runs of the shop project."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.evaluation.code_coverage.shop_project import (
    run_coverage,
    write_orders,
    write_project,
)

Reports = dict[str, dict[str, Path]]


@pytest.fixture(scope="session")
def shop_reports(tmp_path_factory: pytest.TempPathFactory) -> Reports:
    """Reports of the shop run over all orders and over a subset without failures.

    Keyed by run (``original``, ``subset``), then by format (``xml``, ``json``,
    ``lcov``).
    """
    root = tmp_path_factory.mktemp("shop")
    write_project(root / "project")
    write_orders(root / "all.csv")
    write_orders(root / "subset.csv", without_outcome="failed")
    return {
        "original": run_coverage(root / "project", root / "all.csv", root / "original"),
        "subset": run_coverage(root / "project", root / "subset.csv", root / "subset"),
    }


@pytest.fixture(scope="session")
def checkout_reports(tmp_path_factory: pytest.TempPathFactory) -> Reports:
    """Reports of the same two runs made in two checkouts, from their parent.

    The reports name the files ``checkout-a/shop/...`` and ``checkout-b/shop/...``.
    """
    root = tmp_path_factory.mktemp("checkouts")
    write_project(root / "checkout-a")
    write_project(root / "checkout-b")
    write_orders(root / "all.csv")
    write_orders(root / "subset.csv", without_outcome="failed")
    return {
        "original": run_coverage(
            root / "checkout-a", root / "all.csv", root / "original", cwd=root
        ),
        "subset": run_coverage(
            root / "checkout-b", root / "subset.csv", root / "subset", cwd=root
        ),
    }
