"""What the index checksums cost: opening an index with and without verifying every file's sha256.

    python bench/index_integrity.py [--vault ../shared/corpus/ms-azure-docs] [--repeat 5]

Builds the vault once with a fake 384-dimensional embedder (file sizes match the bundled model's; the model
itself does not matter for this measurement), then times load_generation() + opening FAISS and BM25 (what
Retriever does) on the same index: baseline = the manifest without checksums, checked = with them.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from azchat import build_index  # noqa: E402
from azchat.index import dense  # noqa: E402
from azchat.index.embedding import HashEmbedder  # noqa: E402
from azchat.index.lexical import LexicalIndex  # noqa: E402
from azchat.index.store import current_folder, load_generation  # noqa: E402


def open_index(index: Path) -> int:
    gen = load_generation(index)
    LexicalIndex.load(gen.folder / "bm25", len(gen.chunks))
    dense.read(gen.folder / "dense.faiss")
    return len(gen.chunks)


def timed(index: Path, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        open_index(index)
        out.append(time.perf_counter() - t)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vault", default=str(ROOT.parent / "shared" / "corpus" / "ms-azure-docs"))
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    if not Path(args.vault).is_dir():
        print(f"vault {args.vault} not found; skipping")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        checked, plain = Path(tmp) / "checked", Path(tmp) / "plain"
        t = time.perf_counter()
        stats = build_index(args.vault, checked, embedder=HashEmbedder(dim=384))
        build_s = time.perf_counter() - t
        shutil.copytree(checked, plain)
        folder = current_folder(plain)
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest.pop("sha256")
        (folder / "manifest.json").write_text(json.dumps(manifest))
        (plain / "CURRENT").write_text(folder.name + "\n")
        size = sum(p.stat().st_size for p in current_folder(checked).rglob("*") if p.is_file())
        open_index(checked), open_index(plain)          # warm the page cache for both
        a, b = timed(plain, args.repeat), timed(checked, args.repeat)
    print(f"{stats.notes} notes, {stats.chunks} chunks, index files {size / 1e6:.1f} MB; build {build_s:.1f}s")
    print()
    print("| open index (load_generation + FAISS + BM25) | median (s) | min (s) |")
    print("|---------------------------------------------|------------|---------|")
    print(f"| baseline: sizes only                        | {statistics.median(a):10.3f} | {min(a):7.3f} |")
    print(f"| checked: sizes + sha256 of every file       | {statistics.median(b):10.3f} | {min(b):7.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
