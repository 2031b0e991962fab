"""The dense side of the index: a FAISS inner-product index over normalized vectors.

Up to ANN_THRESHOLD chunks the index is exact (flat). From there on it is an inverted file (IVF):
vectors are bucketed around k-means centroids and a query scans only the `nprobe` nearest buckets.
Both keep the vectors as float16 (FAISS's scalar quantizer, QT_fp16), as the store keeps vectors.npy: half the
disk and page cache of float32, and the same rankings to four decimals on SciFact and every question set
(bench/vector_types.py); an index written with float32 codes (IndexFlatIP / IVF-Flat) is still read.
nprobe is tuned at build time until recall@10 against exact search on a sample of the index's own vectors
reaches TARGET_RECALL; the kind and its parameters are recorded in the manifest ("dense").
"""
from __future__ import annotations

import math
import threading
from pathlib import Path

import numpy as np

FLAT = "flat"
IVF = "ivf"
ANN_THRESHOLD = 50_000      # chunks; AZCHAT_ANN_THRESHOLD overrides (see indexing.dense_threshold)
TARGET_RECALL = 0.98
CODES = "float16"           # how the FAISS index stores each vector (recorded in the manifest's "dense")

# One query is too little work to share: OpenMP threads only wait on each other (and on a loaded machine for
# a core). Single-threaded: 0.3 ms instead of 24 ms p50 for 20k flat vectors under load. The thread count is
# set to 1 once in each thread that searches and never restored: saving and restoring it around every search
# races when the runtime keeps one count for the whole process (two overlapping searches leave it wrong, or
# run one on all threads). Builds run in their own threads (indexer, rebuild, watcher) and keep their threads.
_searching = threading.local()


def _one_thread() -> None:
    if not getattr(_searching, "single", False):
        import faiss

        faiss.omp_set_num_threads(1)
        _searching.single = True


def choose_kind(n_vectors: int, threshold: int = ANN_THRESHOLD) -> str:
    """Which FAISS index a build of this size gets (recorded in the manifest)."""
    return IVF if n_vectors >= max(threshold, 1) else FLAT


def _nlist(n: int) -> int:
    """Buckets: about sqrt(n), so a bucket holds about sqrt(n) vectors; at least 8."""
    return int(max(8, min(4096, 2 ** round(math.log2(max(math.sqrt(n), 8))))))


BLOCK = 8_192      # rows of a memory-mapped input read at a time (12 MB of 384-dim float32)


def _blocks(vectors: np.ndarray):
    """(start, float32 block) over the rows; a memory-mapped input's pages are let go after each block, so
    the process does not hold the whole file resident (its RSS stays at the index being built)."""
    for start in range(0, len(vectors), BLOCK):
        yield start, np.ascontiguousarray(vectors[start:start + BLOCK], dtype=np.float32)
        release(vectors)


def release(array) -> None:
    """Drop a memory-mapped array's resident pages (they stay in the page cache); no-op for other arrays."""
    import mmap

    mm = getattr(array, "_mmap", None) if isinstance(array, np.memmap) else None
    if mm is not None and hasattr(mm, "madvise"):
        mm.madvise(mmap.MADV_DONTNEED)


def build(vectors: np.ndarray, kind: str, seed: int = 0):
    """The FAISS index for these vectors and the parameters to record: (index, {"kind": ..., ...}).
    `vectors` may be memory-mapped: it is then read in blocks, never whole."""
    if not isinstance(vectors, np.memmap):
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = vectors.shape[1]
    n = len(vectors)
    if kind == FLAT or n == 0:
        index = _flat(dim)
        for _, block in _blocks(vectors):
            index.add(block)
        return index, {"kind": FLAT, "codes": CODES}
    index, rng = trained_ivf(vectors, seed)
    for _, block in _blocks(vectors):
        index.add(block)
    nprobe, recall = tune_nprobe(index, vectors, rng)
    index.nprobe = nprobe
    return index, ivf_params(index, nprobe, recall)


