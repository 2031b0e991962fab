"""Segments: a large index updated without rewriting it. A generation is a base generation plus one small
segment, as Lucene keeps a large segment and small new ones.

A one-note edit writes a new generation that holds only a small segment (the changed notes' chunks, with their
vectors, a flat FAISS index and BM25 arrays) and `deleted.npy` (the rows of the base generation it replaces),
and points at the base generation it leaves untouched ("base" in its manifest, with the base manifest's
sha256). The next small update rewrites that small segment (it stays one); when it grows past
segment_max_rows(), or on `azchat index --full`, the build merges everything into a new base. The base is
immutable and kept while a kept generation points at it (store.prune), so a crash at any point still leaves
the last good generation whole.

The views here make base + segment read as one table of live rows: row r < base_live rows is base row
base_live[r], the rest are segment rows. BM25 scores of the segment use the statistics of base + segment
(document count, document frequencies, average length); the base keeps the statistics it was built with, and
words of deleted rows still count as mentioned for refusal.py until the merge: a merged view is within that
drift of a full rebuild, and the merge makes it exact.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import numpy as np

from ..types import Chunk

if TYPE_CHECKING:
    from .store import Generation

SEGMENT_FROM = 10_000        # bases with fewer rows are rewritten whole (it is cheap): AZCHAT_SEGMENT_FROM


def _int_env(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def segment_from() -> int:
    return _int_env("AZCHAT_SEGMENT_FROM", SEGMENT_FROM)


def segment_max_rows(base_rows: int) -> int:
    """Past this many rows in the small segment or deleted from the base, the build merges."""
    return _int_env("AZCHAT_SEGMENT_MAX_ROWS", max(2_000, base_rows // 10))


def _to_view(base_live: np.ndarray, base_rows: np.ndarray) -> np.ndarray:
    """View rows of these base rows; deleted base rows are dropped."""
    base_rows = np.asarray(base_rows, dtype=np.int64)
    if len(base_live) == 0 or len(base_rows) == 0:
        return np.zeros(0, dtype=np.int64)
    pos = np.minimum(np.searchsorted(base_live, base_rows), len(base_live) - 1)
    return pos[base_live[pos] == base_rows].astype(np.int64)


class _Either:
    """`x in it` when x is in any of the parts (words, text, identifiers of base and segment)."""

    def __init__(self, *parts):
        self.parts = parts

    def __contains__(self, x) -> bool:
        return any(x in p for p in self.parts)


class ChunkView(Sequence[Chunk]):
    """Base table (its live rows) then segment table, as one chunk table (columns.py's interface)."""

    def __init__(self, base, base_live: np.ndarray, segment):
        self.base, self.base_live, self.segment = base, base_live, segment
        self.nb = len(base_live)
        self._lines = self._keys = self._tags = self._folders = None

    def __len__(self) -> int:
        return self.nb + len(self.segment)

    def _where(self, i: int):
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return (self.base, int(self.base_live[i])) if i < self.nb else (self.segment, i - self.nb)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        table, row = self._where(i)
        return table[row]

    def __iter__(self) -> Iterator[Chunk]:
        for i in range(len(self)):
            yield self[i]

    def text(self, i):
        t, r = self._where(i)
        return t.text(r)

    def search_text(self, i):
        t, r = self._where(i)
        return t.search_text(r)

    def embed_text(self, i):
        t, r = self._where(i)
        return t.embed_text(r)

    def field(self, name, i):
        t, r = self._where(i)
        return t.field(name, r)

    def path(self, i):
        t, r = self._where(i)
        return t.path(r)

    def title(self, i):
        t, r = self._where(i)
        return t.title(r)

    @property
    def lines(self) -> np.ndarray:
        if self._lines is None:
            self._lines = np.concatenate([np.asarray(self.base.lines)[self.base_live],
                                          np.asarray(self.segment.lines)]).reshape(-1, 2)
        return self._lines

    @property
    def keys(self) -> np.ndarray:
        if self._keys is None:
            self._keys = np.concatenate([np.asarray(self.base.keys)[self.base_live], np.asarray(self.segment.keys)])
        return self._keys

    def rows_matching(self, tags=None, folder=None) -> np.ndarray:
        return np.concatenate([_to_view(self.base_live, self.base.rows_matching(tags, folder)),
                               self.segment.rows_matching(tags, folder) + self.nb])

    def rows_of_paths(self, paths) -> np.ndarray:
        paths = list(paths)
        return np.concatenate([_to_view(self.base_live, self.base.rows_of_paths(paths)),
                               self.segment.rows_of_paths(paths) + self.nb])

    def rows_of_path(self, path: str) -> np.ndarray:
        return np.concatenate([_to_view(self.base_live, self.base.rows_of_path(path)),
                               self.segment.rows_of_path(path) + self.nb])

    def tags(self) -> set[str]:
        if self._tags is None:
            metas = self.base.metas()
            used = np.unique(np.asarray(self.base.meta_ids)[self.base_live]) if self.nb else []
            self._tags = {t for m in used for t in metas[int(m)][1]} | self.segment.tags()
        return self._tags

    def folders(self) -> set[str]:
        if self._folders is None:
            used = np.unique(np.asarray(self.base.path_ids)[self.base_live]) if self.nb else []
            paths = [self.base.paths[int(p)] for p in used]
            self._folders = {p.rsplit("/", 1)[0] for p in paths if "/" in p} | self.segment.folders()
        return self._folders

    # refusal.py: the words of both parts (a deleted row's words count until the merge)
    def notes_text(self):
        (bw, bt), (sw, st) = _text_of(self.base), _text_of(self.segment)
        return _Either(bw, sw), _Either(bt, st)

    def compact_text(self):
        return _Either(_compact_of(self.base), _compact_of(self.segment))

    def identifiers(self):
        return _Either(_identifiers_of(self.base), _identifiers_of(self.segment))


def _text_of(table):
    if getattr(table, "notes_text", None):
        return table.notes_text()
    from .columns import ChunkList

    return ChunkList(list(table)).notes_text()


def _compact_of(table):
    if getattr(table, "compact_text", None):
        return table.compact_text()
    from .columns import ChunkList

    return ChunkList(list(table)).compact_text()


def _identifiers_of(table):
    if getattr(table, "identifiers", None):
        return table.identifiers()
    from .columns import ChunkList

    return ChunkList(list(table)).identifiers()


class VectorView:
    """Rows of base (live) then segment vectors; `view[rows]` gathers from both."""

    def __init__(self, base: np.ndarray, base_live: np.ndarray, segment: np.ndarray):
        self.base, self.base_live, self.segment = base, base_live, segment
        self.nb = len(base_live)
        self.shape = (self.nb + len(segment), base.shape[1])
        self.dtype = np.float32

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows):
        if isinstance(rows, (int, np.integer)):
            rows = int(rows) + (len(self) if rows < 0 else 0)
            return self.base[self.base_live[rows]] if rows < self.nb else self.segment[rows - self.nb]
        if isinstance(rows, slice):
            rows = np.arange(*rows.indices(len(self)))
        rows = np.asarray(rows, dtype=np.int64)
        out = np.zeros((len(rows), self.shape[1]), dtype=np.float32)
        in_base = rows < self.nb
        if in_base.any():
            picked = self.base_live[rows[in_base]]
            order = np.argsort(picked)       # a memory-mapped base is read in file order
            got = np.empty((len(picked), self.shape[1]), dtype=np.float32)
            got[order] = self.base[picked[order]]
            out[in_base] = got
        if (~in_base).any():
            out[~in_base] = self.segment[rows[~in_base] - self.nb]
        return out


