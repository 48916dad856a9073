"""Tests for reading zip archives in memory and zipping folders."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from app.errors import InputError, PayloadTooLargeError
from app.evaluation.archives import (
    Limits,
    Skipped,
    list_members,
    read_members,
    zip_folder,
)
from tests.evaluation.image_fixtures import write_zip


def read_all(path: Path, limits: Limits | None = None) -> tuple[list[str], Skipped]:
    skipped = Skipped()
    members = read_members(
        path,
        field="original",
        filename="shots.zip",
        accept=lambda name: name.endswith(".png"),
        skipped=skipped,
        limits=limits,
    )
    return [member.name for member in members], skipped


@pytest.mark.parametrize(
    ("member", "problem"),
    [
        ("../escape.png", "contains a '..' part"),
        ("shots/../../escape.png", "contains a '..' part"),
        ("/etc/escape.png", "is an absolute path"),
        ("\\windows\\escape.png", "is an absolute path"),
        ("shots\\escape.png", "contains a backslash"),
        ("C:/escape.png", "starts with a drive letter"),
    ],
)
def test_read_members_unsafe_name_rejected(
    tmp_path: Path, member: str, problem: str
) -> None:
    path = tmp_path / "bad.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ok.png", b"x")
        # ZipInfo keeps the name as given, as a hostile archive would store it.
        info = zipfile.ZipInfo("placeholder")
        info.filename = member
        archive.writestr(info, b"x")
    with pytest.raises(InputError) as raised:
        read_all(path)
    assert raised.value.status_code == 422
    assert raised.value.message == (
        f"original 'shots.zip' member {member!r} {problem}; archives may contain "
        "only regular files with relative paths inside the archive"
    )
    assert raised.value.value == member


def test_read_members_symlink_rejected(tmp_path: Path) -> None:
    path = write_zip(
        tmp_path / "link.zip",
        [("ok.png", b"x")],
        symlinks=[("shots/link.png", "/etc/passwd")],
    )
    with pytest.raises(InputError, match="'shots/link.png' is a symbolic link"):
        read_all(path)


def test_read_members_unsafe_name_rejected_before_reading(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "late.zip", [("a.png", b"x"), ("../b.png", b"y")])
    members = read_members(
        path,
        field="subset",
        filename=None,
        accept=lambda name: True,
        skipped=Skipped(),
    )
    with pytest.raises(InputError, match="subset member '../b.png'"):
        next(members)


def test_read_members_skips_junk_and_directories(tmp_path: Path) -> None:
    path = tmp_path / "junk.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("shots/", b"")
        archive.writestr("shots/a.png", b"a")
        archive.writestr("__MACOSX/shots/._a.png", b"junk")
        archive.writestr("shots/._b.png", b"junk")
        archive.writestr("shots/.DS_Store", b"junk")
        archive.writestr("shots/Thumbs.db", b"junk")
        archive.writestr("shots/notes.txt", b"text")
    names, skipped = read_all(path)
    assert names == ["shots/a.png"]
    assert skipped.total == 6
    assert skipped.counts == {
        "directory": 1,
        "operating-system file": 4,
        "unsupported file type": 1,
    }
    assert skipped.report()["examples"][0] == "shots/"


def test_read_members_too_many_members(tmp_path: Path) -> None:
    members = [(f"{index}.png", b"x") for index in range(6)]
    path = write_zip(tmp_path / "many.zip", members)
    with pytest.raises(PayloadTooLargeError) as raised:
        read_all(path, Limits(max_members=5))
    assert raised.value.status_code == 413
    assert raised.value.message == (
        "original 'shots.zip' has 6 members, more than the 5 allowed; split the "
        "archive or send fewer files"
    )


def test_read_members_too_many_bytes_declared(tmp_path: Path) -> None:
    # 1 MB of zeros compresses to about 1 kB: the declared size is what counts.
    path = tmp_path / "zeros.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("zeros.png", bytes(1_000_000))
    assert path.stat().st_size < 10_000
    with pytest.raises(PayloadTooLargeError, match="declares 1,000,000 bytes"):
        read_all(path, Limits(max_uncompressed_bytes=999_999))


def test_read_members_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "plain.zip"
    path.write_bytes(b"PK\x03\x04 but truncated")
    with pytest.raises(InputError, match="could not be read as a zip archive"):
        read_all(path)


def test_read_members_encrypted_flagged(tmp_path: Path) -> None:
    path = tmp_path / "locked.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("locked.png", b"ciphertext")
    # zipfile cannot encrypt, so set the encrypted flag in the local header
    # (offset 6) and in the central directory entry (offset 8) by hand.
    content = bytearray(path.read_bytes())
    content[6] |= 0x1
    central = content.index(b"PK\x01\x02")
    content[central + 8] |= 0x1
    path.write_bytes(bytes(content))
    skipped = Skipped()
    members = list(
        read_members(
            path,
            field="original",
            filename=None,
            accept=lambda name: True,
            skipped=skipped,
        )
    )
    assert [(m.name, m.data, m.encrypted) for m in members] == [
        ("locked.png", b"", True)
    ]


def test_list_members_reads_no_data(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "two.zip", [("a.png", b"a"), ("b/c.png", b"bc")])
    names = [info.filename for info in list_members(path, field="f", filename=None)]
    assert names == ["a.png", "b/c.png"]


def test_zip_folder_relative_names_without_links(tmp_path: Path) -> None:
    folder = tmp_path / "shots"
    (folder / "login").mkdir(parents=True)
    (folder / "login" / "a.png").write_bytes(b"a")
    (folder / "b.png").write_bytes(b"b")
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    os.symlink(outside, folder / "link.png")
    os.symlink(tmp_path, folder / "loop")
    archive = zip_folder(folder, tmp_path / "out.zip")
    with zipfile.ZipFile(archive) as opened:
        assert opened.namelist() == ["b.png", "login/a.png"]
        assert opened.read("login/a.png") == b"a"
