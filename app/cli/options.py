"""Command-line options that the gate and distillation commands share."""

from __future__ import annotations

import argparse
from pathlib import Path

from app.cli.remote import wait_timeout


def add_result_options(parser: argparse.ArgumentParser) -> None:
    """Add the gate's metadata, the server wait and the result file options."""
    parser.add_argument(
        "--project", default=None, help="project name (default: default)"
    )
    parser.add_argument("--branch", default=None, help="branch name")
    parser.add_argument("--commit", default=None, help="commit id")
    parser.add_argument(
        "--wait-timeout",
        type=wait_timeout,
        default=3600.0,
        help="seconds to wait for a server's verdict (default 3600)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the result as JSON, not a table"
    )
    parser.add_argument(
        "--junit", type=Path, default=None, help="also write the result as JUnit XML"
    )
    parser.add_argument(
        "--markdown",
        type=Path,
        default=None,
        help="also write the Markdown report (cut to --max-bytes)",
    )
    parser.add_argument(
        "--max-bytes",
        type=int,
        default=200_000,
        help="largest Markdown report in bytes (default 200000)",
    )
    parser.add_argument(
        "--outputs",
        type=Path,
        default=None,
        help="append status, gate-id and url as key=value lines "
        "(the format of $GITHUB_OUTPUT)",
    )
