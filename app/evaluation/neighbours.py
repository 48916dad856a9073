"""Chunked nearest-neighbour searches on float32 feature rows.

Distances are Euclidean. Candidates are ranked from float32 matrix products in
blocks of at most 2 MB per thread, so memory stays flat however many rows there
are. The blocks run on one thread per available core, each with a single-threaded
BLAS.
The distance of each reported nearest point is then recomputed directly from
the two rows, so two identical pairs of rows always get the same distance.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
from threadpoolctl import ThreadpoolController

from app.evaluation.progress import SILENT, Progress

WORKING_BYTES = 2 * 2**20
MIN_CHUNK, MAX_CHUNK = 16, 4096
# Points per tile. A tile of the point side stays in the processor cache while
# a block of queries streams past it, which keeps the products near full speed.
TILE_POINTS = 1024
MAX_WORKERS = 8
_DENSE_ROWS = 64

Result = TypeVar("Result")


def chunk_rows(columns: int) -> int:
    """Return how many rows of a float32 block of ``columns`` fit the working memory."""
    rows = WORKING_BYTES // (4 * max(columns, 1))
    return int(min(max(rows, MIN_CHUNK), MAX_CHUNK))


def block_rows(count: int, columns: int) -> int:
    """Return the rows per block: as many as fit, but at least one block per core."""
    per_core = -(-count // workers())
    return min(chunk_rows(columns), max(per_core, MIN_CHUNK))


def workers() -> int:
    """Return the number of cores this process may run on, at most 8."""
    return max(1, min(len(os.sched_getaffinity(0)), MAX_WORKERS))


def parallel_map(
    function: Callable[[int], Result], items: Iterable[int]
) -> Iterator[Result]:
    """Apply ``function`` to ``items`` on one thread per core, results in order.

    numpy releases the interpreter lock in matrix products and array loops, so
    the threads run in parallel. BLAS is held to one thread meanwhile, so the
    cores are not oversubscribed. A single item runs on the calling thread,
    also with one BLAS thread: the blocks are too small for threaded BLAS to
    gain, and on a busy machine its threads wait on each other.
    """
    listed = list(items)
    count = min(workers(), len(listed))
    with _blas_libraries().limit(limits=1, user_api="blas"):
        if count <= 1:
            yield from map(function, listed)
            return
        with ThreadPoolExecutor(count) as pool:
            yield from pool.map(function, listed)


@functools.cache
def _blas_libraries() -> ThreadpoolController:
    """Find the loaded BLAS libraries once, numpy's among them.

    ``threadpool_limits`` searches the process's libraries on every call, which
    took 2.4 ms, and a gate makes dozens of calls.
    """
    return ThreadpoolController()


def row_distances(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Return the Euclidean distance between each row of ``first`` and ``second``."""
    difference = first - second
    squared = np.einsum("ij,ij->i", difference, difference)
    return np.asarray(np.sqrt(squared), dtype=np.float32)


def squared_norms(points: np.ndarray) -> np.ndarray:
    return np.asarray(np.einsum("ij,ij->i", points, points))


def augmented_tile(points: np.ndarray, norms: np.ndarray, first: int) -> np.ndarray:
    """Return ``[-2p, |p|^2]`` for the tile of points starting at ``first``.

    Its product with ``[q, 1]`` is ``|p|^2 - 2 q.p``, which ranks points by
    distance to q as ``|q - p|^2`` does without the constant ``|q|^2``.
    """
    tile = points[first : first + TILE_POINTS]
    augmented = np.empty((len(tile), tile.shape[1] + 1), dtype=np.float32)
    np.multiply(tile, -2.0, out=augmented[:, :-1])
    augmented[:, -1] = norms[first : first + len(tile)]
    return augmented


def gathered_tile(
    points: np.ndarray, norms: np.ndarray, rows: np.ndarray
) -> np.ndarray:
    """Return ``[-2p, |p|^2]`` for the points at positions ``rows``, in one copy."""
    augmented = np.empty((len(rows), points.shape[1] + 1), dtype=np.float32)
    # "clip" lets take write into the strided column slice without a buffer.
    np.take(points, rows, axis=0, out=augmented[:, :-1], mode="clip")
    augmented[:, :-1] *= -2.0
    augmented[:, -1] = norms[rows]
    return augmented


def with_ones(queries: np.ndarray) -> np.ndarray:
    block = np.ones((len(queries), queries.shape[1] + 1), dtype=np.float32)
    block[:, :-1] = queries
    return block


