"""Batch embedding throughput: the ONNX export (onnxruntime) beside sentence-transformers (torch), same process.

    python bench/throughput.py INDEX [--rounds 4] [--per-round 160]

INDEX is a built index with an ONNX export (e.g. the one bench/speed.py builds). Chunks are taken from it in
random order; the two embedders alternate round by round so machine load hits both alike.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from azchat.index.embedding import SentenceTransformerEmbedder  # noqa: E402
from azchat.index.models import resolve_model  # noqa: E402
from azchat.index.onnx_embedding import OnnxEmbedder, find_export  # noqa: E402
from azchat.index.store import load_generation  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("index", type=Path)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--per-round", type=int, default=160)
    args = ap.parse_args()
    gen = load_generation(args.index)
    texts = [c.embed_text for c in gen.chunks]
    order = np.random.default_rng(0).permutation(len(texts))
    info = resolve_model(gen.manifest["model"])
    folder = find_export(args.index, info)
    if folder is None:
        raise SystemExit(f"No ONNX export for {info.name} in {args.index}")
    sides = {"onnx": OnnxEmbedder(folder), "sentence-transformers": SentenceTransformerEmbedder(info)}
    for e in sides.values():
        e.embed(texts[:8])   # load both before timing
    spent = dict.fromkeys(sides, 0.0)
    done = 0
    for r in range(args.rounds):
        part = [texts[i] for i in order[(r * args.per_round) % len(texts):][:args.per_round]]
        names = list(sides) if r % 2 == 0 else list(sides)[::-1]
        for name in names:
            t = time.perf_counter()
            sides[name].embed(part)
            spent[name] += time.perf_counter() - t
        done += len(part)
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {done} chunks per side, batch 32, length-sorted\n")
    print("| embedder | chunks/s |\n|---|---|")
    for name, s in spent.items():
        print(f"| {name} | {done / s:.1f} |")
    print(f"\nonnx / sentence-transformers throughput: {spent['sentence-transformers'] / spent['onnx']:.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
