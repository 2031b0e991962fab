"""Build or update the index: notes -> chunks -> vectors -> store. Only new or changed text is embedded."""
from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

from . import dense
from .changes import incompatibility, notes_dir as default_notes
from ..notes.chunking import chunk_note
from ..config import ChunkSettings, index_dir as default_index
from .embedding import Embedder, Progress, embed_passages, prefixes, recorded_prefixes
from ..errors import AzchatError, IndexCorruptError, IndexWriteError, NotesNotFoundError
from ..notes.reading import Skipped, read_note
from .notetable import DictNotes, NoteTable, notes_of, scan_notes
from .columns import embed_key
from .reuse import cached_vectors
from .rewrite import write_rewrite
from .segments import write_segment
from .spool import ChunkSpool
from .store import Generation, build_lock, load_generation, read_manifest, tidy
from ..types import BuildStats, Chunk

Log = Callable[[str], None]
EMBED_BLOCK = 4096     # chunks embedded per call: a full build holds one block's texts, not the corpus's
EmbedPassages = Callable[..., np.ndarray]   # (embedder, texts, progress=None) -> vectors, as embed_passages


def light_max() -> int:
    """Up to this many changed chunks are embedded with the ONNX export (no torch import); more go through
    sentence-transformers. Unlimited by default: with sorted batches and non-spinning threads onnxruntime
    embeds as fast as torch here (0.98x idle, 1.18x under load; bench/RESULTS.md) and skips torch's import."""
    return _int_env("AZCHAT_LIGHT_MAX", 1 << 62)


def dense_threshold() -> int:
    """From this many chunks on, the dense index is approximate (IVF, see dense.py) instead of exact."""
    return _int_env("AZCHAT_ANN_THRESHOLD", dense.ANN_THRESHOLD)


