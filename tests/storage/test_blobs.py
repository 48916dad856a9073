import hashlib
import io

import pytest

from app.errors import PayloadTooLargeError
from app.storage.blobs import BlobStore


def test_blob_store_names_blob_by_sha256(tmp_path):
    store = BlobStore(tmp_path)
    content = b"teacher model bytes"
    blob = store.put(io.BytesIO(content), field="teacher", max_bytes=1 << 20)
    expected = hashlib.sha256(content).hexdigest()
    assert blob.sha256 == expected
    assert blob.size_bytes == len(content)
    assert blob.path == tmp_path / expected[:2] / expected[2:4] / expected
    assert blob.path.read_bytes() == content


def test_blob_store_keeps_one_copy_of_identical_uploads(tmp_path):
    store = BlobStore(tmp_path)
    first = store.put(io.BytesIO(b"same"), field="subset", max_bytes=100)
    second = store.put(io.BytesIO(b"same"), field="subset", max_bytes=100)
    assert first.path == second.path
    assert list((tmp_path / "incoming").iterdir()) == []


def test_blob_store_streams_large_upload_in_chunks(tmp_path):
    content = bytes(range(256)) * 20_000
    blob = BlobStore(tmp_path).put(io.BytesIO(content), field="x", max_bytes=10**8)
    assert blob.size_bytes == len(content)
    assert blob.sha256 == hashlib.sha256(content).hexdigest()


def test_blob_store_rejects_oversized_upload_and_keeps_nothing(tmp_path):
    store = BlobStore(tmp_path)
    with pytest.raises(PayloadTooLargeError, match=r"larger than the 10-byte") as err:
        store.put(io.BytesIO(b"x" * 11), field="dataset", max_bytes=10)
    assert err.value.field == "dataset"
    assert err.value.status_code == 413
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
