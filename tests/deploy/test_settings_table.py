"""The table of settings in docs/deploy.md lists every Settings field."""

import importlib.util
import re

import pytest

from app.config import Settings
from tests.deploy.compose_spec import ROOT

SCRIPT = ROOT / "docs" / "gen_settings_table.py"


@pytest.fixture(scope="module")
def generator():
    spec = importlib.util.spec_from_file_location("gen_settings_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def document(generator):
    return generator.DEPLOY_DOC.read_text(encoding="utf-8")


def documented_variables(document):
    return set(re.findall(r"^\| `(DISTILGATE_[A-Z0-9_]+)` \|", document, re.M))


def test_settings_table_lists_every_field(document):
    expected = {f"DISTILGATE_{name.upper()}" for name in Settings.model_fields}
    documented = documented_variables(document)
    assert sorted(expected - documented) == []
    assert sorted(documented - expected) == []


def test_settings_table_is_current(generator, document):
    table = generator.render_table()
    assert generator.replace_table(document, table) == document, (
        "run .venv/bin/python docs/gen_settings_table.py"
    )


def test_settings_table_check_catches_missing_row(generator, document):
    row = next(
        line
        for line in document.splitlines()
        if line.startswith("| `DISTILGATE_MIGRATE_ON_START`")
    )
    stale = document.replace(row + "\n", "")
    assert "DISTILGATE_MIGRATE_ON_START" not in documented_variables(stale)
    assert generator.replace_table(stale, generator.render_table()) != stale


def test_settings_table_needs_markers(generator):
    with pytest.raises(ValueError, match="needs the lines"):
        generator.replace_table("# no table here\n", generator.render_table())


def test_settings_table_shows_defaults(generator):
    table = generator.render_table()
    assert "| `DISTILGATE_MIGRATE_ON_START` | bool | `true` |" in table
    assert "| `DISTILGATE_ADMIN_TOKEN` | secret | unset |" in table
    assert "| `DISTILGATE_DB_POOL_RECYCLE_S` | integer | `1800` |" in table
