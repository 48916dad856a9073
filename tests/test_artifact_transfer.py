"""Workers' artifact downloads from a real API server, and their verification."""

from __future__ import annotations

import hashlib
import io

import pytest
from pydantic import SecretStr

from app.artifact_transfer import ArtifactFetcher
from app.errors import EvaluationError
from app.storage.blobs import BlobStore
from app.storage.models import GateRecord
from tests.servers import LiveServer

TOKEN = "internal-token-for-tests"
CONTENT = b"label,ink\n1,0.5\n2,0.25\n"
SHA256 = hashlib.sha256(CONTENT).hexdigest()
SIZE_BYTES = len(CONTENT)


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    root = tmp_path_factory.mktemp("transfer")
    store = BlobStore(root / "data")
    store.put(io.BytesIO(CONTENT), field="original", max_bytes=1 << 20)
    server = LiveServer(
        f"sqlite:///{root / 'api.db'}",
        root / "data",
        root / "api.log",
        extra_env={"DISTILGATE_INTERNAL_TOKEN": TOKEN},
    ).start()
    yield server
    server.stop()


def gate(sha256=SHA256, size_bytes=SIZE_BYTES):
    info = {"sha256": sha256, "size_bytes": size_bytes, "filename": "all.csv"}
    return GateRecord(id="g" * 32, artifacts={"original": info})


def fetcher(tmp_path, url, token=TOKEN):
    return ArtifactFetcher(BlobStore(tmp_path), url, SecretStr(token))


def test_fetch_stores_verified_blob(api, tmp_path):
    fetcher(tmp_path, api.url).ensure(gate())
    stored = tmp_path / SHA256[:2] / SHA256[2:4] / SHA256
    assert stored.read_bytes() == CONTENT
    assert list((tmp_path / "incoming").iterdir()) == []


def test_fetch_with_wrong_token_fails(api, tmp_path):
    with pytest.raises(EvaluationError, match="HTTP 401") as raised:
        fetcher(tmp_path, api.url, token="wrong").ensure(gate())
    assert "'original' (all.csv)" in raised.value.message
    assert raised.value.field == "original"


def test_fetch_of_missing_blob_fails(api, tmp_path):
    with pytest.raises(EvaluationError, match="HTTP 404"):
        fetcher(tmp_path, api.url).ensure(gate(sha256="0" * 64))


def test_fetch_larger_than_recorded_fails(api, tmp_path):
    with pytest.raises(EvaluationError, match="larger than its recorded 3 bytes"):
        fetcher(tmp_path, api.url).ensure(gate(size_bytes=3))
    assert not (tmp_path / SHA256[:2]).exists()


def test_fetch_from_unreachable_api_fails(tmp_path):
    with pytest.raises(EvaluationError, match="ConnectError"):
        fetcher(tmp_path, "http://127.0.0.1:9").ensure(gate())


def test_missing_blob_without_api_url_fails(tmp_path):
    with pytest.raises(EvaluationError, match="DISTILGATE_ARTIFACT_API_URL"):
        ArtifactFetcher(BlobStore(tmp_path), None, None).ensure(gate())


def test_damaged_local_blob_fails(tmp_path):
    stored = tmp_path / SHA256[:2] / SHA256[2:4] / SHA256
    stored.parent.mkdir(parents=True)
    stored.write_bytes(CONTENT.replace(b"0.5", b"0.6"))
    with pytest.raises(EvaluationError, match=f"does not match its sha256 {SHA256}"):
        ArtifactFetcher(BlobStore(tmp_path), None, None).ensure(gate())
