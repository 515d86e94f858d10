"""Global deduplication over all candidates, in input order: exact, then near.

Memory model: only hashes are held, never texts: per candidate document
16 bytes (exact hash) + 8 bytes x bands (LSH band hashes; 160 B at 20 bands),
plus sort scratch of the same order. ~1.3M ja_wiki documents -> ~0.3 GB.

- Exact: documents whose normalized text has the same 128-bit XXH3 hash; the
  first in input order stays.
- Near: documents sharing any LSH band hash (MinHash of char n-grams, b bands of
  r rows) are linked; each connected component keeps its first document in
  input order (deterministic whatever the worker count), the rest are
  ``duplicate_near``. Candidates are not re-verified by Jaccard: with r=10 a pair
  at Jaccard 0.5 is linked with probability 1-(1-0.5^10)^20 ~ 2%.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

KEEP = 0
DUP_EXACT = 1
DUP_NEAR = 2


def exact_duplicates(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(is_duplicate mask, index of the kept copy) for an (N, 2) uint64 array in input order."""
    n = hashes.shape[0]
    if n == 0:
        return np.zeros(0, dtype=bool), np.zeros(0, dtype=np.int64)
    order = np.lexsort((hashes[:, 1], hashes[:, 0]))  # stable: equal hashes stay in input order
    hs = hashes[order]
    same = np.all(hs[1:] == hs[:-1], axis=1)
    group_start = np.concatenate(([0], np.flatnonzero(~same) + 1))
    group_of = np.repeat(np.arange(group_start.size), np.diff(np.concatenate((group_start, [n]))))
    keeper_sorted = order[group_start][group_of]
    keeper = np.empty(n, dtype=np.int64)
    keeper[order] = keeper_sorted
    return keeper != np.arange(n), keeper


def near_duplicates(bands: np.ndarray, active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(is_duplicate mask, index of the kept copy) among ``active`` rows of an (N, b) band-hash array."""
    n = bands.shape[0]
    keeper = np.arange(n)
    idx = np.flatnonzero(active)
    if idx.size < 2 or bands.shape[1] == 0:
        return np.zeros(n, dtype=bool), keeper
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    for j in range(bands.shape[1]):
        col = bands[idx, j]
        order = np.argsort(col, kind="stable")
        cs = col[order]
        same = cs[1:] == cs[:-1]
        if not same.any():
            continue
        # link each member of a run of equal band hashes to the run's first member
        run_start = np.maximum.accumulate(np.where(np.concatenate(([True], ~same)), np.arange(cs.size), 0))
        members = np.flatnonzero(np.concatenate(([False], same)))
        rows.append(order[run_start[members]])
        cols.append(order[members])
    if not rows:
        return np.zeros(n, dtype=bool), keeper
    r = np.concatenate(rows)
    c = np.concatenate(cols)
    graph = coo_matrix((np.ones(r.size, dtype=np.int8), (r, c)), shape=(idx.size, idx.size))
    _, label = connected_components(graph, directed=False)
    # first (lowest input index) member of each component stays
    first = np.full(label.max() + 1, idx.size, dtype=np.int64)
    np.minimum.at(first, label, np.arange(idx.size))
    local_keeper = first[label]
    keeper[idx] = idx[local_keeper]
    dup = np.zeros(n, dtype=bool)
    dup[idx] = local_keeper != np.arange(idx.size)
    return dup, keeper


def resolve(hashes: np.ndarray, bands: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Per candidate: decision (KEEP / DUP_EXACT / DUP_NEAR) and the index of the copy kept."""
    dup_exact, keeper = exact_duplicates(hashes)
    decision = np.where(dup_exact, DUP_EXACT, KEEP).astype(np.int8)
    if bands is not None and bands.size:
        dup_near, near_keeper = near_duplicates(bands, ~dup_exact)
        decision[dup_near] = DUP_NEAR
        keeper = np.where(dup_near, near_keeper, keeper)
    return decision, keeper