def _int_env(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def _word_table(index_dir: Path, log: Log) -> None:
    """The word-frequency table the refusal reads (language.py), written once per index folder."""
    from ..notes import language

    if not language.table_path(index_dir).is_file():
        log("Writing the English/German word-frequency table (once)")
        language.write_table(index_dir)


def _light_export(index_dir: Path, embedder, log: Log) -> Path | None:
    """The ONNX export for this index's model, made once (from the loaded reference) when missing."""
    from .embedding import SentenceTransformerEmbedder, light_enabled
    from .onnx_embedding import OnnxEmbedder, export_model, find_export, mark_failed, failed_before

    if isinstance(embedder, OnnxEmbedder):
        return embedder.folder
    if not isinstance(embedder, SentenceTransformerEmbedder) or not light_enabled():
        return None
    found = find_export(index_dir, embedder.info)
    if found is not None or failed_before(index_dir, embedder.info):
        return found
    log(f"Exporting {embedder.name} to ONNX for fast queries (once)")
    try:
        return export_model(index_dir, embedder.info, st_model=embedder._model)
    except Exception as exc:   # the reference path keeps working; say why once
        mark_failed(index_dir, embedder.info, str(exc))
        log(f"Queries will use sentence-transformers: {exc}")
        return None


def build_index(notes_dir=None, index_dir=None, *, full: bool = False, model: str | None = None,
                embedder: Embedder | None = None, settings: ChunkSettings = ChunkSettings(),
                progress: Progress | None = None, log: Log | None = None,
                wait_seconds: float = 0.0, embed: EmbedPassages | None = None) -> BuildStats:
    """Index every note under notes_dir into index_dir, incrementally. Returns what was done.

    `embed(embedder, texts, progress=...)` computes the vectors of the chunks that need embedding (default
    embed_passages, in this process); ray_build.py passes one that runs them on a Ray cluster."""
    t0 = time.perf_counter()
    notes_dir, index_dir = default_notes(notes_dir, index_dir), default_index(index_dir)
    log = log or (lambda msg: None)
    if not notes_dir.is_dir():
        raise NotesNotFoundError(f"Notes folder {notes_dir} does not exist or is not a folder.")
    auto = embedder is None
    if auto:
        from .embedding import load_embedder

        embedder = load_embedder(model, index_dir)   # the light ONNX export when there is one
    try:
        return _build(notes_dir, index_dir, full, embedder, auto, settings, progress, log, wait_seconds, t0,
                      embed or embed_passages)
    except AzchatError:
        raise
    except OSError as exc:     # disk full, read-only or misplaced index folder: one clear sentence
        raise IndexWriteError(
            f"Could not update the index in {index_dir}: {exc.strerror or exc}"
            f"{f' ({exc.filename})' if exc.filename else ''}. The previous index is unchanged.") from exc


def _build(notes_dir: Path, index_dir: Path, full: bool, embedder: Embedder, auto: bool,
           settings: ChunkSettings, progress: Progress | None, log: Log, wait_seconds: float,
           t0: float, embed: EmbedPassages = embed_passages) -> BuildStats:
    stats = BuildStats()
    with build_lock(index_dir, wait_seconds,
                    on_wait=lambda: log(f"Waiting for another azchat indexer to finish with {index_dir} ...")):
        old: Generation | None = None
        reason = "--full was requested" if full else ""
        try:
            old = load_generation(index_dir) if read_manifest(index_dir) is not None else None
        except IndexCorruptError as exc:
            reason = f"the existing index is unreadable ({exc})"
            log(f"Rebuilding everything: {reason}")
        if old is not None and not reason:
            reason = incompatibility(old.manifest, embedder, settings)
            if reason:
                log(f"Rebuilding everything: {reason}.")
        reuse = old is not None and not reason
        stats.full_rebuild_reason = reason   # "" for a first build

        old_notes = notes_of(old.manifest) if reuse else DictNotes()
        old_skipped = old.manifest.get("skipped", {}) if reuse else {}
        skipped_meta: dict[str, dict] = {}  # files skipped when read, remembered by stat so they are not re-read
        kept_notes: list[str] = []         # notes whose old rows are reused as they are
        replaced: list[str] = []           # notes whose old rows are replaced by fresh chunks

        note_paths, rels, note_stats, skipped = scan_notes(notes_dir)
        stats.skipped = [{"path": s.path, "reason": s.reason} for s in skipped]
        # the notes' stat compared with the notes table's as arrays: no per-note entry is parsed
        names, same = old_notes.match(rels, note_stats)
        known = set(names)
        kept_notes = [rels[i] for i in np.flatnonzero(same).tolist()]
        stats.unchanged = len(kept_notes)
        # chunks of new or changed notes; a full build keeps them on disk until they are written (spool.py: an
        # unnamed temp file, gone when the build ends or dies), so its memory does not hold the corpus's text
        fresh: list[Chunk] | ChunkSpool = [] if reuse else ChunkSpool(index_dir)
        new_meta: dict[str, dict] = {}     # the entries of the notes read this time (the others keep theirs)
        to_read = np.flatnonzero(~same).tolist()
        if to_read and auto and hasattr(embedder, "prefetch"):
            embedder.prefetch()      # notes to read: the ONNX session loads while they are read and compared
        for i in to_read:
            path, rel, st = note_paths[i], rels[i], note_stats[i]
            bad = old_skipped.get(rel)
            if bad and st and st == (bad.get("mtime_ns"), bad.get("size")):
                stats.skipped.append({"path": rel, "reason": bad.get("reason", "")})
                skipped_meta[rel] = bad
                continue
            note = read_note(Path(path), notes_dir)
            if isinstance(note, Skipped):
                stats.skipped.append({"path": note.path, "reason": note.reason})
                if st:
                    skipped_meta[rel] = {"mtime_ns": st[0], "size": st[1], "reason": note.reason}
                continue
            meta = {"hash": note.content_hash, "mtime_ns": st[0] if st else 0, "size": st[1] if st else 0,
                    "title": note.title, "tags": note.tags, "warnings": note.warnings}
            entry = old_notes.get(rel) if rel in known else None
            if entry and entry.get("hash") == note.content_hash:
                kept_notes.append(rel)
                new_meta[rel] = {**meta, "chunks": entry.get("chunks", 0)}
                stats.unchanged += 1
                continue
            chunks = chunk_note(note, embedder.count_tokens, embedder.max_tokens, settings)
            fresh.extend(chunks)
            new_meta[rel] = {**meta, "chunks": len(chunks)}
            if entry:
                stats.updated += 1
                replaced.append(rel)
            else:
                stats.added += 1
        current = set(kept_notes) | set(new_meta)
        removed_notes = [r for r in names if r not in current]
        # rows of the old generation reused as they are: all but those of replaced and removed notes
        kept_mask = np.ones(len(old.chunks) if reuse else 0, dtype=bool)
        if reuse and (replaced or removed_notes):
            kept_mask[old.chunks.rows_of_paths(replaced + removed_notes)] = False
        old_warnings = old_notes.warnings()
        for rel in rels:
            meta = new_meta.get(rel)
            found = meta.get("warnings", []) if meta is not None else \
                (old_warnings.get(rel, []) if rel in current else [])
            stats.warnings.extend({"path": rel, "message": w} for w in found)
        stats.removed = len(removed_notes)
        stats.notes = len(current)

        # a touched note (same text, new mtime) or a newly skipped file also needs a new manifest, or every
        # later is_stale() would report the index stale and re-read them
        changed = stats.added or stats.updated or stats.removed or not reuse \
            or bool(new_meta) or skipped_meta != old_skipped
        if not changed:
            tidy(index_dir)
            if auto:
                _light_export(index_dir, embedder, log)   # an index from before exports gets one now
                _word_table(index_dir, log)
            stats.chunks = len(old.chunks)
            stats.seconds = time.perf_counter() - t0
            return stats

        # Embedding cache: any old chunk with the same embedded text keeps its vector (found by its key column).
        cached = np.full(len(fresh), -1, dtype=np.int64)
        if old is not None and old.manifest.get("embedder") == embedder.name \
                and old.manifest.get("dim") == embedder.dim and not full and fresh \
                and recorded_prefixes(old.manifest) == prefixes(embedder):
            found = cached_vectors(old, [embed_key(c.embed_text) for c in fresh])   # one chunk at a time
            cached = np.asarray([-1 if v is None else i for i, v in enumerate(found)], dtype=np.int64)
        need = np.flatnonzero(cached < 0)
        # a full build's vectors go to disk in the sorted row order as they come (streaming.py); an update's
        # (a few notes) stay in memory
        spooled = isinstance(fresh, ChunkSpool)
        if spooled:
            from .streaming import StreamedVectors, write_full
        fresh_vecs = StreamedVectors(index_dir, fresh, embedder.dim) if spooled else \
            np.zeros((len(fresh), embedder.dim), dtype=np.float32)
        try:
            for i in np.flatnonzero(cached >= 0).tolist():
                fresh_vecs[i] = found[i]
            if len(need):
                use = embedder
                if auto and len(need) > light_max() and getattr(embedder, "light", False) \
                        and importlib.util.find_spec("sentence_transformers") is not None:
                    # Asked for (AZCHAT_LIGHT_MAX): many chunks go through the reference.
                    from .embedding import SentenceTransformerEmbedder
                    from .models import resolve_model

                    use = SentenceTransformerEmbedder(resolve_model(embedder.name))
                log(f"Embedding {len(need)} chunks with {embedder.name}")
                for at in range(0, len(need), EMBED_BLOCK):       # the texts of one block in memory at a time
                    block = need[at:at + EMBED_BLOCK]
                    step = None if progress is None else \
                        (lambda done, total, at=at: progress(at + done, len(need)))
                    fresh_vecs[block] = embed(use, [fresh[i].embed_text for i in block.tolist()], progress=step)
            found = None
            stats.embedded = len(need)
            onnx_dir = _light_export(index_dir, embedder, log) if auto else None
            if auto:
                _word_table(index_dir, log)
            common = _common(embedder, settings, notes_dir, skipped_meta, index_dir, onnx_dir)
            if spooled:
                common["notes"] = new_meta
                stats.chunks = write_full(index_dir, fresh, fresh_vecs, common, dense_threshold(), log)
                stats.seconds = time.perf_counter() - t0
                return stats
        finally:
            if spooled:
                fresh_vecs.close()
                fresh.close()
        plan = _segment_plan(old, np.flatnonzero(kept_mask), len(fresh)) if reuse and not full else None
        delta = _notes_delta(old, plan[0], new_meta, removed_notes) if plan is not None else None
        if delta is not None:
            common["notes_delta"] = delta      # the segment's notes table: only what changed since the base
        else:                                  # every note's entry (the next base, or a small index)
            kept_entries = old_notes.entries() if kept_notes else {}
            common["notes"] = {**{r: kept_entries[r] for r in kept_notes if r in kept_entries}, **new_meta}
        if plan is not None:
            stats.chunks = write_segment(index_dir, old, plan, fresh, fresh_vecs, common, log)
            stats.seconds = time.perf_counter() - t0
            return stats
        # every kept old row and the fresh chunks rewritten into one generation: a small index's update (in
        # memory) or the merge of a segmented index into a new base (streamed as a full build: rewrite.py)
        stats.chunks = write_rewrite(index_dir, old, np.flatnonzero(kept_mask), fresh, fresh_vecs, common,
                                     dense_threshold(), log)
    stats.seconds = time.perf_counter() - t0
    return stats


def _common(embedder: Embedder, settings: ChunkSettings, notes_dir: Path, skipped_meta: dict, index_dir: Path,
            onnx_dir: Path | None) -> dict:
    """The manifest's entries every build writes."""
    common = {
        "model": embedder.name,
        "embedder": embedder.name,
        "dim": embedder.dim,
        "prefixes": prefixes(embedder),      # before each question / each chunk when embedded
        "max_tokens": embedder.max_tokens,
        "chunker": settings.to_dict(),
        "notes_dir": str(notes_dir.resolve()),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "skipped": skipped_meta,
    }
    if onnx_dir is not None:
        common["onnx"] = onnx_dir.relative_to(index_dir).as_posix()
    return common


def _notes_delta(old: Generation, base: Generation, new_meta: dict, removed: list[str]):
    """(entries, removed base notes) of a segment's notes table: the old segment's changes since the base
    with this update's on top. None when the base has no notes table (an index written before tables): the
    segment then writes every note."""
    base_notes = base.manifest.get("notes")
    if not isinstance(base_notes, NoteTable):
        return None
    if old.base is None:
        own, gone = {}, set()
    else:
        mine = old.manifest.get("notes")
        if not isinstance(mine, NoteTable) or mine.base is None:
            return None
        own, gone = mine.own(), mine.removed()
    own.update(new_meta)
    for rel in removed:
        own.pop(rel, None)
        if rel in base_notes:
            gone.add(rel)
    return own, gone - set(own)


def _segment_plan(old: Generation, kept_rows: list[int], n_fresh: int):
    """(base generation, its rows kept sorted, rows of the old segment kept) when this update can be written
    as a small segment beside the base (segments.py); None when everything is rewritten (a small index, or a
    segment or deletions grown past segment_max_rows: the merge)."""
    from .columns import ChunkColumns
    from .segments import segment_from, segment_max_rows

    base = old.base or old
    if not isinstance(base.chunks, ChunkColumns) or len(base.chunks) < max(segment_from(), 1):
        return None
    base_rows = len(base.chunks)
    nb_live = len(old.base_live) if old.base is not None else base_rows
    kept = np.asarray(kept_rows, dtype=np.int64)
    in_base = kept[kept < nb_live]
    kept_base = old.base_live[in_base] if old.base is not None else in_base
    if len(kept_base) > 1 and not bool(np.all(kept_base[1:] > kept_base[:-1])):
        kept_base = np.sort(kept_base)          # kept rows come sorted: no sort of a million rows then
    kept_segment = kept[kept >= nb_live]
    limit = segment_max_rows(base_rows)
    if len(kept_segment) + n_fresh > limit or base_rows - len(kept_base) > limit:
        return None
    return base, kept_base, kept_segment
