"""One-note update time with a fast fake embedder, for the code on PYTHONPATH (run it once per code, interleaved):

    PYTHONPATH=SRC python bench/one_note_update.py NOTES [EDITS]

Copies NOTES to a temp folder, builds it in full with a HashEmbedder of MiniLM's size, then appends a sentence to
a mid-sized note EDITS times (default 7), timing each `build_index` in this process (imports excluded). Prints
one JSON line: the median and every update's seconds, whether the updates wrote a segment or rewrote the index.
"""
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

t0 = time.perf_counter()
from azchat import build_index                                   # noqa: E402
from azchat.index.embedding import HashEmbedder                  # noqa: E402
from azchat.index.store import read_manifest                     # noqa: E402

imported = time.perf_counter() - t0
src, edits = Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 7
tmp = Path(tempfile.mkdtemp(prefix="az1n-"))
try:
    notes = tmp / "notes"
    shutil.copytree(src, notes)
    emb = HashEmbedder(dim=384, max_tokens=256)
    build_index(notes, tmp / "index", embedder=emb, full=True, log=lambda *a: None)
    candidates = sorted(notes.rglob("*.md"), key=lambda p: (p.stat().st_size, str(p)))
    path = candidates[len(candidates) // 2]
    times = []
    for i in range(edits):
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"\nBenchmark edit {i}: one more sentence about peering and private endpoints.\n")
        t = time.perf_counter()
        stats = build_index(notes, tmp / "index", embedder=emb, log=lambda *a: None)
        times.append(time.perf_counter() - t)
        assert stats.updated == 1
    kind = "segment" if read_manifest(tmp / "index").get("base") else "rewrite"
    print(json.dumps({"import_s": round(imported, 3), "update_median_s": round(statistics.median(times), 4),
                      "updates": [round(x, 4) for x in times], "kind": kind, "chunks": stats.chunks}))
finally:
    shutil.rmtree(tmp)
