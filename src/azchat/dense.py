"""The dense side of the index: a FAISS inner-product index over normalized vectors."""
from __future__ import annotations

from pathlib import Path

import numpy as np

FLAT = "flat"


def choose_kind(n_vectors: int) -> str:
    """Which FAISS index a build of this size gets (recorded in the manifest)."""
    return FLAT


def build(vectors: np.ndarray, kind: str):
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = vectors.shape[1]
    index = faiss.IndexFlatIP(dim)
    if len(vectors):
        index.add(vectors)
    return index


def write(index, path: Path) -> None:
    import faiss

    faiss.write_index(index, str(path))


def read(path: Path):
    import faiss

    return faiss.read_index(str(path))


def search(index, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (ids, scores) for one normalized query; `allowed` restricts to those chunk ids."""
    import faiss

    k = min(k, index.ntotal)
    if k <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
    if allowed is not None:
        if len(allowed) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64)))
        scores, ids = index.search(q, min(k, len(allowed)), params=params)
    else:
        scores, ids = index.search(q, k)
    keep = ids[0] >= 0
    return ids[0][keep], scores[0][keep]
