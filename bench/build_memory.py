"""Peak memory of a full `build_index` over a large folder, with a fast fake embedder (the embedding itself is
not what is measured), for the code in --src and optionally a baseline checkout in the same run.

    python bench/build_memory.py --notes /tmp/azscale/msdocs-notes [--baseline-src DIR] [--runs 2] [--json OUT]

Each build runs in a fresh process (ru_maxrss is the process's peak RSS) into a fresh temp index; the model is a
HashEmbedder of MiniLM's size (384 dimensions, 256 tokens), so chunks are cut as the real model cuts them
roughly and the vectors take the real space.
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
CHILD = """
import json, resource, sys, time
from pathlib import Path
from azchat.index.embedding import HashEmbedder
from azchat import build_index
t0 = time.perf_counter()
stats = build_index(sys.argv[1], sys.argv[2], embedder=HashEmbedder(dim=384, max_tokens=256), full=True,
                    log=lambda *a: None)
print(json.dumps({"wall_s": round(time.perf_counter() - t0, 2), "chunks": stats.chunks, "notes": stats.notes,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}))
"""


def one(src: Path, notes: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="azbm-") as tmp:
        env = dict(os.environ, PYTHONPATH=str(src), HF_HUB_OFFLINE="1")
        out = subprocess.run([sys.executable, "-c", CHILD, notes, str(Path(tmp) / "index")], env=env,
                             capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--notes", required=True)
    ap.add_argument("--src", default=str(REPO / "src"))
    ap.add_argument("--baseline-src")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--json")
    a = ap.parse_args()
    codes = [("this", Path(a.src))] + ([("baseline", Path(a.baseline_src))] if a.baseline_src else [])
    rows = []
    for run in range(a.runs):
        for name, src in codes:          # interleaved: machine load hits both alike
            r = {"code": name, "run": run + 1, **one(src, a.notes), "load": round(os.getloadavg()[0], 1)}
            rows.append(r)
            print(json.dumps(r), flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
