"""The IVF index of a full build (dense.build(vectors, IVF)'s file) written from its memory-mapped vectors without
holding the inverted lists: the vectors are assigned to lists a block at a time (8 bytes a chunk), nprobe is tuned
on one small IVF index per block whose results are merged, and the file is written list by list in faiss's own
layout (the trained index's bytes, the list sizes, then each list's codes, as faiss encodes them, and ids), checked
first against faiss.serialize_index of the same index filled by faiss with the first rows."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from . import dense

GROUP = 2048                   # rows encoded and written at a time


def _assign(index, vectors: np.ndarray) -> np.ndarray:
    """Each vector's list, as index.add assigns it (the quantizer, a block at a time)."""
    labels = np.empty(len(vectors), dtype=np.int64)
    for start, block in dense._blocks(vectors):
        labels[start:start + len(block)] = index.quantizer.assign(block, 1).reshape(-1)
    return labels


def _tune(index, vectors: np.ndarray, labels: np.ndarray, rng) -> tuple[int, float]:
    """dense.tune_nprobe's answer, the index searched a block of vectors at a time (top-k merged per nprobe)."""
    import faiss

    q, truth = dense.tuning_queries(vectors, rng)
    k, tried = truth.shape[1], dense.probes(index.nlist)
    best = {p: (np.full((len(q), k), -np.inf, dtype=np.float32), np.full((len(q), k), -1, dtype=np.int64))
            for p in tried}
    for start, block in dense._blocks(vectors):
        part = faiss.clone_index(index)
        ids = np.arange(start, start + len(block), dtype=np.int64)
        own = np.ascontiguousarray(labels[start:start + len(block)])
        part.add_core(len(block), faiss.swig_ptr(block), faiss.swig_ptr(ids), faiss.swig_ptr(own))
        for p in tried:
            part.nprobe = p
            s, i = part.search(q, k)
            s, i = np.concatenate([best[p][0], s], axis=1), np.concatenate([best[p][1], i], axis=1)
            top = np.argsort(-s, axis=1, kind="stable")[:, :k]
            best[p] = (np.take_along_axis(s, top, 1), np.take_along_axis(i, top, 1))
        del part
    return dense.pick_nprobe(truth, lambda p: best[p][1], index.nlist)


def _write(fh, index, vectors: np.ndarray, labels: np.ndarray, gather=None) -> bool:
    """The file faiss writes for `index` (empty, trained) with `vectors` added; False when its empty file does
    not end as expected (no inverted lists written, sparse and empty)."""
    import faiss

    empty, tail = faiss.serialize_index(index).tobytes(), b"sprs" + bytes(8)
    if index.ntotal or not empty.endswith(tail):
        return False
    n, nlist = len(vectors), index.nlist
    head = bytearray(empty[:-len(tail)])
    head[8:16] = np.int64(n).tobytes()
    sizes = np.bincount(labels, minlength=nlist).astype(np.uint64)
    filled = np.flatnonzero(sizes)
    if len(filled) > nlist // 2:
        kind, listed = b"full", sizes
    else:
        kind, listed = b"sprs", np.column_stack([filled, sizes[filled]]).astype(np.uint64).reshape(-1)
    fh.write(bytes(head) + kind + np.uint64(len(listed)).tobytes() + listed.tobytes())
    order = np.argsort(labels, kind="stable")          # by list, then id
    ends = np.cumsum(sizes.astype(np.int64))
    first = 0
    while first < nlist:       # whole lists, about GROUP rows at a time (scattered rows: a page each, let go)
        lo = int(ends[first - 1]) if first else 0
        last = max(int(np.searchsorted(ends, lo + GROUP, side="right")), first + 1)
        rows = order[lo:int(ends[last - 1])]
        x = gather(rows) if gather is not None else np.ascontiguousarray(vectors[rows], dtype=np.float32)
        codes = np.zeros((len(rows), index.code_size), dtype=np.uint8)
        own = np.ascontiguousarray(labels[rows])
        index.encode_vectors(len(rows), faiss.swig_ptr(x), faiss.swig_ptr(own), faiss.swig_ptr(codes), False)
        at = 0
        for size in sizes[first:last].tolist():
            if size:
                fh.write(memoryview(codes[at:at + size]).cast("B"))
                fh.write(memoryview(np.ascontiguousarray(rows[at:at + size], dtype=np.int64)).cast("B"))
                at += size
        dense.release(vectors)
        first = last
    return True


def write_ivf(vectors: np.ndarray, path: Path, seed: int = 0, gather=None) -> dict | None:
    """Write dense.build(vectors, IVF)'s index to path; returns the parameters it records, or None (nothing
    written) when faiss lays the file out otherwise than checked. gather(rows) -> vectors[rows], for the lists'
    scattered rows (VectorFile.gather: read without mapping the file)."""
    import faiss

    index, rng = dense.trained_ivf(vectors, seed)
    labels = _assign(index, vectors)
    nprobe, recall = _tune(index, vectors, labels, rng)
    index.nprobe = nprobe
    for rows in (64, 8 * index.nlist):           # few lists filled (a sparse list table), then most (a full one)
        probe = np.ascontiguousarray(vectors[:rows], dtype=np.float32)
        filled, ours = faiss.clone_index(index), io.BytesIO()
        filled.add(probe)
        if not _write(ours, index, probe, _assign(index, probe)) or \
                ours.getvalue() != faiss.serialize_index(filled).tobytes():
            return None
    with open(path, "wb") as fh:
        _write(fh, index, vectors, labels, gather)
    return dense.ivf_params(index, nprobe, recall)