class DenseView:
    """FAISS of the base (deleted rows skipped) and of the segment, searched both and merged."""

    def __init__(self, base, base_live: np.ndarray, base_rows: int, segment):
        self.base, self.base_live, self.segment = base, base_live, segment
        self.nb = len(base_live)
        self.deleted = base_rows - self.nb
        self.ntotal = self.nb + segment.ntotal

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None):
        from .dense import search

        parts_ids, parts_scores = [], []
        if allowed is None:
            ids, scores = search(self.base, query, k + self.deleted)   # deleted rows may take k places
            if self.nb and len(ids):
                pos = np.minimum(np.searchsorted(self.base_live, ids), self.nb - 1)
                live = self.base_live[pos] == ids
                parts_ids.append(pos[live].astype(np.int64))
                parts_scores.append(scores[live])
            ids, scores = search(self.segment, query, k)
        else:
            allowed = np.asarray(allowed, dtype=np.int64)
            in_base = allowed[allowed < self.nb]
            ids, scores = search(self.base, query, k, self.base_live[in_base])
            parts_ids.append(_to_view(self.base_live, ids))
            parts_scores.append(scores)
            ids, scores = search(self.segment, query, k, allowed[allowed >= self.nb] - self.nb)
        parts_ids.append(np.asarray(ids, dtype=np.int64) + self.nb)
        parts_scores.append(scores)
        ids, scores = np.concatenate(parts_ids), np.concatenate(parts_scores)
        top = np.argsort(-scores, kind="stable")[:k]
        return ids[top], scores[top]


