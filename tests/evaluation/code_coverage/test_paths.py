"""Tests for normalising source file names and pairing two reports' files."""

from __future__ import annotations

import pytest

from app.evaluation.code_coverage.paths import (
    FilePair,
    normalise_path,
    pair_files,
    strip_roots,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("pkg/mod.py", "pkg/mod.py"),
        ("./pkg//mod.py", "pkg/mod.py"),
        ("/home/ci/repo/pkg/mod.py", "home/ci/repo/pkg/mod.py"),
        ("C:\\agent\\work\\src\\Shop\\Cart.cs", "agent/work/src/Shop/Cart.cs"),
        ("d:/build/src/a.c", "build/src/a.c"),
        ("src\\sub\\..\\a.c", "src/a.c"),
        ("../shared/a.c", "../shared/a.c"),
        ("  pkg/mod.py\n", "pkg/mod.py"),
    ],
)
def test_normalise_path_cases(raw: str, expected: str) -> None:
    assert normalise_path(raw) == expected


def test_strip_roots_longest_wins() -> None:
    roots = ["build", "build/app/src", "other"]
    assert strip_roots("build/app/src/pkg/a.py", roots) == "pkg/a.py"
    assert strip_roots("build/lib/b.py", roots) == "lib/b.py"
    assert strip_roots("buildx/c.py", roots) == "buildx/c.py"


def test_pair_files_exact_names() -> None:
    pairs = pair_files(["a.py", "b.py"], ["b.py", "c.py"])
    assert pairs == [
        FilePair("b.py", "b.py", "b.py"),
        FilePair("a.py", "a.py", None),
        FilePair("c.py", None, "c.py"),
    ]


def test_pair_files_different_checkouts() -> None:
    original = ["home/ci/a/src/shop/pay.py", "home/ci/a/src/shop/cart.py"]
    subset = ["build/b/src/shop/pay.py", "build/b/src/shop/cart.py"]
    pairs = pair_files(original, subset)
    assert pairs == [
        FilePair("src/shop/cart.py", original[1], subset[1]),
        FilePair("src/shop/pay.py", original[0], subset[0]),
    ]


def test_pair_files_relative_against_absolute() -> None:
    pairs = pair_files(["pkg/mod.py"], ["home/ci/repo/pkg/mod.py"])
    assert pairs == [FilePair("pkg/mod.py", "pkg/mod.py", "home/ci/repo/pkg/mod.py")]


def test_pair_files_ambiguous_suffix_stays_unpaired() -> None:
    pairs = pair_files(["util.py"], ["a/util.py", "b/util.py"])
    assert FilePair("util.py", "util.py", None) in pairs
    assert len(pairs) == 3


def test_pair_files_lone_outlier_rewrite_rejected() -> None:
    original = ["ci/a/x.py", "ci/a/y.py", "ci/a/z.py", "tools/util.py"]
    subset = ["run/b/x.py", "run/b/y.py", "run/b/z.py", "scripts/util.py"]
    pairs = {pair.original: pair.subset for pair in pair_files(original, subset)}
    assert pairs["ci/a/x.py"] == "run/b/x.py"
    assert pairs["ci/a/z.py"] == "run/b/z.py"
    assert pairs["tools/util.py"] is None


def test_pair_files_many_same_file_names() -> None:
    original = [f"ci/a/pkg{i}/__init__.py" for i in range(50)]
    subset = [f"run/b/pkg{i}/__init__.py" for i in range(50)]
    pairs = pair_files(original, subset)
    assert len(pairs) == 50
    for pair in pairs:
        assert pair.original is not None
        assert pair.subset == pair.original.replace("ci/a/", "run/b/")
        assert pair.key == pair.original.removeprefix("ci/a/")
