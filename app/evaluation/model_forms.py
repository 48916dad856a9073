"""Recognise how a model was uploaded and make it ready to inspect.

Accepted forms: one ONNX file; a .zip holding one ONNX file and its external
data files; and, when the caller enables it, a TorchScript archive saved with
``torch.jit.save``. A state dict or a pickled module saved with ``torch.save``
is rejected. The form is read from the file's bytes and the zip's member names,
never by unpickling anything.

A zip is unpacked into a private directory after every member is checked:
absolute paths, ``..`` parts and symbolic links are rejected, and the member
count and the total uncompressed size are capped before any byte is written.
"""

from __future__ import annotations

import errno
import pickletools
import shutil
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from app.errors import InputError, PayloadTooLargeError
from app.evaluation.numpy_files import error_summary

ModelFormat = Literal["onnx", "torchscript"]

_ASK_FOR = (
    "upload the model as ONNX (torch.onnx.export) or as TorchScript "
    "(torch.jit.script(model).save(path))"
)
# torch.save pickles that name classes from these modules hold a whole module,
# not only tensors.
_MODULE_MARKERS = ("torch.nn.modules", "__main__")
_PICKLE_HEAD_BYTES = 1 << 20
_STRING_OPCODES = ("GLOBAL", "SHORT_BINUNICODE", "BINUNICODE", "UNICODE")
# Exceptions that zipfile and zlib raise on a damaged archive: bad headers or
# offsets, truncated or undecodable data, encryption, unsupported compression.
_CORRUPT_ZIP = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    EOFError,
    NotImplementedError,
    RuntimeError,
    ValueError,
    zlib.error,
)
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


@dataclass(frozen=True)
class ArchiveLimits:
    """Caps on a model .zip, checked before anything is extracted."""

    max_members: int = 1024
    max_total_bytes: int = 8 * 1024**3


@dataclass(frozen=True)
class ModelForm:
    """An uploaded model ready to inspect: its format and the file to load.

    For a zip, ``path`` is the ONNX file inside the unpacked directory.
    """

    format: ModelFormat
    path: Path
    packaging: Literal["file", "zip"]


def open_model(
    path: Path,
    *,
    field: str,
    workdir: Path,
    allow_torchscript: bool = False,
    limits: ArchiveLimits | None = None,
) -> ModelForm:
    """Recognise the upload at ``path`` and unpack it into ``workdir`` if needed.

    Raises:
        InputError: the upload is a torch pickle, TorchScript while it is not
            enabled, or a zip with an unsafe member or without one ONNX file.
        PayloadTooLargeError: a zip has too many members or too many bytes.
    """
    with path.open("rb") as handle:
        head = handle.read(_PICKLE_HEAD_BYTES)
    if head.startswith(b"\x80"):
        raise _torch_pickle_error(field, path, _pickled_kind(head))
    if not zipfile.is_zipfile(path):
        return ModelForm("onnx", path, "file")
    try:
        return _open_zip(
            path, field, workdir, allow_torchscript, limits or ArchiveLimits()
        )
    except _CORRUPT_ZIP as exc:
        raise _corrupt_zip(field, path, exc) from None
    except OSError as exc:
        # A full disk under the work directory is the server's fault.
        if exc.errno in _NO_SPACE:
            raise
        raise _corrupt_zip(field, path, exc) from None


def _open_zip(
    path: Path,
    field: str,
    workdir: Path,
    allow_torchscript: bool,
    limits: ArchiveLimits,
) -> ModelForm:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickle_member = _torch_pickle_member(names)
        if pickle_member is not None and _is_torchscript(names):
            if not allow_torchscript:
                raise _torchscript_disabled(field, path)
            return ModelForm("torchscript", path, "file")
        if pickle_member is not None:
            data = archive.open(pickle_member).read(_PICKLE_HEAD_BYTES)
            raise _torch_pickle_error(field, path, _pickled_kind(data))
        target = workdir / f"{field}_archive"
        _extract(archive, target, field, limits)
    return ModelForm("onnx", _single_onnx(target, names, field), "zip")


def _corrupt_zip(field: str, path: Path, exc: BaseException) -> InputError:
    return InputError(
        f"{field} file {path.name!r} is a corrupt zip archive "
        f"({error_summary(exc)}); create the archive again with a zip tool or "
        "Python's zipfile",
        field=field,
        value=path.name,
    )


