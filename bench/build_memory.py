"""Peak memory of a full `build_index` over a large folder, with a fast fake embedder (the embedding itself is
not what is measured), for the code in --src and optionally a baseline checkout in the same run.

    python bench/build_memory.py --notes /tmp/azscale/msdocs-notes [--baseline-src DIR] [--runs 2] [--json OUT]
    python bench/build_memory.py --merge --notes ... [--baseline-src DIR]    # the merge of a segmented index

--merge measures instead the update that merges a segmented index into a new base: a copy of the notes, a full
build and a one-note update (a base and a small segment; AZCHAT_SEGMENT_FROM=0) prepared once with --src's
code, then for each run and code a fresh copy of that index and of the notes with --edit more notes edited, so
that the update deletes more base rows than AZCHAT_SEGMENT_MAX_ROWS (--max-rows) allows: it merges. The child
checks that the old generation was base + segment and the new one is a base (a merge happened).

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


MERGE_CHILD = """
import json, os, resource, sys, time
from pathlib import Path
from azchat.index.embedding import HashEmbedder
from azchat.index.store import load_generation
from azchat import build_index
notes, index = Path(sys.argv[1]), Path(sys.argv[2])
assert load_generation(index).base is not None
for rel in sys.argv[3:]:
    (notes / rel).write_text((notes / rel).read_text(encoding="utf-8") + "\\n\\nedited for the merge\\n",
                             encoding="utf-8")
t0 = time.perf_counter()
stats = build_index(notes, index, embedder=HashEmbedder(dim=384, max_tokens=256), log=lambda *a: None)
wall, peak = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
assert load_generation(index).base is None, "no merge"
print(json.dumps({"wall_s": round(wall, 2), "chunks": stats.chunks, "notes": stats.notes,
                  "updated": stats.updated, "peak_rss_mb": peak}))
"""
PREPARE_CHILD = """
import json, sys
from pathlib import Path
from azchat.index.embedding import HashEmbedder
from azchat.index.store import load_generation
from azchat import build_index
notes, index, edit = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
fake = HashEmbedder(dim=384, max_tokens=256)
build_index(notes, index, embedder=fake, full=True)
gen = load_generation(index)
counts = {}
for c in gen.chunks:
    counts[c.path] = counts.get(c.path, 0) + 1
small = sorted(p for p, n in counts.items() if n == 2)
(notes / small[0]).write_text((notes / small[0]).read_text(encoding="utf-8") + "\\n\\nthe segment\\n",
                              encoding="utf-8")
build_index(notes, index, embedder=fake)
assert load_generation(index).base is not None
print(json.dumps({"edit": sorted(p for p, n in counts.items() if n >= 3)[:edit]}))
"""


def merge_runs(codes, notes: str, runs: int, edit: int, max_rows: int) -> list[dict]:
    """Each code's merging update, each in a fresh process on a fresh copy of the prepared index."""
    import shutil

    rows = []
    with tempfile.TemporaryDirectory(prefix="azmerge-") as tmp:
        tmp = Path(tmp)
        shutil.copytree(notes, tmp / "notes0")
        env = dict(os.environ, HF_HUB_OFFLINE="1", AZCHAT_SEGMENT_FROM="0", AZCHAT_SEGMENT_MAX_ROWS=str(max_rows))
        out = subprocess.run([sys.executable, "-c", PREPARE_CHILD, str(tmp / "notes0"), str(tmp / "index0"),
                              str(edit)], env=dict(env, PYTHONPATH=str(codes[0][1])), capture_output=True,
                             text=True, check=True).stdout
        edited = json.loads(out.strip().splitlines()[-1])["edit"]
        for run in range(runs):
            for name, src in codes:      # interleaved: machine load hits both alike
                for part in ("notes", "index"):
                    shutil.rmtree(tmp / part, ignore_errors=True)
                    shutil.copytree(tmp / f"{part}0", tmp / part)
                out = subprocess.run([sys.executable, "-c", MERGE_CHILD, str(tmp / "notes"), str(tmp / "index"),
                                      *edited], env=dict(env, PYTHONPATH=str(src)), capture_output=True,
                                     text=True, check=True).stdout
                r = {"code": name, "run": run + 1, "merge": True, **json.loads(out.strip().splitlines()[-1]),
                     "load": round(os.getloadavg()[0], 1)}
                rows.append(r)
                print(json.dumps(r), flush=True)
    return rows


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
    ap.add_argument("--merge", action="store_true", help="measure the update that merges a segmented index")
    ap.add_argument("--edit", type=int, default=8, help="--merge: notes edited by the merging update")
    ap.add_argument("--max-rows", type=int, default=10, help="--merge: AZCHAT_SEGMENT_MAX_ROWS")
    a = ap.parse_args()
    codes = [("this", Path(a.src))] + ([("baseline", Path(a.baseline_src))] if a.baseline_src else [])
    if a.merge:
        rows = merge_runs(codes, a.notes, a.runs, a.edit, a.max_rows)
        if a.json:
            Path(a.json).write_text(json.dumps(rows, indent=1))
        return
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
