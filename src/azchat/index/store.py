"""The index on disk: generations of (manifest, chunk table, vectors, FAISS, BM25), swapped atomically.

    index/
      CURRENT          name of the live generation, replaced atomically (os.replace)
      .lock            held by the one indexer allowed at a time
      gen-<id>/        manifest.json, chunks/ (columns.py), vectors.npy, dense.faiss, bm25/

Opening a generation maps its files instead of reading them: the chunk table, the vectors and BM25 are
memory-mapped, so open time and memory do not grow with the corpus. Every file's size is checked at open;
the checksums too while the generation is at most VERIFY_BYTES (AZCHAT_VERIFY_BYTES) in all, above that
only those of its JSON files, and the structure of the rest (offsets, shapes, BM25 pointers).
Generations written before columns (format 1: chunks.jsonl) are still read, into memory.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from .columns import ChunkColumns, ChunkList, write_columns
from .notetable import FOLDER as NOTES_FOLDER, NoteTable, attach as attach_notes, write_notes
from .models import file_sha256
from ..errors import IndexCorruptError, IndexLockedError, IndexNotFoundError
from ..types import Chunk

FORMAT_VERSION = 3             # 3: the notes in their own table (notetable.py), not in manifest.json
READABLE_FORMATS = (1, 2, 3)
CURRENT = "CURRENT"
VERIFY_BYTES = 32 << 20        # generations up to this size have every checksum verified at open
VECTOR_DTYPE = np.float16      # vectors.npy: half of float32, the same rankings (bench/vector_types.py)


def verify_bytes() -> int:
    try:
        return int(os.environ.get("AZCHAT_VERIFY_BYTES", VERIFY_BYTES))
    except ValueError:
        return VERIFY_BYTES


@dataclass
class Generation:
    """One complete, immutable index as loaded from disk."""

    folder: Path
    manifest: dict
    chunks: ChunkColumns | ChunkList     # a Sequence[Chunk]; rows decoded when read
    vectors: np.ndarray                   # memory-mapped (format 2)
    extra: dict = field(default_factory=dict)
    # a generation made of a base generation and a small segment (segments.py): chunks and vectors are views
    base: "Generation | None" = None
    segment: "Generation | None" = None
    base_live: np.ndarray | None = None   # the base rows still live, sorted


REBUILD_HINT = "Run `azchat index --full` to rebuild it."


def _pointer(index_dir: Path) -> tuple[Path, str | None] | None:
    """(live generation folder, sha256 of its manifest or None) from CURRENT; None when never built."""
    pointer = Path(index_dir) / CURRENT
    try:
        raw = pointer.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise IndexCorruptError(f"Cannot read {pointer}: {exc}. {REBUILD_HINT}") from exc
    try:
        lines = raw.decode("utf-8").split()
    except UnicodeDecodeError:
        lines = []
    name = lines[0] if lines else ""
    want = lines[2] if len(lines) >= 3 and lines[1] == "sha256" else None
    folder = Path(index_dir) / name
    if not name.startswith("gen-") or "/" in name or "\\" in name or not folder.is_dir():
        raise IndexCorruptError(
            f"The index at {index_dir} points to a missing generation ({name[:80]!r}). {REBUILD_HINT}")
    return folder, want


def current_folder(index_dir: Path) -> Path | None:
    live = _pointer(index_dir)
    return live[0] if live else None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _load_manifest(folder: Path, want: str | None) -> dict:
    try:
        raw = (folder / "manifest.json").read_bytes()
        if want is not None and _sha256(raw) != want:
            raise ValueError("manifest.json does not match its checksum")
        manifest = json.loads(raw.decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(f"The index manifest in {folder} is unreadable ({exc}). {REBUILD_HINT}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") not in READABLE_FORMATS:
        raise IndexCorruptError(f"The index in {folder.parent} has an unknown format. {REBUILD_HINT}")
    try:
        attach_notes(manifest, folder)        # manifest["notes"]: the notes table, opened when first read
    except ValueError as exc:
        raise IndexCorruptError(f"The index in {folder} is damaged ({exc}). {REBUILD_HINT}") from exc
    return manifest


def read_manifest(index_dir: Path) -> dict | None:
    """The live manifest, or None when no index was built yet."""
    live = _pointer(index_dir)
    return None if live is None else _load_manifest(*live)


def _load_from(folder: Path, manifest: dict) -> Generation:
    """Every file checked against the manifest's sizes (and checksums, see the module docstring) before
    anything is trusted."""
    try:
        sums = manifest.get("sha256") or {}
        if not isinstance(sums, dict):
            raise ValueError("checksums missing")
        files = manifest.get("files", {})
        if manifest.get("format") == 1:
            return _load_v1(folder, manifest, sums)
        whole = sum(files.values()) <= verify_bytes()
        for name, size in files.items():
            path = folder / name
            if path.stat().st_size != size:
                raise ValueError(f"{name} has the wrong size")
            if name in sums and (whole or name.endswith(".json")) and file_sha256(path) != sums[name]:
                raise ValueError(f"{name} does not match its checksum")
        if not any(name.startswith("chunks/") for name in files) or "vectors.npy" not in files:
            raise ValueError("the chunk table or the vectors are missing")
        chunks = ChunkColumns(folder / "chunks")
        if isinstance(manifest.get("notes"), NoteTable):
            manifest["notes"].check()
        vectors = np.load(folder / "vectors.npy", mmap_mode="r", allow_pickle=False)
        base = manifest.get("base")
        own = manifest.get("segment_rows", manifest["chunk_count"]) if base else manifest["chunk_count"]
        if len(chunks) != own or vectors.shape != (len(chunks), manifest["dim"]):
            raise ValueError("chunk table and vectors disagree with the manifest")
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise IndexCorruptError(f"The index in {folder} is damaged ({exc}). {REBUILD_HINT}") from exc
    gen = Generation(folder, manifest, chunks, vectors)
    return _with_base(gen, base) if base else gen


def _with_base(segment: Generation, base_ref: dict) -> Generation:
    """A segment generation read together with the base generation it points at (segments.py)."""
    from .segments import ChunkView, VectorView

    folder, manifest = segment.folder, segment.manifest
    name = str(base_ref.get("name", ""))
    base_folder = folder.parent / name
    if not name.startswith("gen-") or "/" in name or not base_folder.is_dir():
        raise IndexCorruptError(f"The index in {folder} points to a missing base ({name[:80]!r}). {REBUILD_HINT}")
    base = _load_from(base_folder, _load_manifest(base_folder, base_ref.get("sha256")))
    if base.base is not None:
        raise IndexCorruptError(f"The index in {folder} has a base with a base. {REBUILD_HINT}")
    notes = manifest.get("notes")
    if isinstance(notes, NoteTable) and notes.base is not None and isinstance(base.manifest.get("notes"), NoteTable):
        notes.base = base.manifest["notes"]       # the segment's notes over the base's (checked) table
    try:
        deleted = np.load(folder / "deleted.npy", allow_pickle=False)
        nb = len(base.chunks)
        if deleted.ndim != 1 or (len(deleted) and (deleted.min() < 0 or deleted.max() >= nb)):
            raise ValueError("deleted.npy names rows the base does not have")
        live = np.ones(nb, dtype=bool)
        live[deleted] = False
        base_live = np.flatnonzero(live).astype(np.int64, copy=False)
        if len(base_live) + len(segment.chunks) != manifest["chunk_count"]:
            raise ValueError("base and segment disagree with the manifest")
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise IndexCorruptError(f"The index in {folder} is damaged ({exc}). {REBUILD_HINT}") from exc
    return Generation(folder, manifest, ChunkView(base.chunks, base_live, segment.chunks),
                      VectorView(base.vectors, base_live, segment.vectors), base=base, segment=segment,
                      base_live=base_live)


def _load_v1(folder: Path, manifest: dict, sums: dict) -> Generation:
    """A generation from before columns: chunks.jsonl parsed whole, vectors read into memory."""
    data: dict[str, bytes] = {}
    for name, size in manifest.get("files", {}).items():
        path = folder / name
        if path.stat().st_size != size:
            raise ValueError(f"{name} has the wrong size")
        if name in sums or name in ("chunks.jsonl", "vectors.npy"):
            blob = path.read_bytes()
            if name in sums and _sha256(blob) != sums[name]:
                raise ValueError(f"{name} does not match its checksum")
            if name in ("chunks.jsonl", "vectors.npy"):
                data[name] = blob
    chunks_raw = data.get("chunks.jsonl")
    if chunks_raw is None:
        chunks_raw = (folder / "chunks.jsonl").read_bytes()
    chunks = [Chunk.from_dict(json.loads(line)) for line in chunks_raw.decode("utf-8").splitlines() if line]
    vec_raw = data.get("vectors.npy")
    vectors = np.load(io.BytesIO(vec_raw) if vec_raw is not None else folder / "vectors.npy",
                      allow_pickle=False)
    if len(chunks) != manifest["chunk_count"] or vectors.shape != (len(chunks), manifest["dim"]):
        raise ValueError("chunk table and vectors disagree with the manifest")
    return Generation(folder, manifest, ChunkList(chunks), vectors)


def load_generation(index_dir: Path, also: Callable[[Generation], dict] | None = None) -> Generation:
    """Open the live generation (memory-mapped), checking its files against the manifest.

    `also(generation)` opens whatever else the caller reads from the generation's folder (FAISS, BM25); its
    dict becomes `generation.extra`, and any error it raises counts as damage.
    CURRENT is read once per attempt, so the manifest and the files always come from the same generation;
    when a concurrent build swapped and pruned that generation while it was being read (two builds landing
    in quick succession prune the one before the previous), the new one is read.
    """
    index_dir = Path(index_dir)
    for attempt in range(3):
        live = _pointer(index_dir)
        if live is None:
            raise IndexNotFoundError(f"No index in {index_dir}. Run `azchat index` first.")
        try:
            gen = _load_from(live[0], _load_manifest(*live))
            if also is not None:
                try:
                    gen.extra = also(gen)
                except Exception as exc:   # faiss raises RuntimeError, bm25s ValueError/OSError on damage
                    raise IndexCorruptError(f"The index in {gen.folder} is damaged ({exc}). {REBUILD_HINT}") \
                        from exc
            return gen
        except IndexCorruptError:
            again = _pointer(index_dir)
            if attempt == 2 or again is None or again == live:
                raise
    raise AssertionError("unreachable")


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_generation(index_dir: Path, manifest: dict, chunks: Iterable[Chunk], vectors: np.ndarray,
                     writers: dict, finish: Callable[[dict], None] | None = None) -> Path:
    """Write a new generation beside the live one, then swap CURRENT to it in one rename.

    `chunks` is read once, in order (a generator streams them to disk); `vectors` has one row per chunk.
    `finish(manifest)` may complete the manifest once the files are written (bench/scale.py).
    `writers` maps a file or folder name to a function(path) that writes it (FAISS, BM25).
    manifest["notes"] (every note's entry) goes to the notes table (notetable.py), not to manifest.json; a
    segment passes manifest["notes_delta"] = (its changed notes' entries, base notes removed) instead.
    Every file's size and sha256 go into the manifest, and the manifest's sha256 into CURRENT, so damage
    is detected on load. A crash at any point leaves the previous generation live.
    """
    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    try:
        previous = current_folder(index_dir)
    except IndexCorruptError:
        previous = None
    name = f"gen-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:8]}"
    tmp = index_dir / f".tmp-{name}"
    tmp.mkdir()
    try:
        count = write_columns(tmp / "chunks", chunks)
        if len(vectors) != count:
            raise ValueError(f"{count} chunks but {len(vectors)} vectors")
        _save_vectors(tmp / "vectors.npy", vectors)
        for fname, write in writers.items():
            write(tmp / fname)
        files, sums = {}, {}
        for path in sorted(tmp.rglob("*")):
            if path.is_file():
                fsync_file(path)
                rel = path.relative_to(tmp).as_posix()
                files[rel] = path.stat().st_size
                sums[rel] = file_sha256(path)
        if finish is not None:
            finish(manifest)
        manifest = dict(manifest)
        notes, delta = manifest.pop("notes", None), manifest.pop("notes_delta", None)
        write_notes(tmp / NOTES_FOLDER, *(delta if delta is not None else (notes or {},)))
        for path in sorted((tmp / NOTES_FOLDER).iterdir()):
            fsync_file(path)
            rel = path.relative_to(tmp).as_posix()
            files[rel], sums[rel] = path.stat().st_size, file_sha256(path)
        if manifest.get("base"):
            (tmp / "BASE").write_text(manifest["base"]["name"] + "\n", encoding="utf-8")
            fsync_file(tmp / "BASE")
        if manifest.get("base"):          # a segment generation: its rows follow the base's live rows
            manifest = {**manifest, "segment_rows": count}
            count += int(manifest["base"]["live_rows"])
        manifest = {**manifest, "format": FORMAT_VERSION, "chunk_count": count, "files": files,
                    "sha256": sums, "notes_table": {"delta": delta is not None}}
        raw = json.dumps(manifest, indent=1, ensure_ascii=False).encode("utf-8")
        (tmp / "manifest.json").write_bytes(raw)
        fsync_file(tmp / "manifest.json")
        for folder in [tmp, *(p for p in tmp.rglob("*") if p.is_dir())]:
            fsync_file(folder)         # the new files' directory entries are durable before the swap
        os.rename(tmp, index_dir / name)
        pointer_tmp = index_dir / f".{CURRENT}.{uuid.uuid4().hex[:8]}"
        pointer_tmp.write_text(f"{name}\nsha256 {_sha256(raw)}\n", encoding="utf-8")
        fsync_file(pointer_tmp)
        os.replace(pointer_tmp, index_dir / CURRENT)
        fsync_file(index_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    prune(index_dir, keep={name} | ({previous.name} if previous else set()))
    return index_dir / name


def _save_vectors(path: Path, vectors: np.ndarray) -> None:
    """vectors as VECTOR_DTYPE .npy; a memory-mapped input is copied in blocks and let go (never resident whole)."""
    if not isinstance(vectors, np.memmap):
        np.save(path, np.ascontiguousarray(vectors, dtype=VECTOR_DTYPE), allow_pickle=False)
        return
    from .dense import _blocks

    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": np.lib.format.dtype_to_descr(np.dtype(VECTOR_DTYPE)), "fortran_order": False,
                 "shape": tuple(vectors.shape)})
        for _, block in _blocks(vectors):
            fh.write(memoryview(block.astype(VECTOR_DTYPE)).cast("B"))      # one block converted at a time


def tidy(index_dir: Path) -> None:
    """Prune what a build killed between its swap and its prune left behind (a third generation, temp
    folders), for a build that found nothing to write: keeps the live one and the newest other one."""
    try:
        live = current_folder(index_dir)
    except IndexCorruptError:
        return                            # the next real build replaces everything; never guess here
    if live is None:
        return
    others = sorted((g for g in index_dir.glob("gen-*") if g.is_dir() and g.name != live.name),
                    key=lambda g: g.stat().st_mtime_ns)
    prune(index_dir, keep={live.name} | ({others[-1].name} if others else set()))


def prune(index_dir: Path, keep: set[str]) -> None:
    """Remove leftovers of crashed builds and every generation not in `keep` (the live and the previous one,
    which readers that just opened it may still be reading) nor the base of one in `keep`."""
    for name in list(keep):
        try:       # BASE: the base's name, beside the manifest (which may be large: not parsed unless needed)
            base = (index_dir / name / "BASE").read_text(encoding="utf-8").strip()
        except (OSError, ValueError):
            try:
                ref = json.loads((index_dir / name / "manifest.json").read_text(encoding="utf-8")).get("base")
                base = ref.get("name", "") if isinstance(ref, dict) else ""
            except (OSError, ValueError, AttributeError):
                continue
        if not isinstance(base, str):
            continue
        if base.startswith("gen-"):
            keep = keep | {base}
    for gen in index_dir.glob("gen-*"):
        if gen.is_dir() and gen.name not in keep:
            shutil.rmtree(gen, ignore_errors=True)
    for tmp in index_dir.glob(".tmp-gen-*"):
        shutil.rmtree(tmp, ignore_errors=True)
    for tmp in index_dir.glob(f".{CURRENT}.*"):
        with contextlib.suppress(OSError):
            tmp.unlink()


@contextlib.contextmanager
def build_lock(index_dir: Path, wait_seconds: float = 0.0, on_wait=None):
    """One indexer per index folder. Waits up to `wait_seconds` (calling `on_wait()` once), then refuses.

    The lock is an flock on index/.lock: the kernel releases it when its holder dies, even by SIGKILL."""
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
                if on_wait is not None:
                    on_wait()
                    on_wait = None
                time.sleep(0.1)
        yield
    finally:
        fh.close()
