"""The ``distilgate distill`` command: choose a subset that passes the data gate.

It runs in this process and records the result in the local database, or with
``--server`` posts to ``POST /api/v1/distill`` and downloads the subset. Either
way it writes the subset to ``--out`` and exits by the gate's verdict.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path, PurePosixPath
from typing import Any

from app.auth import ANONYMOUS_ADMIN
from app.cli.bars import StageBars
from app.cli.commands import EXIT_BY_STATUS, write_files
from app.cli.config_file import RepoConfig, load_repo_config, policy_overrides
from app.cli.local import NO_LIMIT_S
from app.cli.options import add_result_options
from app.cli.outputs import copy_output, write_output
from app.cli.remote import Client
from app.cli.render import print_result
from app.config import get_settings
from app.distilling import distill_request, subset_file
from app.errors import InputError
from app.gates import Upload, validate_meta
from app.runtime import Runtime

OUT_FORMATS = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
}


def add_parser(subcommands: Any) -> None:
    """Add the ``distill`` subcommand and its options."""
    parser = subcommands.add_parser(
        "distill",
        help="choose a subset of a dataset that passes the data gate",
        description="Choose --size rows or --fraction of the rows of --original "
        "that keep its scenarios and feature space, write them to --out and gate "
        "them. Exit codes: 0 passed, 1 failed, 2 error, 3 inconclusive.",
    )
    parser.add_argument("--original", type=Path, required=True, help="dataset file")

    budget = parser.add_mutually_exclusive_group(required=True)
    budget.add_argument("--size", type=int, help="rows to choose")
    budget.add_argument("--fraction", type=float, help="share of rows, such as 0.2")

    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="subset file to write; .csv, .jsonl or .parquet sets its format",
    )
    parser.add_argument(
        "--scenario-column",
        action="append",
        default=[],
        metavar="COLUMN",
        help="column whose value tuples are scenarios (repeat, or separate by commas)",
    )

    parser.add_argument(
        "--label-column", default=None, help="label column, one more scenario column"
    )
    parser.add_argument(
        "--required",
        action="append",
        default=[],
        metavar="COLUMN=VALUE",
        help="scenario the subset must keep rows of (repeat for more)",
    )
    parser.add_argument(
        "--policy",
        default=None,
        help="JSON file of threshold overrides, or the JSON object itself",
    )
    parser.add_argument(
        "--result", type=Path, default=None, help="also write the result as JSON"
    )

    _add_shared_options(parser)
    parser.set_defaults(handler=run)


def _add_shared_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="settings file (default: ./distilgate.toml when it exists)",
    )
    parser.add_argument(
        "--server",
        default=None,
        help="DistilGate URL; without it the distillation runs in this process "
        "and records to the local database",
    )
    parser.add_argument(
        "--token",
        default=None,
        help="API token (default: the DISTILGATE_TOKEN environment variable)",
    )
    add_result_options(parser)


def run(args: argparse.Namespace) -> int:
    """Distil the original, write the subset and result files, exit by verdict."""
    config = load_repo_config(args.config)
    policy = _policy_text(config, args.policy, args.required)
    if not args.original.is_file():
        raise InputError(
            f"--original {str(args.original)!r} is not a readable file",
            field="original",
            value=str(args.original),
        )

    request = distill_request(
        size=args.size,
        fraction=args.fraction,
        scenario_columns=_columns(args.scenario_column),
        label_column=args.label_column,
        output_format=_out_format(args.out),
    )
    form = {
        "project": args.project or config.settings.get("project") or "default",
        "branch": args.branch or config.settings.get("branch"),
        "commit": args.commit,
    }

    server = args.server or config.settings.get("server")
    if server:
        result = _run_remote(server, args, request, form, policy)
    else:
        result = _run_local(args, request, form, policy)

    # Files first: a closed stdout must not keep them from being written.
    if args.result is not None:
        write_output(args.result, json.dumps(result, indent=2) + "\n", "--result")
    write_files(result, args, server)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_result(result)
    return EXIT_BY_STATUS.get(result["status"], 2)


def _run_local(
    args: argparse.Namespace,
    request: dict[str, Any],
    form: dict[str, str | None],
    policy: str | None,
) -> dict[str, Any]:
    runtime = Runtime(get_settings())
    try:
        runtime.database.migrate()
        meta = validate_meta(form["project"], form["branch"], form["commit"])
        with args.original.open("rb") as stream:
            upload = Upload(
                field="original", filename=args.original.name, stream=stream
            )
            with StageBars() as bars:
                submitted = runtime.submit_distill(
                    upload,
                    meta,
                    request,
                    policy,
                    watch=lambda _, progress: bars.show(progress),
                )
                result = runtime.wait(submitted.id, ANONYMOUS_ADMIN, NO_LIMIT_S)
        if "distill" in result.details:
            found = subset_file(result, runtime.store)
            copy_output(found.path, args.out, "--out")
        return result.model_dump(mode="json")
    finally:
        runtime.stop()


def _run_remote(
    server: str,
    args: argparse.Namespace,
    request: dict[str, Any],
    form: dict[str, str | None],
    policy: str | None,
) -> dict[str, Any]:
    fields = {
        "size": request["size"],
        "fraction": request["fraction"],
        "scenario_columns": ",".join(request["scenario_columns"]) or None,
        "label_column": request["label_column"],
        "format": request["format"],
        **form,
    }
    data = {key: str(value) for key, value in fields.items() if value is not None}
    client = Client(server, _token(args))
    started = time.monotonic()
    try:
        submitted = client.post_files(
            "/api/v1/distill",
            {"original": args.original},
            data,
            policy,
            wait_s=args.wait_timeout,
        )
        with StageBars() as bars:
            result = client.wait(
                submitted,
                timeout_s=args.wait_timeout,
                progress=lambda current: bars.show(current.get("progress")),
                started=started,
            )
        if "distill" in (result.get("details") or {}):
            subset = client.fetch(f"/api/v1/distill/{result['id']}/subset")
            write_output(args.out, subset.content, "--out")
        return result
    finally:
        client.close()


def _token(args: argparse.Namespace) -> str | None:
    if args.token:
        return str(args.token)
    configured = get_settings().token
    return configured.get_secret_value() if configured else None


def _columns(values: list[str]) -> list[str]:
    """Flatten repeated and comma-separated column names, dropping blanks."""
    return [
        name.strip() for value in values for name in value.split(",") if name.strip()
    ]


def _out_format(path: Path) -> str:
    suffix = PurePosixPath(path.name).suffix.lower()
    if suffix not in OUT_FORMATS:
        raise InputError(
            f"--out {str(path)!r} has the suffix {suffix!r}, which sets no subset "
            f"format; end the file name with {', '.join(OUT_FORMATS)}",
            field="out",
            value=str(path),
        )
    return OUT_FORMATS[suffix]


def _policy_text(
    config: RepoConfig, policy: str | None, required: list[str]
) -> str | None:
    """Merge the config's policy, --policy (a file or inline JSON) and --required."""
    overrides = policy_overrides(config, policy)
    if required:
        rules = list(overrides.get("required_scenarios") or [])
        overrides["required_scenarios"] = rules + [_rule(item) for item in required]
    return json.dumps(overrides) if overrides else None


def _rule(item: str) -> dict[str, str]:
    column, separator, value = item.partition("=")
    if not separator or not column.strip():
        raise InputError(
            f"--required {item!r} is not COLUMN=VALUE; write for example "
            "--required 'status=failed'",
            field="required",
            value=item,
        )
    return {column.strip(): value}
