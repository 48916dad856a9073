"""Entry point of ``distilgate``: argument parsing and exit codes.

Exit codes: 0 the gate passed, 1 it failed, 2 bad input, a usage error, an
evaluation error or an unreachable server.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app import __version__
from app.cli import local, remote
from app.cli.render import print_result
from app.config import get_settings
from app.errors import DistilGateError, InputError

logger = logging.getLogger(__name__)

EXIT_PASSED, EXIT_FAILED, EXIT_ERROR = 0, 1, 2
_EXIT_BY_STATUS = {"passed": EXIT_PASSED, "failed": EXIT_FAILED}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.handler(args))
    except DistilGateError as exc:
        where = f"{exc.field}: " if exc.field else ""
        print(f"error: {where}{exc.message}", file=sys.stderr)
        return EXIT_ERROR


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="distilgate",
        description="Quality gate for distilled datasets and distilled models.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _add_serve(commands)
    _add_check(commands)
    _add_db(commands)
    return parser


def _add_serve(commands: Any) -> None:
    settings = get_settings()
    serve = commands.add_parser("serve", help="start the REST service")
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
    serve.set_defaults(handler=_serve)


def _add_check(commands: Any) -> None:
    check = commands.add_parser("check", help="run a gate and print its checks")
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
    data.add_argument("--original", type=Path, required=True, help="original dataset")
    data.add_argument("--subset", type=Path, required=True, help="distilled subset")
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
        sub.set_defaults(handler=_check)


def _add_common_check_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--policy", type=Path, default=None, help="JSON file of threshold overrides"
    )
    parser.add_argument(
        "--server",
        default=None,
        help="DistilGate URL; without it the gate runs in this process "
        "and records to the local database",
    )
    parser.add_argument("--project", default="default", help="project name")
    parser.add_argument("--branch", default=None, help="branch name")
    parser.add_argument("--commit", default=None, help="commit id")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the result as JSON instead of a table",
    )


def _add_db(commands: Any) -> None:
    database = commands.add_parser("db", help="manage the database schema")
    actions = database.add_subparsers(dest="action", required=True)
    upgrade = actions.add_parser("upgrade", help="apply pending migrations")
    upgrade.set_defaults(handler=_db_upgrade)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.api.app import create_app

    logging.basicConfig(
        level=get_settings().log_level,
        force=True,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    uvicorn.run(create_app(), host=args.host, port=args.port, log_config=None)
    return EXIT_PASSED


def _check(args: argparse.Namespace) -> int:
    policy = _read_policy(args.policy)
    files, form = _request_parts(args)
    if args.server:
        result = remote.submit(args.server, args.kind, files, form, policy)
    else:
        result = local.submit(get_settings(), args.kind, files, form, policy)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_result(result)
    return _EXIT_BY_STATUS.get(result["status"], EXIT_ERROR)


def _request_parts(args: argparse.Namespace) -> tuple[dict[str, Path], dict[str, str]]:
    if args.kind == "model":
        files = {
            "teacher": args.teacher,
            "student": args.student,
            "dataset": args.dataset,
        }
        form = {"label_column": args.label_column}
    else:
        files = {"original": args.original, "subset": args.subset}
        form = {
            "scenario_columns": args.scenario_columns,
            "label_column": args.label_column,
        }
    form |= {"project": args.project, "branch": args.branch, "commit": args.commit}
    for field, path in files.items():
        if not path.is_file():
            raise InputError(
                f"--{field} {str(path)!r} is not a readable file",
                field=field,
                value=str(path),
            )
    return files, {key: value for key, value in form.items() if value is not None}


def _read_policy(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(
            f"--policy {str(path)!r} cannot be read: {exc}",
            field="policy",
            value=str(path),
        ) from None


def _db_upgrade(_args: argparse.Namespace) -> int:
    from app.storage.db import Database

    database = Database(get_settings())
    database.migrate()
    database.dispose()
    print("database schema is up to date")
    return EXIT_PASSED


if __name__ == "__main__":
    sys.exit(main())
