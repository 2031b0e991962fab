"""Warm dense search with FAISS's thread count set to 1 once per searching thread (dense.search now) beside
the old save/set/restore around every search, same run, same index: one query at a time, and from several
threads at once.

    python bench/dense_threads.py [--n 20000] [--dim 384] [--queries 2000] [--threads 4]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from azchat.index import dense  # noqa: E402


def save_restore(index, query: np.ndarray, k: int):
    """The search as it was before the lock (baseline)."""
    import faiss

    q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        return index.search(q, min(k, index.ntotal))
    finally:
        faiss.omp_set_num_threads(threads)


def run(fn, index, queries, workers: int) -> list[float]:
    times: list[float] = []
    parts = np.array_split(queries, workers)

    def one(part):
        for q in part:
            t = time.perf_counter()
            fn(index, q, 10)
            times.append((time.perf_counter() - t) * 1000)

    ts = [threading.Thread(target=one, args=(p,)) for p in parts]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=4)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(a.n, a.dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    queries = rng.normal(size=(a.queries, a.dim)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    index, _ = dense.build(vecs, dense.FLAT)
    rows = []
    samples: dict = {}
    for _ in range(3):                        # alternate, so both see the same machine load
        for name, fn in (("save/set/restore (before)", save_restore), ("once per thread (dense.search)",
                                                                       dense.search)):
            for workers in (1, a.threads):
                samples.setdefault((name, workers), []).extend(run(fn, index, queries, workers))
    for (name, workers), ms in samples.items():
        rows.append((name, workers, statistics.median(ms), np.percentile(ms, 95)))
    print(f"flat index, {a.n} x {a.dim}, {3 * a.queries} queries per row (three alternating rounds)\n")
    print(f"| search | concurrent threads | p50 ms | p95 ms |\n|---|---|---|---|")
    for name, workers, p50, p95 in rows:
        print(f"| {name} | {workers} | {p50:.3f} | {p95:.3f} |")


if __name__ == "__main__":
    main()
