"""Dense search at scale on synthetic vectors: azchat's IVF index beside exact flat search, same run.

    python bench/ann.py [--sizes 100000,1000000] [--dim 384] [--queries 200]

Vectors are normalized points in three levels, subjects > topics > chunks (see synthetic()); queries are
new points drawn the same way. For each
size: build time, query p50/p95 (one query at a time, as a Retriever asks), recall@10 vs exact, memory.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from azchat.index import dense  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def synthetic(n: int, dim: int, seed: int, queries: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalized vectors in three levels (subjects > topics > chunks), like notes on many subjects, and
    queries drawn the same way (near a topic, not copies of a chunk). Neighbourhoods overlap across topics,
    so an approximate index has real work to do; uniform random vectors have no neighbours worth finding."""
    rng = np.random.default_rng(seed)
    subjects = rng.normal(size=(max(20, n // 5000), dim)).astype(np.float32)
    topics = subjects[rng.integers(0, len(subjects), max(50, n // 50))]
    topics = topics + 0.8 * rng.normal(size=topics.shape).astype(np.float32)

    def draw(m: int) -> np.ndarray:
        block = topics[rng.integers(0, len(topics), m)] + 1.4 * rng.normal(size=(m, dim)).astype(np.float32)
        return block / np.linalg.norm(block, axis=1, keepdims=True)

    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        out[start:start + m] = draw(m)
    return out, np.ascontiguousarray(draw(queries))


def timings(index, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, list[float]]:
    ids, times = [], []
    for q in queries:
        t = time.perf_counter()
        got, _ = dense.search(index, q, k)
        times.append(time.perf_counter() - t)
        ids.append(np.pad(got, (0, k - len(got)), constant_values=-1))
    return np.array(ids), times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()
    import faiss

    print(f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {os.cpu_count()} CPUs, faiss {faiss.__version__}, "
          f"{args.dim}-dim float32, {args.queries} single queries, threshold {dense.ANN_THRESHOLD}\n")
    print("| chunks | kind (params) | build s | p50 ms | p95 ms | recall@10 | index MB | "
          "exact flat p50 / p95 ms | flat build s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in [int(s) for s in args.sizes.split(",")]:
        vecs, q = synthetic(n, args.dim, seed=n, queries=args.queries)

        t = time.perf_counter()
        flat, _ = dense.build(vecs, dense.FLAT)
        flat_build = time.perf_counter() - t
        truth, flat_t = timings(flat, q)
        del flat

        kind = dense.choose_kind(n)
        before = rss_mb()
        t = time.perf_counter()
        index, params = dense.build(vecs, kind)
        build_s = time.perf_counter() - t
        index_mb = rss_mb() - before
        got, ann_t = timings(index, q)
        recall = dense.recall_at(truth, got)
        ms = lambda xs, p: float(np.percentile(np.array(xs) * 1000, p))  # noqa: E731
        shown = ", ".join(f"{k}={v}" for k, v in params.items() if k != "target_recall")
        print(f"| {n:,} | {shown} | {build_s:.1f} | {ms(ann_t, 50):.2f} | {ms(ann_t, 95):.2f} | {recall:.3f} | "
              f"{index_mb:.0f} | {ms(flat_t, 50):.1f} / {ms(flat_t, 95):.1f} | {flat_build:.1f} |", flush=True)
        del index, vecs
    print(f"\npeak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
