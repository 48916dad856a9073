"""Terminal output of gate results for every status and for hostile values."""

import io

import pytest
from rich.console import Console

from app.cli.render import print_result

STATUSES = [
    "passed",
    "failed",
    "error",
    "inconclusive",
    "waived",
    "queued",
    "running",
    "skipped",
    "warning",
]


def render(result):
    buffer = io.StringIO()
    console = Console(file=buffer, width=200, highlight=False, color_system=None)
    print_result(result, console)
    return buffer.getvalue()


def gate(status, **fields):
    return {
        "kind": "data",
        "status": status,
        "id": "g1",
        "project": "default",
        "branch": None,
        "checks": [],
        **fields,
    }


def check(status, name="scenario_coverage", message="all covered"):
    return {"name": name, "status": status, "advisory": False, "message": message}


@pytest.mark.parametrize("status", [*STATUSES, "some_future_status"])
def test_render_prints_every_status(status):
    output = render(gate(status, checks=[check(status)]))

    assert f"data gate {status.upper()}  id g1" in output
    assert f"scenario_coverage │ {status}" in output


def test_render_prints_upload_values_verbatim():
    markup = "[/] [bold]x[/bold] [red"
    result = gate(
        "failed",
        project=markup,
        branch="[/]",
        error=markup,
        checks=[check("[/]", name=markup, message=markup)],
    )

    output = render(result)

    assert f"project {markup}@[/]" in output
    assert f"error: {markup}" in output
    assert output.count(markup) == 4
