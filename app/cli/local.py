"""Run a gate in this process and record it in the local database."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

from app.auth import ANONYMOUS_ADMIN
from app.cli.bars import StageBars
from app.config import Settings
from app.gates import Upload, split_columns, validate_meta
from app.runtime import Runtime

# A local run waits for its own evaluation, however long it takes.
NO_LIMIT_S = 10 * 365 * 24 * 3600.0


def submit(
    settings: Settings,
    kind: str,
    files: dict[str, Path],
    form: dict[str, str],
    policy_text: str | None,
) -> dict[str, Any]:
    """Run a model or data gate on local files and return the stored result.

    A data gate shows a progress bar per stage on a terminal.
    """
    runtime = Runtime(settings)
    try:
        runtime.database.migrate()
        meta = validate_meta(
            form.get("project"), form.get("branch"), form.get("commit")
        )
        with ExitStack() as stack:
            uploads = {
                field: Upload(
                    field=field,
                    filename=path.name,
                    stream=stack.enter_context(path.open("rb")),
                )
                for field, path in files.items()
            }
            with StageBars() as bars:
                submitted = runtime.submit_uploads(
                    kind,
                    uploads,
                    meta,
                    _request(kind, form),
                    policy_text,
                    watch=lambda _, progress: bars.show(progress),
                )
                result = runtime.wait(submitted.id, ANONYMOUS_ADMIN, NO_LIMIT_S)
        return result.model_dump(mode="json")
    finally:
        runtime.stop()


def _request(kind: str, form: dict[str, str]) -> dict[str, Any]:
    if kind == "model":
        return {"label_column": form.get("label_column") or "label"}
    return {
        "scenario_columns": split_columns(form.get("scenario_columns")),
        "label_column": form.get("label_column") or None,
    }
