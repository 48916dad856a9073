"""Entry point of ``distilgate``: argument parsing and exit codes.

Exit codes, the same in every DistilGate client: 0 the gate passed (or its
failure is waived), 1 it failed, 2 an error (bad input, a usage error, an
evaluation error or an unreachable server), 3 inconclusive.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from app import __version__
from app.cli import commands, distill, worker
from app.cli.options import add_result_options
from app.config import get_settings
from app.errors import DistilGateError
from app.observability.logs import configure_logging

logger = logging.getLogger(__name__)

EXIT_ERROR = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    try:
        parser = build_parser()
    except ValidationError as exc:
        for line in _setting_errors(exc):
            print(f"error: {line}", file=sys.stderr)
        return EXIT_ERROR
    args = parser.parse_args(argv)
    configure_logging(get_settings(), level=logging.WARNING, timestamps=False)
    try:
        return int(args.handler(args))
    except DistilGateError as exc:
        where = f"{exc.field}: " if exc.field else ""
        print(f"error: {where}{exc.message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        # The reader of stdout went away (for example `| head`). Pointing stdout
        # at /dev/null keeps the flush at exit from failing a second time.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print("error: stdout was closed before the result was printed", file=sys.stderr)
        return EXIT_ERROR
    # Anything else, such as an unreachable database, is an error for CI (exit 2),
    # never a verdict; the traceback is logged at debug level.
    except Exception as exc:
        logger.debug("command failed", exc_info=exc)
        message = " ".join(str(exc).split())[:500]
        print(f"error: {type(exc).__name__}: {message}", file=sys.stderr)
        return EXIT_ERROR


def _setting_errors(exc: ValidationError) -> list[str]:
    """Name each invalid ``DISTILGATE_*`` variable with its value and the reason."""
    lines = []
    for error in exc.errors():
        name = "DISTILGATE_" + "_".join(str(part) for part in error["loc"]).upper()
        lines.append(f"{name}={error.get('input')!r} is invalid: {error['msg']}")
    return lines


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="distilgate",
        description="Quality gate for distilled datasets and distilled models.",
        epilog="Exit codes: 0 passed or waived, 1 failed, 2 error, 3 inconclusive.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    subcommands = parser.add_subparsers(dest="command", required=True)
    _add_serve(subcommands)
    _add_check(subcommands)
    distill.add_parser(subcommands)
    _add_report(subcommands)
    _add_db(subcommands)
    worker.add_parser(subcommands)
    return parser


def _add_serve(subcommands: Any) -> None:
    settings = get_settings()
    serve = subcommands.add_parser("serve", help="start the REST service")
    serve.add_argument(
        "--host",
        default=settings.host,
        help=f"address to bind (default {settings.host})",
    )
    serve.add_argument(
        "--port",
        type=int,
        default=settings.port,
        help=f"port to bind (default {settings.port})",
    )
    serve.set_defaults(handler=commands.serve)


def _add_check(subcommands: Any) -> None:
    check = subcommands.add_parser("check", help="run a gate and print its checks")
    kinds = check.add_subparsers(dest="kind", required=True)
    model = kinds.add_parser("model", help="gate a student model against its teacher")
    model.add_argument("--teacher", type=Path, required=True, help="teacher ONNX file")
    model.add_argument("--student", type=Path, required=True, help="student ONNX file")
    model.add_argument(
        "--dataset",
        type=Path,
        required=True,
        help=".npz with X and y, or CSV/Parquet/JSONL with a label column",
    )
    model.add_argument(
        "--label-column",
        default="label",
        help="label column of a tabular dataset (default: label)",
    )
    data = kinds.add_parser("data", help="gate a distilled subset against its original")
    data.add_argument(
        "--original",
        type=Path,
        default=None,
        help="original dataset: a table, a zip of images or a folder of images",
    )
    data.add_argument(
        "--subset",
        type=Path,
        default=None,
        help="distilled subset, in the same form as --original",
    )
    data.add_argument(
        "--original-coverage",
        type=Path,
        default=None,
        help="coverage report of the test run on the original "
        "(Cobertura, JaCoCo, lcov or coverage.py JSON)",
    )
    data.add_argument(
        "--subset-coverage",
        type=Path,
        default=None,
        help="coverage report of the test run on the subset",
    )
    data.add_argument(
        "--scenario-columns",
        default=None,
        help="comma-separated columns whose value tuples are scenarios",
    )
    data.add_argument(
        "--label-column",
        default=None,
        help="label column, counted as one more scenario column",
    )
    for sub in (model, data):
        _add_common_check_options(sub)
        sub.set_defaults(handler=commands.check)


def _add_common_check_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--policy",
        default=None,
        help="JSON file of threshold overrides, or the JSON object itself",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="settings file (default: ./distilgate.toml when it exists)",
    )
    _add_server_options(parser)
    add_result_options(parser)


def _add_server_options(
    parser: argparse.ArgumentParser,
    server_help: str = "DistilGate URL; without it the gate runs in this process "
    "and records to the local database",
) -> None:
    parser.add_argument("--server", default=None, help=server_help)
    parser.add_argument(
        "--token",
        default=None,
        help="API token (default: the DISTILGATE_TOKEN environment variable)",
    )


def _add_report(subcommands: Any) -> None:
    report = subcommands.add_parser(
        "report", help="print a stored gate's report from a server"
    )
    report.add_argument("gate_id", help="id of the gate")
    report.add_argument(
        "--format",
        choices=("md", "junit", "json"),
        default="md",
        help="Markdown, JUnit XML or JSON (default md)",
    )
    report.add_argument(
        "--max-bytes",
        type=int,
        default=200_000,
        help="cut a Markdown report to this many bytes (default 200000)",
    )
    report.add_argument(
        "--output", type=Path, default=None, help="write to this file, not stdout"
    )
    _add_server_options(
        report, "DistilGate URL (default: server in distilgate.toml); required"
    )
    report.set_defaults(handler=commands.report)


def _add_db(subcommands: Any) -> None:
    database = subcommands.add_parser("db", help="manage the database schema")
    actions = database.add_subparsers(dest="action", required=True)
    upgrade = actions.add_parser("upgrade", help="apply pending migrations")
    upgrade.set_defaults(handler=commands.db_upgrade)


if __name__ == "__main__":
    sys.exit(main())
