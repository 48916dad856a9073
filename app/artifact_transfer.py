"""Artifacts moving from the API to workers that do not share its disk.

The API serves a blob by sha256 on an internal route, authorised by a secret
shared with its workers (``DISTILGATE_INTERNAL_TOKEN``). Before a worker
evaluates a gate, it takes every artifact from its own store when present, or
downloads it from the API into its store. Either way the bytes are hashed and
must match the sha256 recorded at upload, or the gate ends as ``error``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from app.auth import AuthenticationError
from app.errors import EvaluationError, InputError, NotFoundError
from app.storage.blobs import CHUNK_BYTES, BlobStore
from app.storage.models import GateRecord

logger = logging.getLogger(__name__)

SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
INTERNAL_ARTIFACTS_PATH = "/api/v1/internal/artifacts"
DOWNLOAD_TIMEOUT_S = 60.0
# Connection attempts per download; httpx retries failed connects only.
CONNECT_RETRIES = 3


def authorize_worker(expected: SecretStr | None, header: str | None) -> None:
    """Check the ``Authorization`` header of an internal request.

    The token is compared in constant time and never logged.

    Raises:
        NotFoundError: no internal token is set, so the route is off.
        AuthenticationError: the header is missing or has another token.
    """
    if expected is None:
        raise NotFoundError(
            "the internal artifact route is off; set DISTILGATE_INTERNAL_TOKEN on "
            "the API and its workers to turn it on",
            field="Authorization",
            location="header",
        )
    scheme, _, token = (header or "").partition(" ")
    secret = expected.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), secret
    ):
        raise AuthenticationError(
            "missing or wrong internal token; send 'Authorization: Bearer' "
            "followed by the value of DISTILGATE_INTERNAL_TOKEN",
            field="Authorization",
            location="header",
        )


def stored_blob(store: BlobStore, sha256: str) -> Path:
    """Return the path of a stored blob.

    Raises:
        InputError: ``sha256`` is not 64 lowercase hex digits.
        NotFoundError: no blob has that sha256.
    """
    if not SHA256_PATTERN.fullmatch(sha256):
        raise InputError(
            f"sha256 {sha256!r} is not 64 lowercase hexadecimal digits",
            field="sha256",
            value=sha256,
            location="path",
        )
    path = store.path_for(sha256)
    if not path.is_file():
        raise NotFoundError(
            f"artifact {sha256} not found in the store",
            field="sha256",
            value=sha256,
            location="path",
        )
    logger.info("artifact sent to a worker sha256=%s", sha256)
    return path


def file_sha256(path: Path) -> str:
    """Return the hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


class ArtifactFetcher:
    """Makes every artifact of a gate present and verified in a worker's store."""

    def __init__(
        self, store: BlobStore, api_url: str | None, token: SecretStr | None
    ) -> None:
        self.store = store
        self.api_url = api_url.rstrip("/") if api_url else None
        self._token = token

    def ensure(self, record: GateRecord) -> None:
        """Verify or download each artifact of ``record``.

        Raises:
            EvaluationError: an artifact is missing, cannot be downloaded, or
                its bytes do not match its sha256; the message names it.
        """
        for role, info in record.artifacts.items():
            self._ensure_one(record.id, role, info)

    def _ensure_one(self, gate_id: str, role: str, info: dict[str, Any]) -> None:
        sha256 = info["sha256"]
        name = _describe(role, info)
        path = self.store.path_for(sha256)
        if path.is_file():
            actual = file_sha256(path)
            if actual != sha256:
                logger.error(
                    "stored artifact damaged gate_id=%s role=%s sha256=%s actual=%s",
                    gate_id,
                    role,
                    sha256,
                    actual,
                )
                raise EvaluationError(
                    f"artifact {name} in {path} does not match its sha256 "
                    f"{sha256} (its bytes hash to {actual}); the stored copy is "
                    "damaged, so submit the gate again with the file",
                    field=role,
                )
            return
        if self.api_url is None:
            raise EvaluationError(
                f"artifact {name} (sha256 {sha256}) is not in this worker's store "
                f"{self.store.root} and DISTILGATE_ARTIFACT_API_URL is not set; "
                "share the API's data directory with the worker, or set that URL "
                "and DISTILGATE_INTERNAL_TOKEN",
                field=role,
            )
        self._download(gate_id, role, name, sha256, int(info["size_bytes"]))

    def _download(
        self, gate_id: str, role: str, name: str, sha256: str, size_bytes: int
    ) -> None:
        url = f"{self.api_url}{INTERNAL_ARTIFACTS_PATH}/{sha256}"
        incoming = self.store.root / "incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(dir=incoming)
        temp_path = Path(temp_name)
        try:
            with os.fdopen(handle, "wb") as out:
                actual = self._stream(url, name, role, size_bytes, out)
                out.flush()
                os.fsync(out.fileno())
            if actual != sha256:
                logger.error(
                    "downloaded artifact damaged gate_id=%s role=%s sha256=%s "
                    "actual=%s",
                    gate_id,
                    role,
                    sha256,
                    actual,
                )
                raise EvaluationError(
                    f"artifact {name} downloaded from {url} does not match its "
                    f"sha256 {sha256} (its bytes hash to {actual}); the API's "
                    "stored copy is damaged, so submit the gate again with the file",
                    field=role,
                )
            final = self.store.path_for(sha256)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temp_path, final)
        finally:
            temp_path.unlink(missing_ok=True)
        logger.info(
            "artifact downloaded gate_id=%s role=%s sha256=%s size_bytes=%d",
            gate_id,
            role,
            sha256,
            size_bytes,
        )

    def _stream(self, url: str, name: str, role: str, size_bytes: int, out: Any) -> str:
        """Write the response body to ``out``; return the sha256 of its bytes."""
        headers = {}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        transport = httpx.HTTPTransport(retries=CONNECT_RETRIES)
        digest = hashlib.sha256()
        received = 0
        try:
            with (
                httpx.Client(transport=transport, timeout=DOWNLOAD_TIMEOUT_S) as client,
                client.stream("GET", url, headers=headers) as response,
            ):
                if response.status_code != 200:
                    response.read()
                    raise EvaluationError(
                        f"artifact {name} could not be downloaded from {url}: "
                        f"HTTP {response.status_code} {response.text[:300]}",
                        field=role,
                    )
                for chunk in response.iter_bytes(CHUNK_BYTES):
                    received += len(chunk)
                    if received > size_bytes:
                        raise EvaluationError(
                            f"artifact {name} downloaded from {url} is larger than "
                            f"its recorded {size_bytes} bytes",
                            field=role,
                        )
                    digest.update(chunk)
                    out.write(chunk)
        except httpx.HTTPError as exc:
            raise EvaluationError(
                f"artifact {name} could not be downloaded from {url}: "
                f"{type(exc).__name__}: {exc}",
                field=role,
            ) from None
        return digest.hexdigest()


def _describe(role: str, info: dict[str, Any]) -> str:
    filename = info.get("filename")
    return f"{role!r} ({filename})" if filename else repr(role)
