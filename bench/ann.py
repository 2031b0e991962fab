"""Dense search at scale on synthetic vectors: azchat's IVF index beside exact flat search, same run.

    python bench/ann.py [--sizes 100000,1000000] [--dim 384] [--queries 200]

Vectors are normalized points around topic centres (like embeddings of notes on many subjects; uniform
random vectors have no neighbours worth finding). Queries are other noisy points near the data. For each
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

from azchat import dense  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def synthetic(n: int, dim: int, centres: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centres, dim)).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    step = 100_000
    for start in range(0, n, step):
        m = min(step, n - start)
        block = c[rng.integers(0, centres, m)] + rng.normal(scale=0.6, size=(m, dim)).astype(np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start:start + m] = block
    return out


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
        vecs = synthetic(n, args.dim, centres=max(50, n // 200), seed=n)
        rng = np.random.default_rng(7)
        q = vecs[rng.choice(n, args.queries, replace=False)]
        q = q + rng.normal(scale=0.5 / np.sqrt(args.dim), size=q.shape).astype(np.float32)
        q /= np.linalg.norm(q, axis=1, keepdims=True)

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
