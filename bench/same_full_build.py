"""A full build of two codes gives the same index: every file of the live generation compared byte for byte (the
manifest's `built_at` aside), chunks, vectors (np.array_equal) and BM25 scores for a few queries.

    python bench/same_full_build.py --notes DIR --baseline-src /work/main/src [--src src] [--json OUT]

Each build runs in a fresh process with a HashEmbedder of MiniLM's size (384 dimensions, 256 tokens), `--full`,
into a fresh temp index; the environment is passed on (AZCHAT_ANN_THRESHOLD=10000 makes a small corpus IVF).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUILD = """
import sys
from azchat import build_index
from azchat.index.embedding import HashEmbedder
build_index(sys.argv[1], sys.argv[2], embedder=HashEmbedder(dim=384, max_tokens=256), full=True,
            log=lambda *a: None)
"""
QUERIES = ["docker compose volumes", "python virtual environment", "git rebase interactive",
           "kubernetes pod restart", "SQL join index", "storage account keys", "virtual network peering"]


def compare(a: Path, b: Path) -> dict:
    import numpy as np

    from azchat.index.lexical import LexicalIndex
    from azchat.index.store import current_folder, load_generation

    ga, gb = load_generation(a), load_generation(b)
    ca, cb = [c.to_dict() for c in ga.chunks], [c.to_dict() for c in gb.chunks]
    la, lb = LexicalIndex.load(ga.folder / "bm25", len(ca)), LexicalIndex.load(gb.folder / "bm25", len(cb))
    fa, fb = current_folder(a), current_folder(b)
    differ = [p.relative_to(fa).as_posix() for p in sorted(fa.rglob("*")) if p.is_file()
              and (not (fb / p.relative_to(fa)).is_file() or p.read_bytes() != (fb / p.relative_to(fa)).read_bytes())]
    ma, mb = (json.loads((f / "manifest.json").read_text(encoding="utf-8")) for f in (fa, fb))
    return {"chunks": len(ca), "chunks_equal": ca == cb,
            "vectors_equal": bool(np.array_equal(np.asarray(ga.vectors), np.asarray(gb.vectors))),
            "bm25_equal": all(np.array_equal(la.scores(q), lb.scores(q)) for q in QUERIES),
            "files_differing": differ, "manifest_keys_differing": sorted(k for k in set(ma) | set(mb)
                                                                         if ma.get(k) != mb.get(k)),
            "dense": ma.get("dense")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--notes", required=True)
    ap.add_argument("--src", default=str(REPO / "src"))
    ap.add_argument("--baseline-src", required=True)
    ap.add_argument("--json")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="azsame-") as tmp:
        for name, src in (("this", a.src), ("baseline", a.baseline_src)):
            env = dict(os.environ, PYTHONPATH=str(src), HF_HUB_OFFLINE="1")
            subprocess.run([sys.executable, "-c", BUILD, a.notes, str(Path(tmp) / name)], env=env, check=True)
        sys.path.insert(0, str(a.src))
        out = {"notes": a.notes, "ann_threshold": os.environ.get("AZCHAT_ANN_THRESHOLD"),
               **compare(Path(tmp) / "this", Path(tmp) / "baseline")}
    print(json.dumps(out))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
