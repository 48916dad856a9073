"""Hostile upload files, built in memory by the tests that need them.

No binary is committed: every file here is generated from a few lines of code,
one builder per attack class. Pickle payloads call ``pathlib.Path.touch`` on a
canary path, so a test proves that nothing was unpickled by checking that the
canary is still absent.
"""

from __future__ import annotations

import io
import pathlib
import pickle
import struct
import zipfile
import zlib
from collections.abc import Iterable, Iterator

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

# Deserialisation


class TouchOnLoad:
    """An object whose unpickling creates the file ``canary``."""

    def __init__(self, canary: pathlib.Path):
        self.canary = canary

    def __reduce__(self) -> tuple[object, tuple[pathlib.Path]]:
        return pathlib.Path.touch, (pathlib.Path(self.canary),)


def pickle_payload(canary: pathlib.Path) -> bytes:
    """A pickle, as joblib or pickle.dump writes, that touches ``canary``."""
    return pickle.dumps(TouchOnLoad(canary), protocol=4)


def object_npy(canary: pathlib.Path) -> bytes:
    """A .npy object array whose element unpickles into touching ``canary``."""
    array = np.empty((2, 1), dtype=object)
    array[0, 0] = TouchOnLoad(canary)
    array[1, 0] = 1
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def object_npz(canary: pathlib.Path) -> bytes:
    """A .npz file with a numeric ``y`` and an object ``X`` that touches ``canary``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("X.npy", object_npy(canary))
        archive.writestr("y.npy", npy_bytes(np.array([0, 1])))
    return buffer.getvalue()


def torch_save_zip(canary: pathlib.Path) -> bytes:
    """A zip laid out as ``torch.save`` writes it; data.pkl touches ``canary``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model/data.pkl", pickle_payload(canary))
        archive.writestr("model/version", "3\n")
    return buffer.getvalue()


def torchscript_zip(canary: pathlib.Path) -> bytes:
    """A file laid out as ``torch.jit.save`` writes it, with a payload in data.pkl."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model/data.pkl", pickle_payload(canary))
        archive.writestr("model/constants.pkl", pickle_payload(canary))
        archive.writestr("model/code/__torch__.py", "def forward(self, x):\n  pass\n")
        archive.writestr("model/version", "3\n")
    return buffer.getvalue()


# Declared sizes


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def forged_npy(shape: tuple[int, ...], dtype: str = "<f8") -> bytes:
    """A .npy header declaring ``shape``, followed by only 64 bytes of data."""
    buffer = io.BytesIO()
    header = {"descr": dtype, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + bytes(64)


def forged_npz(shape: tuple[int, ...]) -> bytes:
    """A compressed .npz whose ``X`` declares ``shape`` and ``y`` is tiny."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("X.npy", forged_npy(shape))
        archive.writestr("y.npy", npy_bytes(np.array([0, 1])))
    return buffer.getvalue()


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def parquet_declaring_rows(declared_rows: int, real_rows: int = 4242) -> bytes:
    """A Parquet file of ``real_rows`` rows whose footer declares ``declared_rows``.

    The footer is Thrift compact encoding: a row count is field header 0x16 (an
    i64 one field after the previous one) and the zigzag varint of the count.
    Every such count is rewritten and the footer length updated. The caller
    checks the result with ``pyarrow.parquet.ParquetFile(...).metadata``.
    """
    buffer = io.BytesIO()
    table = pa.table({"a": np.arange(real_rows, dtype=np.int64)})
    pq.write_table(table, buffer, write_statistics=False)
    data = buffer.getvalue()
    (length,) = struct.unpack("<I", data[-8:-4])
    footer = data[-8 - length : -8]
    original = b"\x16" + _varint(2 * real_rows)
    forged = footer.replace(original, b"\x16" + _varint(2 * declared_rows))
    return data[: -8 - length] + forged + struct.pack("<I", len(forged)) + b"PAR1"


def long_line_csv(line_bytes: int, chunk_bytes: int = 1 << 20) -> Iterator[bytes]:
    """Yield a CSV header and then one data line of ``line_bytes`` bytes."""
    yield b"a,b\n"
    left = line_bytes
    while left > 0:
        size = min(chunk_bytes, left)
        yield b"9" * size
        left -= size
    yield b",1\n"


# XML


def billion_laughs(root: str = "coverage") -> bytes:
    """A document whose nested entities would expand to 10**9 'lol's."""
    entities = ['<!ENTITY lol0 "lol">']
    for level in range(1, 10):
        entities.append(f'<!ENTITY lol{level} "{f"&lol{level - 1};" * 10}">')
    doctype = f"<!DOCTYPE {root} [{''.join(entities)}]>"
    return f'<?xml version="1.0"?>{doctype}<{root}>&lol9;</{root}>'.encode()


