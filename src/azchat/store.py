"""The index on disk: generations of (manifest, chunk table, vectors, FAISS, BM25), swapped atomically.

    index/
      CURRENT          name of the live generation, replaced atomically (os.replace)
      .lock            held by the one indexer allowed at a time
      gen-<id>/        manifest.json, chunks.jsonl, vectors.npy, dense.faiss, bm25/
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import IndexCorruptError, IndexLockedError, IndexNotFoundError
from .types import Chunk

FORMAT_VERSION = 1
CURRENT = "CURRENT"


@dataclass
class Generation:
    """One complete, immutable index as loaded from disk."""

    folder: Path
    manifest: dict
    chunks: list[Chunk]
    vectors: np.ndarray
    extra: dict = field(default_factory=dict)


def current_folder(index_dir: Path) -> Path | None:
    pointer = Path(index_dir) / CURRENT
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise IndexCorruptError(f"Cannot read {pointer}: {exc}. Run `azchat index --full` to rebuild.") from exc
    folder = Path(index_dir) / name
    if not name.startswith("gen-") or "/" in name or not folder.is_dir():
        raise IndexCorruptError(
            f"The index at {index_dir} points to a missing generation ({name!r}). "
            "Run `azchat index --full` to rebuild it.")
    return folder


def read_manifest(index_dir: Path) -> dict | None:
    """The live manifest, or None when no index was built yet."""
    folder = current_folder(index_dir)
    if folder is None:
        return None
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(
            f"The index manifest in {folder} is unreadable ({exc}). Run `azchat index --full` to rebuild.") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION:
        raise IndexCorruptError(
            f"The index in {index_dir} has an unknown format. Run `azchat index --full` to rebuild it.")
    return manifest


def load_generation(index_dir: Path) -> Generation:
    """Open the live generation fully into memory, checking every file against the manifest."""
    index_dir = Path(index_dir)
    manifest = read_manifest(index_dir)
    if manifest is None:
        raise IndexNotFoundError(f"No index in {index_dir}. Run `azchat index` first.")
    folder = current_folder(index_dir)
    try:
        for name, size in manifest.get("files", {}).items():
            if (folder / name).stat().st_size != size:
                raise ValueError(f"{name} has the wrong size")
        chunks = []
        with open(folder / "chunks.jsonl", encoding="utf-8") as fh:
            for line in fh:
                chunks.append(Chunk.from_dict(json.loads(line)))
        vectors = np.load(folder / "vectors.npy", allow_pickle=False)
        if len(chunks) != manifest["chunk_count"] or vectors.shape != (len(chunks), manifest["dim"]):
            raise ValueError("chunk table and vectors disagree with the manifest")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IndexCorruptError(
            f"The index in {folder} is damaged ({exc}). Run `azchat index --full` to rebuild it.") from exc
    return Generation(folder, manifest, chunks, vectors)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_generation(index_dir: Path, manifest: dict, chunks: list[Chunk], vectors: np.ndarray,
                     writers: dict) -> Path:
    """Write a new generation beside the live one, then swap CURRENT to it in one rename.

    `writers` maps a file or folder name to a function(path) that writes it (FAISS, BM25).
    A crash at any point leaves the previous generation live.
    """
    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    name = f"gen-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:8]}"
    tmp = index_dir / f".tmp-{name}"
    tmp.mkdir()
    try:
        with open(tmp / "chunks.jsonl", "w", encoding="utf-8") as fh:
            for chunk in chunks:
                fh.write(json.dumps(chunk.to_dict(), ensure_ascii=False) + "\n")
        np.save(tmp / "vectors.npy", np.ascontiguousarray(vectors, dtype=np.float32), allow_pickle=False)
        for fname, write in writers.items():
            write(tmp / fname)
        files = {}
        for path in sorted(tmp.rglob("*")):
            if path.is_file():
                _fsync_file(path)
                files[path.relative_to(tmp).as_posix()] = path.stat().st_size
        manifest = {**manifest, "format": FORMAT_VERSION, "chunk_count": len(chunks), "files": files}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False), encoding="utf-8")
        _fsync_file(tmp / "manifest.json")
        os.rename(tmp, index_dir / name)
        pointer_tmp = index_dir / f".{CURRENT}.{uuid.uuid4().hex[:8]}"
        pointer_tmp.write_text(name + "\n", encoding="utf-8")
        _fsync_file(pointer_tmp)
        os.replace(pointer_tmp, index_dir / CURRENT)
        dir_fd = os.open(index_dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    prune(index_dir, keep={name})
    return index_dir / name


def prune(index_dir: Path, keep: set[str]) -> None:
    """Remove leftovers of crashed builds and generations older than the previous one."""
    gens = sorted((p for p in index_dir.glob("gen-*") if p.is_dir()), key=lambda p: p.stat().st_mtime)
    keep = set(keep)
    older = [g for g in gens if g.name not in keep]
    if older:
        keep.add(older[-1].name)   # readers that just opened the previous generation can finish
    for gen in gens:
        if gen.name not in keep:
            shutil.rmtree(gen, ignore_errors=True)
    for tmp in index_dir.glob(".tmp-gen-*"):
        shutil.rmtree(tmp, ignore_errors=True)
    for tmp in index_dir.glob(f".{CURRENT}.*"):
        with contextlib.suppress(OSError):
            tmp.unlink()


@contextlib.contextmanager
def build_lock(index_dir: Path, wait_seconds: float = 0.0):
    """One indexer per index folder. Waits up to `wait_seconds`, then refuses clearly."""
    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    fh = open(index_dir / ".lock", "a+")
    deadline = time.monotonic() + wait_seconds
    try:
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise IndexLockedError(
                        f"Another azchat indexer is updating {index_dir}; try again when it has finished.")
                time.sleep(0.2)
        yield
    finally:
        fh.close()
