"""Readable output of a gate result in a terminal."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

_STYLES = {
    "passed": "green",
    "failed": "red",
    "warning": "yellow",
    "skipped": "dim",
    "error": "red",
}


def print_result(result: dict[str, Any], console: Console | None = None) -> None:
    """Print the verdict line and a table of checks."""
    console = console or Console(highlight=False)
    status = result["status"]
    style = _STYLES.get(status, "")
    where = result["project"] + (f"@{result['branch']}" if result.get("branch") else "")
    console.print(
        f"{result['kind']} gate [{style}]{status.upper()}[/{style}]  "
        f"id {result['id']}  project {escape(where)}"
    )
    waiver = result.get("waiver")
    if waiver:
        console.print(
            f"waived until {escape(str(waiver['expires_at']))} by "
            f"{escape(str(waiver['waived_by']))}: {escape(str(waiver['reason']))}"
        )
    if result.get("verdict_changed"):
        previous = result["comparison"]["previous_run"]
        console.print(
            f"[yellow]verdict changed[/yellow]: the previous run of this commit "
            f"({previous['id']}) was {previous['status']}"
        )
    if result.get("error"):
        console.print(f"[red]error:[/red] {escape(result['error'])}")
    table = Table("check", "status", "message", show_lines=False)
    for check in result["checks"]:
        check_style = _STYLES.get(check["status"], "")
        name = escape(check["name"]) + (" (advisory)" if check["advisory"] else "")
        table.add_row(
            name,
            f"[{check_style}]{check['status']}[/{check_style}]",
            escape(check["message"]),
        )
    if result["checks"]:
        console.print(table)