def external_entity(target: pathlib.Path) -> bytes:
    """A Cobertura report whose source path is an external entity on ``target``."""
    doctype = f'<!DOCTYPE coverage [<!ENTITY x SYSTEM "{target.as_uri()}">]>'
    return (
        f'<?xml version="1.0"?>{doctype}<coverage><sources><source>&x;</source>'
        f"</sources>{_COBERTURA_PACKAGES}</coverage>"
    ).encode()


_COBERTURA_PACKAGES = (
    '<packages><package name="p"><classes><class name="m" filename="m.py"><lines>'
    '<line number="1" hits="1"/><line number="2" hits="{hits}"/></lines></class>'
    "</classes></package></packages>"
)


def cobertura(hits: int = 1, filename: str = "m.py") -> bytes:
    """A minimal Cobertura report of one file with lines 1 and 2."""
    packages = _COBERTURA_PACKAGES.format(hits=hits).replace(
        'filename="m.py"', f'filename="{filename}"'
    )
    return f'<?xml version="1.0"?><coverage>{packages}</coverage>'.encode()


def jacoco(covered_second_line: bool = True) -> bytes:
    """A JaCoCo report with the DOCTYPE JaCoCo writes, naming its external DTD."""
    second = 'ci="1" mi="0"' if covered_second_line else 'ci="0" mi="1"'
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<!DOCTYPE report PUBLIC "-//JACOCO//DTD Report 1.1//EN" "report.dtd">'
        '<report name="r"><package name="org/a"><sourcefile name="A.java">'
        f'<line nr="3" mi="0" ci="2" mb="0" cb="0"/><line nr="4" {second} mb="0" '
        'cb="0"/></sourcefile></package></report>'
    ).encode()


def deep_xml(depth: int) -> bytes:
    return b"<coverage>" + b"<a>" * depth + b"</a>" * depth + b"</coverage>"


def long_attribute_xml(value_bytes: int) -> bytes:
    return b'<coverage name="' + b"x" * value_bytes + b'"/>'


# Tables


def csv_table(columns: list[str], rows: list[list[object]]) -> bytes:
    """A CSV file; column names and values are quoted when they need it."""
    import csv

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return buffer.getvalue().encode()


# Requests


def post_gate(
    url: str, kind: str, files: dict[str, tuple[str, bytes]], **form: str
) -> httpx.Response:
    """Post a multipart gate request of in-memory files and form fields."""
    return httpx.post(
        f"{url}/api/v1/gates/{kind}", files=files, data=form, timeout=120.0
    )


def multipart_stream(
    boundary: str, parts: list[tuple[str, str, Iterable[bytes]]]
) -> Iterator[bytes]:
    """Yield a multipart body of ``(field, filename, chunks)`` file parts."""
    for field, filename, chunks in parts:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
            f'filename="{filename}"\r\nContent-Type: text/csv\r\n\r\n'
        ).encode()
        yield from chunks
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


def resident_bytes(pid: int) -> int:
    """Return the resident memory of process ``pid`` (VmRSS), in bytes."""
    status = pathlib.Path(f"/proc/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def error_of(response: httpx.Response) -> dict[str, object]:
    """Return the single error entry of a 4xx or 5xx JSON body."""
    detail = response.json()["detail"]
    assert len(detail) == 1, detail
    entry: dict[str, object] = detail[0]
    return entry


# Images


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    checksum = struct.pack(">I", zlib.crc32(kind + data))
    return struct.pack(">I", len(data)) + kind + data + checksum


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` RGB pixels.

    Only one row of pixel data follows, so the file is a few dozen bytes while
    decoding it as declared would allocate ``width * height * 3`` bytes.
    """
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    row = zlib.compress(b"\x00" + bytes(3 * min(width, 1024)))
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", row)
        + _png_chunk(b"IEND", b"")
    )


def small_png(shade: int) -> bytes:
    """A real 32x32 PNG of a gradient, brighter with ``shade``."""
    from PIL import Image

    pixels = (np.arange(32 * 32 * 3, dtype=np.uint32) * (shade + 1)) % 256
    image = Image.fromarray(pixels.astype(np.uint8).reshape(32, 32, 3))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def image_zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


# Damaged archives


def damaged_zip(name: str, content: bytes, flaw: str) -> bytes:
    """A one-member zip whose headers claim ``flaw``: encrypted or unknown method.

    Both the local header and the central directory entry are patched, as a
    tool writing such an archive would set them.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, content)
    data = bytearray(buffer.getvalue())
    central = data.find(b"PK\x01\x02")
    if flaw == "encrypted":
        data[6] |= 1
        data[central + 8] |= 1
    else:
        data[8:10] = (99).to_bytes(2, "little")
        data[central + 10 : central + 12] = (99).to_bytes(2, "little")
    return bytes(data)
