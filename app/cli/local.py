"""Run a gate in this process and record it in the local database."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

from app.api.schemas import GateResult
from app.config import Settings
from app.gates import Upload, service_scope, validate_meta
from app.storage.blobs import BlobStore
from app.storage.db import Database


def submit(
    settings: Settings,
    kind: str,
    files: dict[str, Path],
    form: dict[str, str],
    policy_text: str | None,
) -> dict[str, Any]:
    """Run a model or data gate on local files and return the stored result."""
    database = Database(settings)
    try:
        database.migrate()
        store = BlobStore(settings.data_dir)
        meta = validate_meta(
            form.get("project"), form.get("branch"), form.get("commit")
        )
        with ExitStack() as stack, service_scope(database, store, settings) as service:
            uploads = {
                field: Upload(
                    field=field,
                    filename=path.name,
                    stream=stack.enter_context(path.open("rb")),
                )
                for field, path in files.items()
            }
            if kind == "model":
                record = service.run_model_gate(
                    uploads,
                    meta,
                    label_column=form.get("label_column"),
                    policy_text=policy_text,
                )
            else:
                record = service.run_data_gate(
                    uploads,
                    meta,
                    scenario_columns=form.get("scenario_columns"),
                    label_column=form.get("label_column"),
                    policy_text=policy_text,
                )
            return GateResult.from_record(record).model_dump(mode="json")
    finally:
        database.dispose()