def nearest(
    queries: np.ndarray,
    points: np.ndarray,
    *,
    own: np.ndarray | None = None,
    progress: Progress = SILENT,
) -> tuple[np.ndarray, np.ndarray]:
    """Find the nearest point of every query row.

    Returns the float32 distances and the int64 point indices, both of length
    ``len(queries)``. Ties go to the lowest point index. With ``own``, query i
    is the point at position ``own[i]``, which is skipped. Costs one
    ``len(queries) x len(points)`` matrix product in tiles.
    """
    count = len(queries)
    norms = squared_norms(points)
    step = block_rows(count, min(TILE_POINTS, len(points)))
    distance = np.empty(count, dtype=np.float32)
    index = np.empty(count, dtype=np.int64)

    def search(start: int) -> None:
        rows = queries[start : start + step]
        skipped = None if own is None else own[start : start + step]
        found = nearest_scan(rows, points, norms, skipped)
        index[start : start + len(rows)] = found
        distance[start : start + len(rows)] = row_distances(rows, points[found])

    starts = range(0, count, step)
    for done, _ in enumerate(parallel_map(search, starts)):
        progress.part(done + 1, len(starts))
    return distance, index


def nearest_scan(
    rows: np.ndarray,
    points: np.ndarray,
    norms: np.ndarray,
    own: np.ndarray | None = None,
) -> np.ndarray:
    """Return the index of the nearest point of each row, on the calling thread.

    ``norms`` are the squared norms of ``points``. Ties go to the lowest index.
    With ``own``, row i is the point at position ``own[i]``, which is skipped.
    The rows are scanned in blocks that fit the working memory.
    """
    step = chunk_rows(min(TILE_POINTS, len(points)))
    if len(rows) <= step:
        return _nearest_block(rows, points, norms, own)
    parts = [
        _nearest_block(
            rows[start : start + step],
            points,
            norms,
            None if own is None else own[start : start + step],
        )
        for start in range(0, len(rows), step)
    ]
    return np.concatenate(parts)


def _nearest_block(
    rows: np.ndarray,
    points: np.ndarray,
    norms: np.ndarray,
    own: np.ndarray | None,
) -> np.ndarray:
    block = with_ones(rows)
    best = np.full(len(rows), np.inf, dtype=np.float32)
    found = np.zeros(len(rows), dtype=np.int64)
    # One buffer per block: a fresh array per tile would cost page faults.
    buffer = np.empty((len(rows), min(TILE_POINTS, len(points))), np.float32)
    for first in range(0, len(points), TILE_POINTS):
        tile = augmented_tile(points, norms, first)
        scores = buffer[:, : len(tile)]
        np.matmul(block, tile.T, out=scores)
        if own is not None:
            skip_own(scores, own, first)
        column = scores.argmin(axis=1)
        value = scores[np.arange(len(rows)), column]
        better = value < best
        best[better] = value[better]
        found[better] = column[better] + first
    return found


def neighbours(
    points: np.ndarray, rows: np.ndarray, k: int, *, progress: Progress = SILENT
) -> tuple[np.ndarray, np.ndarray]:
    """Find the ``k`` nearest other points of the points at positions ``rows``.

    Returns distances and indices of shape ``(len(rows), k)``, nearest first. A
    point is never its own neighbour, but an identical copy of it can be, at
    distance 0. The float32 products only rank the candidates: every returned
    distance is recomputed directly from the two rows.

    Raises:
        ValueError: ``k`` is not between 1 and ``len(points) - 1``.
    """
    if not 1 <= k < len(points):
        raise ValueError(f"k must be between 1 and {len(points) - 1}, got {k}")
    if k == 1:
        # One neighbour needs no merge of candidates, only a minimum per
        # tile: 0.048 s against 0.066 s for 1,000 of 50,000 rows.
        _, found = nearest(points[rows], points, own=rows, progress=progress)
        return exact_distances(points[rows], points, found[:, None])

    norms = squared_norms(points)
    step = block_rows(len(rows), min(TILE_POINTS, len(points)))
    distances = np.empty((len(rows), k), dtype=np.float32)
    indices = np.empty((len(rows), k), dtype=np.int64)

    def search(start: int) -> None:
        batch = rows[start : start + step]
        top = TopK(points[batch], batch, k, min(TILE_POINTS, len(points)))
        for first in range(0, len(points), TILE_POINTS):
            top.update(augmented_tile(points, norms, first), first)
        found_distances, found = top.result()
        distances[start : start + len(batch)] = found_distances
        indices[start : start + len(batch)] = found

    starts = range(0, len(rows), step)
    for done, _ in enumerate(parallel_map(search, starts)):
        progress.part(done + 1, len(starts))
    return exact_distances(points[rows], points, indices)


