"""Tests for telling zip archives of images from NumPy .npz files, and tar."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

from app.errors import UnsupportedFormatError
from app.evaluation.readers import SUPPORTED, detect_format, read_table
from tests.evaluation.image_fixtures import encode, screenshot, write_zip


def image_zip(tmp_path: Path) -> Path:
    return write_zip(
        tmp_path / "stored", [("login/a.png", encode(screenshot("login", 0)))]
    )


def test_detect_format_image_zip_by_content(tmp_path: Path) -> None:
    assert detect_format(image_zip(tmp_path), field="original") == "zip"


def test_detect_format_image_zip_by_suffix(tmp_path: Path) -> None:
    path = image_zip(tmp_path)
    assert detect_format(path, field="original", filename="shots.zip") == "zip"


def test_detect_format_npz_stays_npz(tmp_path: Path) -> None:
    path = tmp_path / "arrays"
    buffer = io.BytesIO()
    np.savez(buffer, X=np.zeros((2, 2)), preview=np.zeros(1))
    path.write_bytes(buffer.getvalue())
    assert detect_format(path, field="original") == "npz"


def test_detect_format_zip_suffix_on_npz_content(tmp_path: Path) -> None:
    # Both are zip archives: the claimed kind is read and names what it lacks.
    path = tmp_path / "arrays"
    buffer = io.BytesIO()
    np.savez(buffer, X=np.zeros((2, 2)))
    path.write_bytes(buffer.getvalue())
    assert detect_format(path, field="original", filename="a.zip") == "zip"


def test_detect_format_zip_without_images_is_npz(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "stored", [("notes.txt", b"hello")])
    assert detect_format(path, field="original") == "npz"


def tar_bytes() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        data = encode(screenshot("login", 0))
        info = tarfile.TarInfo("login/a.png")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.parametrize("filename", [None, "shots.tar", "shots.bin"])
def test_detect_format_tar_rejected(tmp_path: Path, filename: str | None) -> None:
    path = tmp_path / "stored"
    path.write_bytes(tar_bytes())
    with pytest.raises(UnsupportedFormatError) as raised:
        detect_format(path, field="original", filename=filename)
    assert raised.value.status_code == 415
    shown = f"original {filename!r}" if filename else "original"
    assert raised.value.message == (
        f"{shown} is a tar archive; tar is not read, so send the images as a zip "
        "archive instead (for example `zip -r images.zip images/`)"
    )


def test_detect_format_tgz_suffix_rejected(tmp_path: Path) -> None:
    path = tmp_path / "stored"
    path.write_bytes(b"\x1f\x8b\x08\x00compressed")
    with pytest.raises(UnsupportedFormatError, match="is a tar archive"):
        detect_format(path, field="subset", filename="shots.tar.gz")


def test_read_table_image_zip_rejected(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFormatError) as raised:
        read_table(image_zip(tmp_path), field="dataset", filename="shots.zip")
    assert raised.value.message == (
        "dataset 'shots.zip' is a zip archive of images; image archives are read "
        "only as the original and subset of a data gate, so send a table here"
    )


def test_supported_lists_zip() -> None:
    assert "zip of PNG or JPEG images (.zip, data gate only)" in SUPPORTED