def _torch_pickle_member(names: list[str]) -> str | None:
    return next((name for name in names if name.endswith("/data.pkl")), None)


def _is_torchscript(names: list[str]) -> bool:
    """TorchScript archives store ``constants.pkl`` and the module's ``code/``."""
    has_constants = any(name.endswith("/constants.pkl") for name in names)
    has_code = any("/code/" in name for name in names)
    return has_constants and has_code


def _pickled_kind(data: bytes) -> str:
    """Name what a torch pickle contains by reading its opcodes, never running them.

    A whole module names classes from ``torch.nn.modules`` or ``__main__``; a
    state dict names only containers and tensor rebuild functions.
    """
    strings: list[str] = []
    # Files from torch.save without the zip format hold several pickles in a
    # row (magic number, version, system info, then the object).
    start = 0
    for _ in range(8):
        stop = _pickle_strings(data[start:], strings)
        if stop is None:
            break
        start += stop + 1
    if any(text.startswith(_MODULE_MARKERS) for text in strings):
        return "a whole pickled module"
    return "a state dict (weights without the model's code)"


def _pickle_strings(data: bytes, strings: list[str]) -> int | None:
    """Collect the strings of one pickle; return the offset of its STOP opcode."""
    try:
        for opcode, argument, position in pickletools.genops(data):
            if isinstance(argument, str) and opcode.name in _STRING_OPCODES:
                strings.append(argument)
            if opcode.name == "STOP":
                return position
    except (ValueError, EOFError):
        # A truncated head or raw tensor bytes end the readable part.
        return None
    return None


def _torch_pickle_error(field: str, path: Path, kind: str) -> InputError:
    return InputError(
        f"{field} file {path.name!r} was saved with torch.save and holds {kind}, "
        f"which DistilGate does not unpickle; {_ASK_FOR}",
        field=field,
        value=path.name,
    )


def _torchscript_disabled(field: str, path: Path) -> InputError:
    return InputError(
        f"{field} file {path.name!r} is a TorchScript archive, but this server "
        "does not run TorchScript: loading it runs code from the file, so it is "
        "enabled only for trusted uploads; upload the model as ONNX "
        "(torch.onnx.export)",
        field=field,
        value=path.name,
    )


def _extract(
    archive: zipfile.ZipFile, target: Path, field: str, limits: ArchiveLimits
) -> None:
    members = archive.infolist()
    if len(members) > limits.max_members:
        raise PayloadTooLargeError(
            f"{field} archive has {len(members)} members, more than the "
            f"{limits.max_members} accepted; save the external data in fewer "
            "files (onnx.save(..., all_tensors_to_one_file=True))",
            field=field,
            value=len(members),
        )
    total = sum(member.file_size for member in members)
    if total > limits.max_total_bytes:
        raise PayloadTooLargeError(
            f"{field} archive unpacks to {total:,} bytes, more than the "
            f"{limits.max_total_bytes:,} accepted; upload a smaller model",
            field=field,
            value=total,
        )
    for member in members:
        _check_member(member, field)
    target.mkdir(mode=0o700)
    for member in members:
        if member.is_dir():
            continue
        destination = target.joinpath(*PurePosixPath(member.filename).parts)
        destination.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(member) as source, destination.open("xb") as sink:
            # ZipExtFile stops at the member's declared size, which the total
            # above capped, so a member cannot unpack to more than it declared.
            shutil.copyfileobj(source, sink)


def _check_member(member: zipfile.ZipInfo, field: str) -> None:
    name = member.filename
    mode = member.external_attr >> 16
    path = PurePosixPath(name)
    problem = None
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        problem = "is an absolute path"
    elif "\\" in name or "\x00" in name:
        problem = "contains a backslash or a NUL character"
    elif ".." in path.parts:
        problem = "contains '..'"
    elif stat.S_ISLNK(mode):
        problem = "is a symbolic link"
    if problem is not None:
        raise InputError(
            f"{field} archive member {name!r} {problem}; the archive must contain "
            "plain files at relative paths inside it",
            field=field,
            value=name,
        )


def _single_onnx(target: Path, names: list[str], field: str) -> Path:
    models = sorted(name for name in names if name.lower().endswith(".onnx"))
    if len(models) != 1:
        raise InputError(
            f"{field} archive contains {len(models)} .onnx files {models[:10]}; "
            "expected exactly one model next to its external data files",
            field=field,
            value=models[:10],
        )
    return target.joinpath(*PurePosixPath(models[0]).parts)
