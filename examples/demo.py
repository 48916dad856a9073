"""Post the four example gates to a running DistilGate service and print verdicts.

Usage: python examples/demo.py [--server http://127.0.0.1:8000]
                               [--artifacts examples/out]

Builds the example artifacts first when any is missing. Exits 0 when every gate
returns the expected verdict, 1 when one differs or is rejected, and 2 when the
service cannot be reached.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

EXAMPLES_DIR = Path(__file__).resolve().parent
PROJECT = "demo"
BRANCH = "main"
# A model gate runs both models in child processes and times them, which takes
# a few seconds per model on a small machine.
REQUEST_TIMEOUT_S = 300.0
CONTENT_TYPES = {".csv": "text/csv", ".parquet": "application/vnd.apache.parquet"}


class ServiceUnreachable(Exception):
    """The service refused the connection or failed its health check."""


@dataclass(frozen=True)
class GateRequest:
    """One gate to post and the verdict it should get."""

    kind: str
    pair: str
    files: dict[str, str]
    form: dict[str, str]
    expected: str


@dataclass
class Verdict:
    """The service's response to one gate request."""

    status: str
    checks: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def gate_requests() -> list[GateRequest]:
    """Return the four example gates, with files named inside the artifacts dir."""
    meta = {"project": PROJECT, "branch": BRANCH}
    data_form = {**meta, "scenario_columns": "ink,width", "label_column": "label"}
    model = {"teacher": "teacher.onnx", "dataset": "digits_test.npz"}
    data = {"original": "original.csv"}
    return [
        GateRequest(
            "model", "teacher vs student",
            {**model, "student": "student.onnx"}, meta, "passed",
        ),
        GateRequest(
            "model", "teacher vs student_tiny",
            {**model, "student": "student_tiny.onnx"}, meta, "failed",
        ),
        GateRequest(
            "data", "original vs subset_good",
            {**data, "subset": "subset_good.csv"}, data_form, "passed",
        ),
        GateRequest(
            "data", "original vs subset_bad",
            {**data, "subset": "subset_bad.csv"}, data_form, "failed",
        ),
    ]  # fmt: skip


def ensure_artifacts(directory: Path, requests: list[GateRequest]) -> None:
    """Build the example artifacts into ``directory`` unless all are present."""
    needed = {name for request in requests for name in request.files.values()}
    if all((directory / name).is_file() for name in needed):
        return

    print(f"building example artifacts in {directory} ...", file=sys.stderr)
    # Imported here because it loads torch, which only the build needs.
    if str(EXAMPLES_DIR.parent) not in sys.path:
        sys.path.insert(0, str(EXAMPLES_DIR.parent))
    from examples.artifacts import build_all

    build_all(directory)


def check_health(client: httpx.Client) -> None:
    """Raise ServiceUnreachable unless ``GET /healthz`` returns status 200."""
    try:
        response = client.get("/healthz", timeout=10.0)
    except httpx.TransportError as exc:
        raise ServiceUnreachable(f"{type(exc).__name__}: {exc}") from None
    if response.status_code != 200:
        raise ServiceUnreachable(f"GET /healthz returned {response.status_code}")


def post_gate(client: httpx.Client, request: GateRequest, directory: Path) -> Verdict:
    """Post one gate with its files and return the service's verdict."""
    with _open_files(request.files, directory) as files:
        try:
            response = client.post(
                f"/api/v1/gates/{request.kind}",
                files=files,
                data=request.form,
                timeout=REQUEST_TIMEOUT_S,
            )
        except httpx.ConnectError as exc:
            raise ServiceUnreachable(f"{type(exc).__name__}: {exc}") from None
        except httpx.TransportError as exc:
            return Verdict("no response", errors=[f"{type(exc).__name__}: {exc}"])
    body = _json_or_none(response)
    if response.status_code != 200 or not isinstance(body, dict):
        return Verdict(f"http {response.status_code}", errors=_errors(body, response))
    return Verdict(str(body.get("status")), checks=list(body.get("checks", [])))


@contextmanager
def _open_files(
    names: dict[str, str], directory: Path
) -> Iterator[dict[str, tuple[str, Any, str]]]:
    with ExitStack() as stack:
        files = {}
        for part, name in names.items():
            path = directory / name
            content_type = CONTENT_TYPES.get(path.suffix, "application/octet-stream")
            stream = stack.enter_context(path.open("rb"))
            files[part] = (name, stream, content_type)
        yield files


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _errors(body: Any, response: httpx.Response) -> list[str]:
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):
        return [
            f"{'.'.join(map(str, item.get('loc', [])))}: {item.get('msg')}"
            for item in detail
            if isinstance(item, dict)
        ]
    if detail is not None:
        return [str(detail)]
    return [response.text[:300]]


def print_verdict(request: GateRequest, verdict: Verdict) -> None:
    """Print one gate's status line followed by one line per check or error."""
    mark = "ok" if verdict.status == request.expected else "UNEXPECTED"
    print(
        f"{request.kind:<6} {request.pair:<26} {verdict.status:<8} "
        f"(expected {request.expected}) {mark}",
        flush=True,
    )
    for check in verdict.checks:
        print(
            f"    {check.get('name', '?'):<20} {check.get('status', '?'):<8} "
            f"{check.get('message', '')}",
            flush=True,
        )
    for error in verdict.errors:
        print(f"    error: {error}", flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--server",
        default="http://127.0.0.1:8000",
        help="base URL of the DistilGate service (default: http://127.0.0.1:8000)",
    )
    parser.add_argument(
        "--artifacts",
        type=Path,
        default=EXAMPLES_DIR / "out",
        help="directory of the example artifacts, built when missing "
        "(default: examples/out)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    requests = gate_requests()
    try:
        with httpx.Client(base_url=args.server) as client:
            check_health(client)
            ensure_artifacts(args.artifacts, requests)
            as_expected = True
            for request in requests:
                verdict = post_gate(client, request, args.artifacts)
                print_verdict(request, verdict)
                as_expected &= verdict.status == request.expected
    except ServiceUnreachable as exc:
        print(
            f"error: cannot reach DistilGate at {args.server} ({exc}); "
            "start it with `make run`",
            file=sys.stderr,
        )
        return 2
    return 0 if as_expected else 1


if __name__ == "__main__":
    sys.exit(main())
