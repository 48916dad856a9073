"""Features of tables with free-text columns.

Each text column is turned into TF-IDF weights of its words and word pairs,
fitted on the original, then reduced by truncated SVD (latent semantic analysis)
to at most ``TEXT_COMPONENTS`` dimensions and scaled to unit length. The other
columns keep the table encoding. Two unrelated texts lie about as far apart as
two rows that differ in one standardised column. So each text block is scaled
by the square root of the number of other encoded columns, and a text column
weighs as much as the rest of the row. Near-duplicate texts come out of the
same feature distance as every other near-duplicate.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from app.errors import InputError
from app.evaluation.features import TableFeaturiser, column_kind
from app.evaluation.readers import suggest
from app.evaluation.validation import listing
from app.policy import Policy

logger = logging.getLogger(__name__)

TEXT_COMPONENTS = 32
MAX_TERMS = 50_000


def text_columns(policy: Policy) -> list[str]:
    """Return the policy's ``text_column`` and ``text_columns``, each once."""
    names = [policy.text_column] if policy.text_column else []
    return list(dict.fromkeys([*names, *policy.text_columns]))


def validate_text_columns(
    names: Sequence[str], original: pd.DataFrame, scenario_columns: Sequence[str]
) -> None:
    """Reject text columns that the original lacks, or that are not text.

    Raises:
        InputError: a column is missing, numeric, or also a scenario column.
    """
    available = [str(column) for column in original.columns]
    for name in names:
        if name not in set(original.columns):
            raise InputError(
                f"policy text column {name!r} not found in original; available "
                f"columns: {listing(available)}{suggest(name, available)}",
                field="policy.text_column",
                value=name,
            )
        if name in set(scenario_columns):
            raise InputError(
                f"policy text column {name!r} is also a scenario column; free text "
                "rarely repeats, so remove it from scenario_columns",
                field="policy.text_column",
                value=name,
            )
        values = original[name]
        if not bool(values.isna().all()) and column_kind(values) != "categorical":
            raise InputError(
                f"policy text column {name!r} contains {values.dtype} values, not "
                "text; name a column of strings, or leave it out of text_column",
                field="policy.text_column",
                value=name,
            )


@dataclass(frozen=True)
class _TextBlock:
    column: str
    vectoriser: TfidfVectorizer | None
    svd: TruncatedSVD | None
    width: int
    terms: int


class TextTableFeaturiser:
    """Latent-semantic text features followed by the table encoding of the rest."""

    def __init__(self, columns: Sequence[str]) -> None:
        self._columns = list(columns)
        self._table = TableFeaturiser(skip=self._columns)
        self._blocks: list[_TextBlock] = []
        self._weight = 1.0

    @property
    def width(self) -> int:
        return self._table.width + sum(block.width for block in self._blocks)

    def fit(self, frame: pd.DataFrame, rows: np.ndarray) -> None:
        self._table.fit(frame, rows)
        described = self._table.describe()
        encoded = len(described["numeric"]) + len(described["categorical"])
        self._weight = float(np.sqrt(max(1, encoded)))
        self._blocks = [
            _fit_block(column, _texts(frame, column, rows)) for column in self._columns
        ]

    def transform(
        self, frame: pd.DataFrame, rows: np.ndarray | None = None
    ) -> np.ndarray:
        parts = [self._table.transform(frame, rows)]
        for block in self._blocks:
            if block.vectoriser is None or block.svd is None:
                continue
            weights = block.vectoriser.transform(_texts(frame, block.column, rows))
            reduced = normalize(block.svd.transform(weights))
            parts.append((reduced * self._weight).astype(np.float32))
        return np.ascontiguousarray(np.hstack(parts), dtype=np.float32)

    def describe(self) -> dict[str, Any]:
        described = self._table.describe()
        described["text"] = [
            {
                "column": block.column,
                "method": "TF-IDF of words and word pairs, truncated SVD, unit length",
                "terms": block.terms,
                "components": block.width,
                "weight": self._weight,
            }
            for block in self._blocks
        ]
        return described


def _texts(frame: pd.DataFrame, column: str, rows: np.ndarray | None) -> list[str]:
    values = frame[column] if rows is None else frame[column].iloc[rows]
    return [str(value) for value in values.fillna("")]


def _fit_block(column: str, texts: list[str]) -> _TextBlock:
    vectoriser = TfidfVectorizer(
        ngram_range=(1, 2), sublinear_tf=True, max_features=MAX_TERMS
    )
    try:
        weights = vectoriser.fit_transform(texts)
    except ValueError as exc:
        # Raised when no text contains a word, such as a column of blanks.
        logger.info("text_column_without_words column=%s error=%s", column, exc)
        return _TextBlock(column, None, None, 0, 0)
    terms = weights.shape[1]
    components = min(TEXT_COMPONENTS, terms - 1, len(texts) - 1)
    if components < 1:
        return _TextBlock(column, None, None, 0, terms)
    svd = TruncatedSVD(n_components=components, random_state=0)
    svd.fit(weights)
    return _TextBlock(column, vectoriser, svd, components, terms)