class LexicalView:
    """BM25 of the base (deleted rows score 0 and are dropped) and of the segment as one LexicalIndex."""

    def __new__(cls, base, base_live: np.ndarray, segment):
        from .lexical import LexicalIndex

        class _View(LexicalIndex):
            def _df(self, tok: str) -> int:
                return base._df(tok) + segment._df(tok)

            def scores(self, query: str) -> np.ndarray:
                known = self.query_tokens(query)
                out = np.zeros(self.size, dtype=np.float32)
                if not known:
                    return out
                nb = len(base_live)
                if base._bm25 is not None and nb:
                    out[:nb] = base._bm25.get_scores(known)[base_live]
                if segment._bm25 is not None:
                    out[nb:] = segment._bm25.get_scores(known)
                return out

        view = _View(_UnionBM25(base._bm25, segment._bm25), len(base_live) + segment.size, base.settings)
        return view


class _UnionVocab:
    def __init__(self, *vocabs):
        self.vocabs = [v for v in vocabs if v is not None]

    def get(self, tok, default=None):
        return 0 if any(tok in v for v in self.vocabs) else default

    def __contains__(self, tok) -> bool:
        return any(tok in v for v in self.vocabs)


class _UnionBM25:
    def __init__(self, *parts):
        self.vocab_dict = _UnionVocab(*(p.vocab_dict for p in parts if p is not None))


def write_segment(index_dir: Path, old: Generation, plan, fresh: list[Chunk], fresh_vecs: np.ndarray,
                   common: dict, log: Callable[[str], None]) -> int:
    """Write a generation of the base and one small segment: the old segment's kept rows and the fresh
    chunks, their vectors (flat FAISS) and BM25 with the base's statistics, and the base rows deleted."""
    from . import dense
    from .bm25_writer import BM25Writer
    from .lexical import LexicalIndex
    from .rewrite import merged_in_memory
    from .store import _sha256, write_generation

    base, kept_base, kept_segment = plan
    table = old.chunks
    # the old segment's rows: their start lines from the segment's own column (not a view of every row's)
    lines, shift = (old.segment.chunks.lines, len(old.base_live)) if old.base is not None else (table.lines, 0)
    keyed, vectors = merged_in_memory(old, kept_segment, lambda r: int(lines[r - shift][0]), fresh, fresh_vecs)
    base_rows = len(base.chunks)
    live = np.zeros(base_rows, dtype=bool)
    live[kept_base] = True
    deleted = np.flatnonzero(~live).astype(np.int64)
    base_lexical = LexicalIndex.load(base.folder / "bm25", base_rows)
    writer = BM25Writer(base_lexical.settings)
    for _, r, i in keyed:
        writer.add(table.search_text(r) if r >= 0 else fresh[i].search_text)
    seg_dense, _ = dense.build(vectors, dense.FLAT)
    log(f"Writing a segment of {len(keyed)} chunks beside {base_rows - len(deleted)} of the base")

    def rows():
        for _, r, i in keyed:
            yield table[r] if r >= 0 else fresh[i]

    manifest = {**common, "dense": {**(base.manifest.get("dense") or {}), "segment": dense.FLAT},
                "base": {"name": base.folder.name,
                         "sha256": _sha256((base.folder / "manifest.json").read_bytes()),
                         "live_rows": int(base_rows - len(deleted))}}
    write_generation(index_dir, manifest, rows(), vectors, {
        "deleted.npy": lambda p: np.save(p, deleted, allow_pickle=False),
        "dense.faiss": lambda p: dense.write(seg_dense, p),
        "bm25": lambda p: writer.save(p, base=base_lexical),
    })
    return int(base_rows - len(deleted) + len(keyed))