def exact_distances(
    queries: np.ndarray, points: np.ndarray, indices: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Recompute each query's neighbour distances from the rows and sort them.

    ``indices[i]`` are the points found for ``queries[i]``. Returns the
    distances and the indices, nearest first, equal distances in the order
    they were found.
    """
    distances = np.empty(indices.shape, dtype=np.float32)
    # Column by column, so no (rows, k, columns) array is built.
    for column in range(indices.shape[1]):
        distances[:, column] = row_distances(queries, points[indices[:, column]])
    order = np.argsort(distances, axis=1, kind="stable")
    return (
        np.take_along_axis(distances, order, axis=1),
        np.take_along_axis(indices, order, axis=1),
    )


def skip_own(scores: np.ndarray, own: np.ndarray, first: int) -> None:
    """Set score[i, own[i] - first] to infinity where ``own[i]`` is in the tile.

    ``scores`` contains the rows' scores against the tile of points that starts
    at ``first``.
    """
    mine = np.flatnonzero((own >= first) & (own < first + scores.shape[1]))
    scores[mine, own[mine] - first] = np.inf


class TopK:
    """The k best scores of a block of queries, merged tile by tile.

    ``own[i]`` is the position of query i among the points, which is skipped,
    and ``width`` the most points a tile passed to ``update`` contains.
    """

    def __init__(
        self, queries: np.ndarray, own: np.ndarray, k: int, width: int
    ) -> None:
        self.block = with_ones(queries)
        self.squared = squared_norms(queries)
        self.own = own
        self.k = k
        self.scores = np.full((len(queries), k), np.inf, dtype=np.float32)
        self.index = np.full((len(queries), k), -1, dtype=np.int64)
        self.buffer = np.empty((len(queries), width), dtype=np.float32)
        self.passing = np.empty((len(queries), width), dtype=bool)

    def update(self, tile: np.ndarray, first: int) -> None:
        scores = self.buffer[:, : len(tile)]
        np.matmul(self.block, tile.T, out=scores)
        skip_own(scores, self.own, first)
        # Most entries of later tiles lose to the k-th best so far. Only those
        # that beat it are merged, so the work stays near one pass.
        threshold = self.scores.max(axis=1)
        passing = self.passing[:, : len(tile)]
        np.less(scores, threshold[:, None], out=passing)
        if np.count_nonzero(passing) > self.k * len(scores):
            self._merge_dense(scores, first)
            return
        # A flat search is several times faster than np.nonzero on 2-D input.
        flat = np.flatnonzero(passing)
        if len(flat):
            rows, columns = np.divmod(flat, scores.shape[1])
            self._merge_sparse(rows, columns + first, scores.ravel()[flat])

    def _merge_dense(self, scores: np.ndarray, first: int) -> None:
        # Row slices keep the int64 output of argpartition small.
        for start in range(0, len(scores), _DENSE_ROWS):
            rows = slice(start, start + _DENSE_ROWS)
            block = scores[rows]
            if block.shape[1] > self.k:
                part = np.argpartition(block, self.k - 1, axis=1)[:, : self.k]
            else:
                part = np.broadcast_to(np.arange(block.shape[1]), block.shape)
            values = np.take_along_axis(block, part, axis=1)
            all_scores = np.hstack([self.scores[rows], values])
            all_index = np.hstack([self.index[rows], part + first])
            keep = np.argpartition(all_scores, self.k - 1, axis=1)[:, : self.k]
            self.scores[rows] = np.take_along_axis(all_scores, keep, axis=1)
            self.index[rows] = np.take_along_axis(all_index, keep, axis=1)

    def _merge_sparse(
        self, rows: np.ndarray, index: np.ndarray, scores: np.ndarray
    ) -> None:
        touched = np.unique(rows)
        all_rows = np.concatenate([np.repeat(touched, self.k), rows])
        all_scores = np.concatenate([self.scores[touched].ravel(), scores])
        all_index = np.concatenate([self.index[touched].ravel(), index])
        order = np.lexsort((all_scores, all_rows))
        starts = np.searchsorted(all_rows[order], touched)
        take = order[starts[:, None] + np.arange(self.k)]
        self.scores[touched] = all_scores[take]
        self.index[touched] = all_index[take]

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(self.scores, axis=1, kind="stable")
        scores = np.take_along_axis(self.scores, order, axis=1)
        index = np.take_along_axis(self.index, order, axis=1)
        squared = np.maximum(scores + self.squared[:, None], 0.0)
        return np.sqrt(squared).astype(np.float32), index