def trained_ivf(vectors: np.ndarray, seed: int = 0):
    """(an empty IVF index trained on a sample of the vectors, the random generator after the sample)."""
    import faiss

    n, dim = vectors.shape
    nlist = min(_nlist(n), max(1, n // 39))
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, faiss.ScalarQuantizer.QT_fp16,
                                          faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(seed)
    train = vectors if n <= 64 * nlist else _rows(vectors, np.sort(rng.choice(n, 64 * nlist, replace=False)))
    index.cp.seed = seed
    index.train(np.ascontiguousarray(train, dtype=np.float32))
    del train
    release(vectors)
    return index, rng


def _rows(vectors: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """vectors[rows] (rows sorted); from a memory-mapped input a block at a time, its pages let go after each."""
    if not isinstance(vectors, np.memmap):
        return vectors[rows]
    out = np.empty((len(rows), vectors.shape[1]), dtype=np.float32)
    for start, block in _blocks(vectors):
        lo, hi = np.searchsorted(rows, [start, start + len(block)])
        out[lo:hi] = block[rows[lo:hi] - start]
    return out


def ivf_params(index, nprobe: int, recall: float) -> dict:
    return {"kind": IVF, "codes": CODES, "nlist": index.nlist, "nprobe": nprobe, "recall_at_10": round(recall, 4),
            "target_recall": TARGET_RECALL}


def _flat(dim: int):
    """The exact index build() makes: every vector's float16 codes, scanned whole."""
    import faiss

    return faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)


def write_flat(vectors: np.ndarray, path: Path) -> bool:
    """Write build(vectors, FLAT)'s index to path a block at a time, never holding every vector: faiss's own
    file layout (an empty index's bytes with the row count and the codes' size set, then each row's codes as
    faiss encodes them), checked against faiss.serialize_index on two rows first. False (nothing written)
    when faiss lays the file out otherwise."""
    import faiss

    n, dim = vectors.shape
    empty = faiss.serialize_index(_flat(dim)).tobytes()
    probe = np.arange(2 * dim, dtype=np.float32).reshape(2, dim) / (2 * dim)
    one, two = _flat(dim), _flat(dim)
    one.add(probe[:1])
    two.add(probe)
    unit = int.from_bytes(faiss.serialize_index(one).tobytes()[len(empty) - 8:len(empty)], "little")

    def header(rows: int) -> bytes:
        head = bytearray(empty)
        head[8:16], head[-8:] = np.int64(rows).tobytes(), np.uint64(rows * unit).tobytes()
        return bytes(head)

    codes = _flat(dim)
    if len(empty) < 24 or empty[8:16] != bytes(8) or empty[-8:] != bytes(8) or \
            faiss.serialize_index(two).tobytes() != header(2) + codes.sa_encode(probe).tobytes():
        return False
    with open(path, "wb") as fh:
        fh.write(header(n))
        for _, block in _blocks(vectors):
            fh.write(memoryview(codes.sa_encode(block)).cast("B"))
    return True


def tune_nprobe(index, vectors: np.ndarray, rng, queries: int = 200, k: int = 10) -> tuple[int, float]:
    """The smallest power-of-two nprobe whose recall@k vs exact search reaches TARGET_RECALL.

    Queries are sampled index vectors with a little noise (a query is near, not on, its best chunks).
    """
    q, truth = tuning_queries(vectors, rng, queries, k)

    def found(nprobe: int) -> np.ndarray:
        index.nprobe = nprobe
        return index.search(q, truth.shape[1])[1]
    return pick_nprobe(truth, found, index.nlist)


def tuning_queries(vectors: np.ndarray, rng, queries: int = 200, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(queries, their exact top-k ids) for tune_nprobe."""
    n, dim = vectors.shape
    pick = rng.choice(n, min(queries, n), replace=False)
    q = vectors[pick] + rng.normal(0, 0.5 / math.sqrt(dim), (len(pick), dim)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    q = np.ascontiguousarray(q, dtype=np.float32)
    return q, exact_top(vectors, q, min(k, n))


def probes(nlist: int) -> list[int]:
    """The nprobe values tried, in order: 1, 2, 4, ... up to nlist."""
    out = [1]
    while out[-1] < nlist:
        out.append(min(out[-1] * 2, nlist))
    return out


def pick_nprobe(truth: np.ndarray, found, nlist: int) -> tuple[int, float]:
    """The first of probes(nlist) whose results found(nprobe) reach TARGET_RECALL (or nlist), and its recall."""
    for nprobe in probes(nlist):
        recall = recall_at(truth, found(nprobe))
        if recall >= TARGET_RECALL or nprobe >= nlist:
            return nprobe, recall
    raise AssertionError("unreachable")


def exact_top(vectors: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    """Ids of the k best inner products of each query over all vectors, read in blocks (no second copy of the
    vectors, as an exact FAISS index would make)."""
    import faiss

    best_s = np.full((len(q), k), -np.inf, dtype=np.float32)
    best_i = np.full((len(q), k), -1, dtype=np.int64)
    for start, block in _blocks(vectors):
        exact = faiss.IndexFlatIP(q.shape[1])
        exact.add(block)
        s, i = exact.search(q, min(k, len(block)))
        s = np.concatenate([best_s, s], axis=1)
        i = np.concatenate([best_i, i + start], axis=1)
        top = np.argsort(-s, axis=1, kind="stable")[:, :k]
        best_s, best_i = np.take_along_axis(s, top, 1), np.take_along_axis(i, top, 1)
    return best_i


def recall_at(truth: np.ndarray, got: np.ndarray) -> float:
    """Mean share of the exact top-k found in the approximate top-k."""
    hits = sum(len(set(t[t >= 0]) & set(g[g >= 0])) for t, g in zip(truth, got))
    total = sum(int((t >= 0).sum()) for t in truth)
    return hits / total if total else 1.0


def write(index, path: Path) -> None:
    import faiss

    faiss.write_index(index, str(path))


def read(path: Path, kind: str | None = None):
    """The index memory-mapped, not read: IVF lists with IO_FLAG_MMAP, a flat index's vectors with
    IO_FLAG_MMAP_IFC (pages are read when a search touches them and shared by every process through the page
    cache). kind: the manifest's "dense" kind; None reads the file into memory."""
    import faiss

    if kind == IVF:
        return faiss.read_index(str(path), faiss.IO_FLAG_MMAP)
    if kind == FLAT and hasattr(faiss, "IO_FLAG_MMAP_IFC"):
        return faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC)
    return faiss.read_index(str(path))


def search(index, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (ids, scores) for one normalized query; `allowed` restricts to those chunk ids.

    With a filter, an IVF index probes every bucket, so the filtered search stays exact.
    """
    import faiss

    if hasattr(index, "base_live"):          # a base + segment view (segments.py)
        return index.search(query, min(k, index.ntotal), allowed)
    k = min(k, index.ntotal)
    if k <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
    if allowed is not None and len(allowed) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    params = None
    if allowed is not None:
        sel = faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64))
        if hasattr(index, "nlist"):
            params = faiss.SearchParametersIVF(sel=sel, nprobe=index.nlist)
        else:
            params = faiss.SearchParameters(sel=sel)
        k = min(k, len(allowed))
    _one_thread()
    scores, ids = index.search(q, k, params=params) if params is not None else index.search(q, k)
    keep = ids[0] >= 0
    return ids[0][keep], scores[0][keep]
