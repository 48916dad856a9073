"""Handlers of the ``distilgate`` subcommands."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from app.cli import local
from app.cli.bars import StageBars
from app.cli.config_file import load_repo_config, merged_policy
from app.cli.folders import zip_folders
from app.cli.outputs import append_output, write_output
from app.cli.remote import Client
from app.cli.render import print_result
from app.config import get_settings
from app.errors import InputError
from app.observability.logs import configure_logging
from app.reports.junit import render_junit
from app.reports.markdown import render_markdown
from app.schemas import GateResult

logger = logging.getLogger(__name__)

EXIT_BY_STATUS = {"passed": 0, "waived": 0, "failed": 1, "error": 2, "inconclusive": 3}


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.api.app import create_app

    if not get_settings().migrate_on_start:
        _check_schema()
    configure_logging(get_settings())
    uvicorn.run(create_app(), host=args.host, port=args.port, log_config=None)
    return 0


def _check_schema() -> None:
    """Raise before uvicorn starts when the schema is not current.

    A failed application startup makes uvicorn exit with code 3, which means
    inconclusive here, so the check runs first and fails with exit code 2.
    """
    from app.storage.db import Database

    database = Database(get_settings())
    try:
        database.check_schema()
    finally:
        database.dispose()


def check(args: argparse.Namespace) -> int:
    """Run a gate locally or on a server, print it, and exit by its status."""
    config = load_repo_config(args.config)
    policy = merged_policy(config, args.policy)
    files, form = _request_parts(args, config.settings)
    server = args.server or config.settings.get("server")
    if server:
        result = _check_remote(server, args, files, form, policy)
    else:
        result = local.submit(get_settings(), args.kind, files, form, policy)
    # Files first: a closed stdout must not keep them from being written.
    write_files(result, args, server)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_result(result)
    return EXIT_BY_STATUS.get(result["status"], 2)


def write_files(
    result: dict[str, Any], args: argparse.Namespace, server: str | None
) -> None:
    """Write the JUnit, Markdown and key=value files named in ``args``."""
    gate = GateResult.model_validate(result)
    url = f"{server.rstrip('/')}/api/v1/gates/{gate.id}" if server else None
    if args.junit is not None:
        write_output(args.junit, render_junit(gate), "--junit")
    if args.markdown is not None:
        markdown = render_markdown(gate, max_bytes=args.max_bytes, url=url)
        write_output(args.markdown, markdown, "--markdown")
    if args.outputs is not None:
        lines = f"status={gate.status}\ngate-id={gate.id}\nurl={url or ''}\n"
        append_output(args.outputs, lines, "--outputs")


def _check_remote(
    server: str,
    args: argparse.Namespace,
    files: dict[str, Path],
    form: dict[str, str],
    policy: str | None,
) -> dict[str, Any]:
    client = Client(server, _token(args))
    started = time.monotonic()
    try:
        result = client.submit(args.kind, files, form, policy, wait_s=args.wait_timeout)
        with StageBars() as bars:
            return client.wait(
                result,
                timeout_s=args.wait_timeout,
                progress=lambda current: bars.show(current.get("progress")),
                started=started,
            )
    finally:
        client.close()


def report(args: argparse.Namespace) -> int:
    """Print or save a stored gate's report from a server."""
    config = load_repo_config(None)
    server = args.server or config.settings.get("server")
    if not server:
        raise InputError(
            "report needs --server (or server in distilgate.toml)", field="server"
        )
    client = Client(server, _token(args))
    try:
        path = {"md": "report.md", "junit": "junit.xml", "json": ""}[args.format]
        url = f"/api/v1/gates/{args.gate_id}" + (f"/{path}" if path else "")
        params = {"max_bytes": args.max_bytes} if args.format == "md" else None
        text = client.fetch(url, params).text
    finally:
        client.close()
    if args.output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        args.output.write_text(text, encoding="utf-8")
    return 0


def db_upgrade(_args: argparse.Namespace) -> int:
    from app.storage.db import Database

    database = Database(get_settings())
    database.migrate()
    database.dispose()
    print("database schema is up to date")
    return 0


def _token(args: argparse.Namespace) -> str | None:
    if args.token:
        return str(args.token)
    configured = get_settings().token
    return configured.get_secret_value() if configured else None


def _request_parts(
    args: argparse.Namespace, settings: dict[str, str]
) -> tuple[dict[str, Path], dict[str, str]]:
    if args.kind == "model":
        files = {
            "teacher": args.teacher,
            "student": args.student,
            "dataset": args.dataset,
        }
        form = {"label_column": args.label_column}
    else:
        files = {
            field: path
            for field, path in (
                ("original", args.original),
                ("subset", args.subset),
                ("original_coverage", args.original_coverage),
                ("subset_coverage", args.subset_coverage),
            )
            if path is not None
        }
        form = {
            "scenario_columns": args.scenario_columns,
            "label_column": args.label_column,
        }
    files = zip_folders(files)
    form |= {
        "project": args.project or settings.get("project") or "default",
        "branch": args.branch or settings.get("branch"),
        "commit": args.commit,
    }
    for field, path in files.items():
        if not path.is_file():
            option = "--" + field.replace("_", "-")
            raise InputError(
                f"{option} {str(path)!r} is not a readable file",
                field=field,
                value=str(path),
            )
    return files, {key: value for key, value in form.items() if value is not None}
