"""Tests for edge cases: isolation forest and LOF ranks on the cleaned original."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_wine

from app.evaluation.data_gate import evaluate_data
from app.evaluation.edges import edge_flags, fit_edges
from app.policy import Policy


def blob_with_outliers(rows: int = 400) -> np.ndarray:
    rng = np.random.default_rng(0)
    points = rng.normal(size=(rows, 3)).astype(np.float32)
    points[:8] = rng.normal(size=(8, 3)).astype(np.float32) * 0.5 + 12.0
    return points


def test_fit_edges_flags_far_rows() -> None:
    model = fit_edges(blob_with_outliers())
    assert model is not None
    assert not model.sampled
    flags = model.fit_flags
    assert flags[:8].all()
    assert flags.sum() == 20


def test_fit_edges_needs_twenty_rows() -> None:
    assert fit_edges(blob_with_outliers()[:19]) is None


def test_edge_flags_score_new_rows() -> None:
    points = blob_with_outliers()
    model = fit_edges(points)
    assert model is not None
    new = np.array([[20.0, -20.0, 0.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    rows = np.concatenate([points[:2], new])
    cleaned = np.array([0, 1, -1, -1])
    assert edge_flags(model, rows, cleaned).tolist() == [True, True, True, False]


def test_fit_edges_samples_large_originals() -> None:
    rng = np.random.default_rng(1)
    points = rng.normal(size=(6_000, 2)).astype(np.float32)
    model = fit_edges(points)
    assert model is not None
    assert model.sampled
    assert len(model.fit_rows) == 5_000
    flags = edge_flags(model, points, np.arange(len(points)))
    assert flags.mean() == pytest.approx(0.05, abs=0.01)


def test_edge_flags_equal_full_scoring() -> None:
    # New rows skip the outlier factor when their forest rank rules them out.
    # The flags must still equal those of scoring every row with both detectors.
    rng = np.random.default_rng(2)
    points = rng.standard_t(3, size=(7_000, 4)).astype(np.float32)
    model = fit_edges(points)
    assert model is not None
    forest_unusual = -model.forest.score_samples(points)
    lof_unusual = -model.lof.score_samples(points)
    fitted = len(model.fit_rows)
    ranks = np.searchsorted(model.forest_reference, forest_unusual, side="right")
    ranks += np.searchsorted(model.lof_reference, lof_unusual, side="right")
    expected = ranks / (2.0 * fitted) > model.threshold
    flags = edge_flags(model, points, np.full(len(points), -1))
    assert flags.tolist() == expected.tolist()
    assert 0.02 < flags.mean() < 0.10


def central_wine(count: int) -> pd.DataFrame:
    wine = load_wine(as_frame=True).frame
    features = wine.drop(columns="target")
    scaled = (features - features.median()) / features.std()
    distance = np.sqrt((scaled**2).sum(axis=1))
    return wine.loc[distance.nsmallest(count).index]


def test_edge_share_gated_fails_gate() -> None:
    wine = load_wine(as_frame=True).frame
    policy = Policy(min_coverage=0.0, edge_case_gated=True)
    evaluation = evaluate_data(wine, central_wine(60), policy=policy)
    edge = next(c for c in evaluation.checks if c.name == "edge_case_share")
    assert edge.status == "failed"
    assert not edge.advisory
    assert evaluation.status == "failed"
    assert evaluation.details["edge_cases"]["gated"] is True


def test_edge_share_reports_retention() -> None:
    wine = load_wine(as_frame=True).frame
    evaluation = evaluate_data(wine, wine, policy=Policy())
    metrics = evaluation.metrics
    assert metrics["edge_rows_original"] == 9
    assert metrics["edge_rows_kept"] == 9
    assert metrics["edge_retention"] == 1.0
    assert evaluation.details["edge_cases"]["rule"] == (
        "top 5% of cleaned original rows by the mean rank of isolation-forest and "
        "local-outlier-factor scores"
    )
