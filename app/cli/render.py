"""Readable output of a gate result in a terminal."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

_STYLES = {
    "passed": "green",
    "waived": "green",
    "failed": "red",
    "error": "red",
    "warning": "yellow",
    "inconclusive": "yellow",
    "queued": "cyan",
    "running": "cyan",
    "skipped": "dim",
}
# Used for a status this version does not know, such as one added by a newer server.
DEFAULT_STYLE = "bold"


def styled_status(status: str, *, upper: bool = False) -> Text:
    """Return ``status`` as text in its style; the text is never parsed as markup."""
    return Text(status.upper() if upper else status, style=style_of(status))


def style_of(status: str) -> str:
    """Return the terminal style of ``status``, or the default for unknown ones."""
    return _STYLES.get(status, DEFAULT_STYLE)


class _ResultConsole(Console):
    """A console whose closed stdout raises ``BrokenPipeError``.

    rich exits with code 1 instead, the code of a failed verdict, so the
    command line could not tell the two apart.
    """

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


def print_result(result: dict[str, Any], console: Console | None = None) -> None:
    """Print the verdict line and a table of checks."""
    console = console or _ResultConsole(highlight=False)
    status = str(result["status"])
    where = result["project"] + (f"@{result['branch']}" if result.get("branch") else "")
    verdict = Text(f"{result['kind']} gate ")
    verdict.append_text(styled_status(status, upper=True))
    verdict.append(f"  id {result['id']}  project {where}")
    console.print(verdict)
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
            f"({escape(str(previous['id']))}) was {escape(str(previous['status']))}"
        )
    if result.get("error"):
        console.print(f"[red]error:[/red] {escape(str(result['error']))}")
    _print_checks(result["checks"], console)


def _print_checks(checks: list[dict[str, Any]], console: Console) -> None:
    if not checks:
        return
    table = Table("check", "status", "message", show_lines=False)
    for check in checks:
        name = escape(check["name"]) + (" (advisory)" if check["advisory"] else "")
        table.add_row(
            name, styled_status(str(check["status"])), escape(str(check["message"]))
        )
    console.print(table)
