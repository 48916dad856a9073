"""Optional PCA between the featuriser and the coverage measures.

``PCAFeaturiser`` wraps any featuriser: it fits PCA on the encoded rows of the
original and projects every row onto the kept components, so cleaning,
coverage, clusters and edge cases all work in the reduced space.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA

from app.evaluation.features import Featuriser

# Inputs wider than this use the randomized solver for a component count.
WIDE = 500


class PCAFeaturiser:
    """Projects another featuriser's vectors onto their principal components.

    ``components`` is a component count (int) or the fraction of the variance
    to keep (float in (0, 1)). PCA is left out when the original has fewer than
    two rows, or no more columns than the components requested, and
    ``describe`` states the reason.
    """

    def __init__(self, inner: Featuriser, components: int | float) -> None:
        self._inner = inner
        self._requested = components
        self._pca: PCA | None = None
        self._note = ""

    @property
    def width(self) -> int:
        if self._pca is None:
            return self._inner.width
        return int(self._pca.n_components_)

    def fit(self, frame: pd.DataFrame, rows: np.ndarray) -> None:
        self._inner.fit(frame, rows)
        self._pca, self._note = None, ""
        width = self._inner.width
        if len(rows) < 2 or width == 0:
            self._note = "not applied: fewer than 2 distinct rows or no features"
            return
        if isinstance(self._requested, int) and self._requested >= width:
            self._note = (
                f"not applied: the features have {width} columns, no more than "
                f"the {self._requested} components requested"
            )
            return
        points = self._inner.transform(frame, rows)
        pca = PCA(
            n_components=self._components(len(rows), width),
            **_solver(self._requested, len(rows), width),
        )
        pca.fit(points)
        self._pca = pca

    def transform(
        self, frame: pd.DataFrame, rows: np.ndarray | None = None
    ) -> np.ndarray:
        points = self._inner.transform(frame, rows)
        if self._pca is None:
            return points
        return np.ascontiguousarray(self._pca.transform(points), dtype=np.float32)

    def describe(self) -> dict[str, Any]:
        described = dict(self._inner.describe())
        described["pca"] = self.summary()
        return described

    def summary(self) -> dict[str, Any]:
        """Describe the reduction for the result: components, variance, solver."""
        if self._pca is None:
            return {"requested": self._requested, "applied": False, "note": self._note}
        kept = float(np.sum(self._pca.explained_variance_ratio_))
        return {
            "requested": self._requested,
            "applied": True,
            "input_width": self._inner.width,
            "components": int(self._pca.n_components_),
            "explained_variance": kept if np.isfinite(kept) else None,
            "solver": self._pca.svd_solver,
        }

    def _components(self, rows: int, width: int) -> int | float:
        if isinstance(self._requested, float):
            return self._requested
        return min(self._requested, rows, width)


def _solver(requested: int | float, rows: int, width: int) -> dict[str, Any]:
    """Choose the SVD solver: randomized for wide inputs, exact otherwise.

    The randomized solver cannot pick components by a variance fraction, so a
    fraction always uses an exact solver.
    """
    if isinstance(requested, int) and width > WIDE and requested < min(rows, width):
        return {"svd_solver": "randomized", "random_state": 0}
    if rows >= width:
        return {"svd_solver": "covariance_eigh"}
    return {"svd_solver": "full"}
