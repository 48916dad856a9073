"""Exact nearest-neighbour searches that skip clusters too far away to matter.

Every point lies within its cluster's radius R_c of the centre c, so by the
triangle inequality a point of cluster c is at least d(q, c) - R_c from a query
q. The queries of one cluster are first searched against that cluster's own
points, which bounds their k-th neighbour distance r. Only clusters with
d(q, c) - R_c <= r for some query of the group can hold a closer point, and
only those are searched. Within them, a point p is also at least
|d(q, c) - d(p, c)| from q, so only the shell of points whose distance to the
centre is within r of some query's is read. The results are the ones ``nearest`` and
``neighbours`` return, but on clustered data the search reads a small share of
the points. When the clusters to search hold more than half the points, the
group is searched in full instead, so data without clusters costs about what a
full search costs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.evaluation.clusters import Partition
from app.evaluation.neighbours import (
    TILE_POINTS,
    WORKING_BYTES,
    TopK,
    chunk_rows,
    exact_distances,
    gathered_tile,
    nearest,
    nearest_scan,
    neighbours,
    parallel_map,
    row_distances,
    squared_norms,
)
from app.evaluation.progress import SILENT, Progress

# Share of the points above which a group of queries is searched in full.
FULL_SEARCH_SHARE = 0.5
# Below this many queries per cluster on average, and up to this many query
# and point pairs, every query is searched in full. For 1,000 queries in 158
# clusters of 50,000 rows, the search took 0.26 to 0.31 s with pruning and 0.18
# to 0.19 s in full. In 224 clusters of 100,000 rows both took 0.36 s, and in
# 256 clusters of 1,000,000 rows pruning took 1.7 s against 3.0 s in full.
MIN_QUERIES_PER_CLUSTER = 16
SMALL_SEARCH_PAIRS = 2**26
MAX_GROUP_ROWS = 2_048
# Slack on the pruning bound. float32 products misplace distances by far less
# than 1%, so no cluster that contains a true neighbour is skipped.
RELATIVE_SLACK = 1e-2
ABSOLUTE_SLACK = 1e-4


def cluster_neighbours(
    points: np.ndarray,
    rows: np.ndarray,
    k: int,
    partition: Partition,
    *,
    progress: Progress = SILENT,
) -> tuple[np.ndarray, np.ndarray]:
    """Find the ``k`` nearest other points of the points at positions ``rows``.

    ``partition`` clusters ``points``: ``labels[i]`` is the cluster of point i
    and ``distances[i]`` its distance to that cluster's centre. Returns what
    ``neighbours(points, rows, k)`` returns: distances and indices of shape
    ``(len(rows), k)``, nearest first, each distance recomputed from the two
    rows. Ties between equally distant points may resolve to other indices.

    Raises:
        ValueError: ``k`` is not between 1 and ``len(points) - 1``.
    """
    if not 1 <= k < len(points):
        raise ValueError(f"k must be between 1 and {len(points) - 1}, got {k}")
    few = len(rows) < MIN_QUERIES_PER_CLUSTER * partition.n_clusters
    if few and len(rows) * len(points) <= SMALL_SEARCH_PAIRS:
        # Each group copies the points of its candidate clusters. For a few
        # queries per cluster that copy can cost more than a small full search.
        return neighbours(points, rows, k, progress=progress)

    search = _Search(points, partition, k)
    groups = _groups(partition.labels[rows], partition.n_clusters)
    distances = np.empty((len(rows), k), dtype=np.float32)
    indices = np.empty((len(rows), k), dtype=np.int64)
    full: list[np.ndarray] = []

    def run(group: int) -> tuple[np.ndarray, np.ndarray] | None:
        return search.group(rows[groups[group]])

    for number, found in enumerate(parallel_map(run, range(len(groups)))):
        positions = groups[number]
        if found is None:
            full.append(positions)
        else:
            distances[positions], indices[positions] = found
        progress.part(number + 1, len(groups))
    if full:
        positions = np.concatenate(full)
        distances[positions], indices[positions] = neighbours(
            points, rows[positions], k
        )
    return exact_distances(points[rows], points, indices)


def cluster_nearest(
    queries: np.ndarray,
    query_labels: np.ndarray,
    points: np.ndarray,
    partition: Partition,
    *,
    progress: Progress = SILENT,
) -> tuple[np.ndarray, np.ndarray]:
    """Find the nearest point of every query row, as ``nearest`` does.

    ``partition`` clusters ``points`` and ``query_labels[i]`` is the cluster of
    the centre nearest to ``queries[i]``. Returns the float32 distances and
    the int64 point indices. Ties go to the lowest point index.
    """
    search = _Search(points, partition, 1)
    distance = np.empty(len(queries), dtype=np.float32)
    index = np.empty(len(queries), dtype=np.int64)
    groups = _groups(query_labels, partition.n_clusters)
    searched = np.ones(len(queries), dtype=bool)

    def run(group: int) -> tuple[np.ndarray, np.ndarray] | None:
        positions = groups[group]
        block = queries[positions]
        found = search.nearest_group(block, int(query_labels[positions[0]]))
        if found is None:
            return None
        return row_distances(block, points[found]), found

    for number, result in enumerate(parallel_map(run, range(len(groups)))):
        if result is None:
            searched[groups[number]] = False
        else:
            distance[groups[number]], index[groups[number]] = result
        progress.part(number + 1, len(groups))
    if not searched.all():
        rest = np.flatnonzero(~searched)
        distance[rest], index[rest] = nearest(queries[rest], points)
    return distance, index


def _groups(labels: np.ndarray, clusters: int) -> list[np.ndarray]:
    """Return the positions of each cluster's labels, in groups of at most 2,048.

    Clusters without a label get no group. A group's search copies its rows
    several times, and the cap bounds those copies.
    """
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(clusters + 1))
    return [
        order[start : min(start + MAX_GROUP_ROWS, bounds[c + 1])]
        for c in range(clusters)
        for start in range(bounds[c], bounds[c + 1], MAX_GROUP_ROWS)
    ]


@dataclass
class _Shells:
    """The clusters to search and, per cluster, the range of member distances."""

    needed: np.ndarray
    low: np.ndarray
    high: np.ndarray


class _Search:
    """The partition's members by cluster, and each cluster's radius."""

    def __init__(self, points: np.ndarray, partition: Partition, k: int) -> None:
        self.points = points
        self.norms = squared_norms(points)
        self.k = k
        self.centres = partition.centres.astype(np.float64)
        self.labels = partition.labels
        # Members by cluster, and within a cluster by distance to the centre.
        self.members = np.lexsort((partition.distances, partition.labels))
        self.bounds = np.searchsorted(
            partition.labels[self.members], np.arange(partition.n_clusters + 1)
        )
        self.sizes = np.diff(self.bounds)
        self.radius = np.zeros(partition.n_clusters, dtype=np.float64)
        np.maximum.at(self.radius, partition.labels, partition.distances)
        # One increasing key per member: its cluster times a span wider than
        # any radius, plus its distance, so one binary search finds a shell.
        self.span = float(self.radius.max()) + 1.0
        self.keys = partition.labels[self.members] * self.span
        self.keys += partition.distances[self.members].astype(np.float64)

    def group(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Find the neighbours of the points ``rows``, all of one cluster.

        Returns None when the clusters to search contain too many points, so the
        caller searches them in full.
        """
        cluster = int(self.labels[rows[0]])
        own = self._cluster_members(cluster)
        # Each query is a member of its own cluster; that entry must be skipped.
        position = np.searchsorted(own, rows)
        width = self._tile_width(len(rows))
        top = TopK(self.points[rows], position, self.k, width)
        self._scan(top, own, 0, width)
        reach = self._kth_distance(top) * (1.0 + RELATIVE_SLACK) + ABSOLUTE_SLACK
        shells = self._reachable(self.points[rows], reach)
        shells.needed[cluster] = False
        others = self._shell_members(shells)
        if len(own) + len(others) > FULL_SEARCH_SHARE * len(self.points):
            return None
        self._scan(top, others, len(own), width)
        found_distances, found = top.result()
        candidates = np.concatenate([own, others])
        return found_distances, candidates[found]

    def nearest_group(self, queries: np.ndarray, cluster: int) -> np.ndarray | None:
        """Return the index of each query's nearest point.

        Every query's nearest centre is ``cluster``. Returns None when the
        clusters to search contain too many points, so the caller searches them
        in full.
        """
        own = self._cluster_members(cluster)
        if len(own) == 0:
            return None
        closest = own[nearest_scan(queries, self.points[own], self.norms[own])]
        reach = row_distances(queries, self.points[closest]).astype(np.float64)
        reach = reach * (1.0 + RELATIVE_SLACK) + ABSOLUTE_SLACK
        shells = self._reachable(queries, reach)
        shells.needed[cluster] = False
        # One scan over the candidates in index order keeps ties on the lowest.
        candidates = np.sort(np.concatenate([own, self._shell_members(shells)]))
        if len(candidates) > FULL_SEARCH_SHARE * len(self.points):
            return None
        found = nearest_scan(queries, self.points[candidates], self.norms[candidates])
        return np.asarray(candidates[found])

    def _cluster_members(self, cluster: int) -> np.ndarray:
        members = self.members[self.bounds[cluster] : self.bounds[cluster + 1]]
        # Sorted, so a query's own position can be found by binary search.
        return np.sort(members)

    def _tile_width(self, queries: int) -> int:
        """Return the points per tile for a group of ``queries``.

        A group of few queries scans wider tiles, so that fewer merges are
        needed. A tile and the queries' scores against it stay within the
        working memory, and a tile is never narrower than ``TILE_POINTS``.
        """
        tile_bytes = 4 * (int(self.points.shape[1]) + 1)
        score_bytes = 5 * queries
        return max(TILE_POINTS, WORKING_BYTES // (tile_bytes + score_bytes))

    def _scan(self, top: TopK, candidates: np.ndarray, offset: int, width: int) -> None:
        # Each tile is gathered on its own, so no copy of all the candidates is
        # made.
        for first in range(0, len(candidates), width):
            rows = candidates[first : first + width]
            top.update(gathered_tile(self.points, self.norms, rows), offset + first)

    def _kth_distance(self, top: TopK) -> np.ndarray:
        distances, _ = top.result()
        return distances[:, -1].astype(np.float64)

    def _reachable(self, queries: np.ndarray, reach: np.ndarray) -> _Shells:
        """Find the clusters and shells that may contain a point within ``reach``.

        A point p of cluster c lies at least d(q, c) - R_c and at least
        |d(q, c) - d(p, c)| from a query q. So only clusters with
        d(q, c) - R_c <= reach for some query can hold such a point, and in
        them only points whose own distance to the centre lies within
        d(q, c) -/+ reach of some query. The queries go in blocks, because
        each block makes float64 arrays of its rows by the clusters.
        """
        clusters = len(self.radius)
        shells = _Shells(
            needed=np.zeros(clusters, dtype=bool),
            low=np.full(clusters, np.inf),
            high=np.full(clusters, -np.inf),
        )
        step = chunk_rows(4 * clusters)
        for start in range(0, len(queries), step):
            distances = self._centre_distances(queries[start : start + step])
            block_reach = reach[start : start + step, None]
            shells.needed |= (distances - self.radius <= block_reach).any(axis=0)
            np.minimum(
                shells.low, (distances - block_reach).min(axis=0), out=shells.low
            )
            np.maximum(
                shells.high, (distances + block_reach).max(axis=0), out=shells.high
            )
        shells.needed &= self.sizes > 0
        return shells

    def _shell_members(self, shells: _Shells) -> np.ndarray:
        """Return the members of the needed clusters that lie in their shells."""
        clusters = np.flatnonzero(shells.needed)
        offsets = clusters * self.span
        # The slack covers float32 rounding of the members' distances to their
        # centre, which is far below 1e-4 of the cluster's radius.
        slack = 1e-4 * self.radius[clusters] + ABSOLUTE_SLACK
        low = offsets + shells.low[clusters] - slack
        high = offsets + shells.high[clusters] + slack
        first = np.maximum(np.searchsorted(self.keys, low), self.bounds[clusters])
        last = np.searchsorted(self.keys, high, side="right")
        last = np.minimum(last, self.bounds[clusters + 1])
        lengths = np.maximum(last - first, 0)
        starts = np.repeat(first - np.cumsum(lengths) + lengths, lengths)
        return np.asarray(self.members[starts + np.arange(int(lengths.sum()))])

    def _centre_distances(self, queries: np.ndarray) -> np.ndarray:
        queries = queries.astype(np.float64)
        squared = (
            np.einsum("ij,ij->i", queries, queries)[:, None]
            + np.einsum("ij,ij->i", self.centres, self.centres)[None, :]
            - 2.0 * (queries @ self.centres.T)
        )
        return np.asarray(np.sqrt(np.maximum(squared, 0.0)))
