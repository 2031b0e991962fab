"""Watch mode latency on a real vault: time from saving a note to the index answering from the new text.

    python bench/watch_latency.py [--vault ../shared/corpus/niclasedge-notes] [--edits 8] [--hash]

Copies the vault to a temp folder, builds the index (bundled model unless --hash), then for each edit
(modify, create, rename, delete in turn) measures
  baseline  an explicit build_index() right after the save (no watcher): the work itself
  watch     save -> Watcher's on_update (debounce 1 s + stability check + the same build)
and prints a table. The difference is the debounce window the watcher waits for a burst to settle.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from azchat import build_index  # noqa: E402
from azchat.index.watch import Watcher  # noqa: E402


def edit(vault: Path, i: int) -> str:
    """The i-th edit: modify, create, rename or delete a note. Returns what it did."""
    kind = ("modify", "create", "rename", "delete")[i % 4]
    target = vault / f"bench-note-{i // 4}.md"
    if kind == "modify":
        notes = sorted(p for p in vault.rglob("*.md")
                       if not any(part.startswith(".") for part in p.relative_to(vault).parts))
        note = notes[i * 7 % len(notes)]
        note.write_text(note.read_text(encoding="utf-8", errors="replace") + f"\n\nEdited paragraph {i} about "
                        "private endpoints and DNS zones in Azure virtual networks.\n", encoding="utf-8")
    elif kind == "create":
        target.write_text(f"# Bench note {i}\n\n## Section\n\nA new note {i} about storage account "
                          "redundancy and the archive tier.\n", encoding="utf-8")
    elif kind == "rename":
        target.rename(target.with_name(f"renamed-{target.name}"))
    else:
        target.with_name(f"renamed-{target.name}").unlink()
    return kind


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vault", default=str(ROOT.parent / "shared" / "corpus" / "niclasedge-notes"))
    ap.add_argument("--edits", type=int, default=8)
    ap.add_argument("--hash", action="store_true", help="fake embedder instead of the bundled model")
    args = ap.parse_args()
    src = Path(args.vault)
    if not src.is_dir():
        print(f"vault {src} not found; skipping")
        return 0
    if args.hash:
        from azchat.index.embedding import HashEmbedder

        embedder = HashEmbedder(dim=384)
    else:
        from azchat.index.embedding import load_embedder

        embedder = load_embedder()
    with tempfile.TemporaryDirectory() as tmp:
        vault, index = Path(tmp) / "vault", Path(tmp) / "index"
        shutil.copytree(src, vault, symlinks=True)
        t = time.perf_counter()
        first = build_index(vault, index, embedder=embedder)
        print(f"initial build: {first.notes} notes, {first.chunks} chunks in {time.perf_counter() - t:.1f}s "
              f"({embedder.name})")

        baseline: dict[str, list[float]] = {}
        for i in range(args.edits):
            kind = edit(vault, i)
            t = time.perf_counter()
            build_index(vault, index, embedder=embedder)
            baseline.setdefault(kind, []).append(time.perf_counter() - t)

        done = threading.Event()
        watched: dict[str, list[float]] = {}
        w = Watcher(vault, index, embedder=embedder, debounce=1.0, on_update=lambda s: done.set())
        w.start(initial_build=False)
        time.sleep(0.5)
        for i in range(args.edits, 2 * args.edits):
            done.clear()
            t = time.perf_counter()
            kind = edit(vault, i)
            if not done.wait(60):
                print(f"edit {i} ({kind}): no update within 60 s")
                return 1
            watched.setdefault(kind, []).append(time.perf_counter() - t)
            time.sleep(0.3)
        w.stop()

    print()
    print("| edit   | n | baseline build p50 (s) | watch save->update p50 (s) | watch max (s) |")
    print("|--------|---|------------------------|----------------------------|---------------|")
    for kind in ("modify", "create", "rename", "delete"):
        b, wv = baseline.get(kind, []), watched.get(kind, [])
        if b and wv:
            print(f"| {kind:<6} | {len(wv)} | {statistics.median(b):22.2f} | {statistics.median(wv):26.2f} | "
                  f"{max(wv):13.2f} |")
    allw = [v for vs in watched.values() for v in vs]
    allb = [v for vs in baseline.values() for v in vs]
    print(f"| all    | {len(allw)} | {statistics.median(allb):22.2f} | {statistics.median(allw):26.2f} | "
          f"{max(allw):13.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
