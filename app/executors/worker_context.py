"""The database, artifact store and fetcher one worker process uses to run gates."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from app.artifact_transfer import ArtifactFetcher
from app.config import Settings
from app.gates import GateService, Limits
from app.jobs import run_job
from app.storage.blobs import BlobStore
from app.storage.db import Database
from app.storage.repository import GateRepository
from app.webhooks import WebhookDispatcher

logger = logging.getLogger(__name__)


class WorkerContext:
    """Runs stored gates in a worker process, the way the API runs them."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.database = Database(settings)
        self.store = BlobStore(settings.data_dir)
        self.limits = Limits.from_settings(settings)
        self.webhooks = WebhookDispatcher(self.database.session)
        self.fetcher = ArtifactFetcher(
            self.store, settings.artifact_api_url, settings.internal_token
        )
        logger.info(
            "worker context ready data_dir=%s artifact_api_url=%s",
            settings.data_dir,
            settings.artifact_api_url,
        )

    @contextmanager
    def scope(self) -> Iterator[GateService]:
        """Yield a gate service in one unit of work."""
        with self.database.session() as session:
            yield GateService(GateRepository(session), self.store, self.limits)

    def run(self, gate_id: str, request_id: str | None = None) -> str | None:
        """Claim and evaluate a gate; return its status, None when skipped.

        ``request_id`` is the id of the request that submitted the gate, for
        the job's log lines.
        """
        record = run_job(
            gate_id,
            None,
            self.scope,
            self.webhooks.notify,
            lease_s=self.settings.job_lease_s,
            before_run=self.fetcher.ensure,
            request_id=request_id,
        )
        return None if record is None else record.status
