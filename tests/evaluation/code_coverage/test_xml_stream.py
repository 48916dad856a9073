"""Tests for streaming XML reports: hostile documents and bounded trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.errors import InputError
from app.evaluation.code_coverage import read_coverage
from app.evaluation.code_coverage.xml_stream import iter_elements

CLASS = (
    '<packages><package name="p"><classes><class name="m" filename="m.py"><lines>'
    '<line number="1" hits="1"/></lines></class></classes></package></packages>'
)


def billion_laughs(root: str) -> str:
    """Return a document whose ten nested entities expand to 10**9 'lol's."""
    entities = ['<!ENTITY lol0 "lol">']
    for level in range(1, 10):
        refs = f"&lol{level - 1};" * 10
        entities.append(f'<!ENTITY lol{level} "{refs}">')
    subset = "\n".join(entities)
    doctype = f"<!DOCTYPE {root} [\n{subset}\n]>"
    return f'<?xml version="1.0"?>\n{doctype}\n<{root}>&lol9;</{root}>'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "report.xml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("root", ["coverage", "report"])
def test_xml_billion_laughs_rejected(tmp_path: Path, root: str) -> None:
    with pytest.raises(InputError) as info:
        read_coverage(write(tmp_path, billion_laughs(root)), field="original")
    assert info.value.field == "original"
    assert str(info.value) == (
        "original declares the XML entity 'lol0', which is rejected because entities "
        "can expand without bound or read other files; coverage reports need no "
        "entities, so upload the report as the coverage tool wrote it"
    )


def test_xml_external_entity_rejected(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("password")
    text = (
        '<?xml version="1.0"?><!DOCTYPE coverage '
        f'[<!ENTITY x SYSTEM "{secret.as_uri()}">]>'
        f"<coverage><sources><source>&x;</source></sources>{CLASS}</coverage>"
    )
    with pytest.raises(InputError) as info:
        read_coverage(write(tmp_path, text), field="subset")
    assert str(info.value).startswith("subset declares the XML entity 'x', which is")
    assert "password" not in str(info.value)


def test_xml_parameter_entity_rejected(tmp_path: Path) -> None:
    text = (
        '<?xml version="1.0"?><!DOCTYPE coverage [<!ENTITY % remote SYSTEM '
        f'"http://127.0.0.1:9/evil.dtd"> %remote;]><coverage>{CLASS}</coverage>'
    )
    with pytest.raises(InputError) as info:
        read_coverage(write(tmp_path, text), field="original")
    assert "declares the XML entity 'remote'" in str(info.value)


def test_xml_public_doctype_accepted(tmp_path: Path) -> None:
    text = (
        '<?xml version="1.0"?><!DOCTYPE coverage SYSTEM '
        '"http://cobertura.sourceforge.net/xml/coverage-04.dtd">'
        f"<coverage>{CLASS}</coverage>"
    )
    report = read_coverage(write(tmp_path, text), field="original")
    assert report.files["m.py"].covered_lines.tolist() == [1]


def test_xml_iter_elements_removes_finished_children(tmp_path: Path) -> None:
    children = "".join(f'<line number="{n}" hits="1"/>' for n in range(5000))
    path = write(tmp_path, f"<coverage><lines>{children}</lines></coverage>")
    largest = 0
    lines_seen = 0
    for event, element in iter_elements(path, field="original", source="original"):
        largest = max(largest, len(element))
        lines_seen += event == "start" and element.tag == "line"
    assert lines_seen == 5000
    # Only elements of the current read-ahead chunk are still attached.
    assert largest < 1000
