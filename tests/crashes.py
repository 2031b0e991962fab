"""Failures injected into a streamed build or merge (index/streaming.py, index/rewrite.py) at four points, and
the check that a failed build left no file of its own open. Shared by test_streaming.py and test_merge.py."""
from __future__ import annotations

import gc
import os
from pathlib import Path

from azchat.index import bm25_writer, dense, spool, store
from azchat.index.store import load_generation


def _third_call_fails(monkeypatch, owner, name: str) -> None:
    real, calls = getattr(owner, name), []

    def failing(*args):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        return real(*args)
    monkeypatch.setattr(owner, name, failing)


def writing_the_vector_file(monkeypatch) -> None:
    """While vectors go to the temp vector file (embedded ones, or old ones copied by a merge)."""
    _third_call_fails(monkeypatch, spool.VectorFile, "write")


def merging_bm25_runs(monkeypatch) -> None:
    """While BM25's runs, on disk and sorted, are merged token range by token range."""
    _third_call_fails(monkeypatch, bm25_writer._NpyOut, "write")


def encoding_vectors(monkeypatch) -> None:
    """While the vectors are read back a block at a time (copied into the generation, encoded into FAISS)."""
    real = dense._blocks

    def blocks(vectors):
        for n, block in enumerate(real(vectors)):
            if n == 2:
                raise OSError("disk full")
            yield block
    monkeypatch.setattr(dense, "_blocks", blocks)


def before_the_swap(monkeypatch) -> None:
    """Everything written, the manifest not yet."""
    real = store.fsync_file

    def fsync(path):
        if path.name == "manifest.json":
            raise OSError("disk full")
        real(path)
    monkeypatch.setattr(store, "fsync_file", fsync)


ALL = [writing_the_vector_file, merging_bm25_runs, encoding_vectors, before_the_swap]


def stray_open_files(index: Path) -> list[str]:
    """Files under the index this process still has open, other than the live generation's (and its base's),
    which are read, and the lock."""
    gc.collect()       # (a memory map of the vectors' temp file keeps a descriptor while the error's frames live)
    gen = load_generation(index)
    live = [str(g.folder) + "/" for g in (gen, gen.base) if g is not None]
    open_here = [os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
                 if os.path.exists(f"/proc/self/fd/{fd}")]
    return [f for f in open_here if f.startswith(f"{index}/") and not f.endswith("/.lock")
            and not any(f.startswith(folder) for folder in live)]
