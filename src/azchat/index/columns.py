"""The chunk table on disk: one column per field, memory-mapped, so opening it parses nothing per chunk.

    chunks/
      <field>.bin + <field>.off.npy   text fields (id, heading, text, embed_text, search_text): UTF-8 bytes of
                                      every row one after another, and n + 1 byte offsets (int64)
      lines.npy                       (n, 2) int32: start_line, end_line
      path.npy, meta.npy              int32 per row: its note path and its (title, tags, aliases) in the two
                                      small tables below (a note's chunks share them)
      paths.bin + paths.off.npy       the distinct paths, sorted
      metas.bin + metas.off.npy       the distinct [title, tags, aliases], JSON, parsed when a row needs it
      keys.npy                        (n,) S20: sha1 of embed_text (the embedding cache of incremental builds)
      words.txt, identifiers.txt      the distinct lowercased words of the text and code identifiers of the
                                      search text, one a line ("\n" before each and after the last)
      compact.bin                     the lowercased text's letters and digits run together
    The last three answer refusal.py's "do the notes mention X" without reading every chunk at ask time.

A row is decoded only when it is read (ChunkColumns[i] -> Chunk; .text(i) etc. for one field); tag and folder
filters work on the small path and meta tables and the int32 columns. ChunkList offers the same methods over
a list of Chunk objects (indexes written before columns, and chunks in memory).
"""
from __future__ import annotations

import hashlib
import json
import mmap
from array import array
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from ..types import Chunk
from .analysis import _IDENTIFIER, _PART
from .wordlists import _Framed, _Substrings, _map

TEXT_FIELDS = ("id", "heading", "text", "embed_text", "search_text")
FOLDER = "chunks"


def _mapped(path: Path) -> np.ndarray:
    """A .npy file memory-mapped, as a plain ndarray over the mapping: np.memmap's Python-level __getitem__
    costs ~2 µs per element read, and an ask reads a few thousand offsets."""
    return np.load(path, mmap_mode="r", allow_pickle=False).view(np.ndarray)


def embed_key(text: str) -> bytes:
    """The embedding cache key of a chunk: sha1 of its embed_text (20 bytes)."""
    return hashlib.sha1(text.encode("utf-8")).digest()


class StringColumn:
    """Row i of a column of strings: bytes [off[i], off[i+1]) of a memory-mapped blob."""

    def __init__(self, blob, offsets: np.ndarray):
        self._blob, self._off = blob, offsets

    @classmethod
    def open(cls, folder: Path, name: str) -> "StringColumn":
        offsets = _mapped(folder / f"{name}.off.npy")
        path = folder / f"{name}.bin"
        size = path.stat().st_size
        if len(offsets) == 0 or int(offsets[-1]) != size or int(offsets[0]) != 0:
            raise ValueError(f"{FOLDER}/{name} and its offsets disagree")
        if size == 0:
            return cls(b"", offsets)
        with open(path, "rb") as fh:
            blob = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        return cls(blob, offsets)

    def __len__(self) -> int:
        return len(self._off) - 1

    def raw(self, i: int) -> bytes:
        return self._blob[int(self._off[i]):int(self._off[i + 1])]

    def __getitem__(self, i: int) -> str:
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.raw(i).decode("utf-8")

    def __iter__(self) -> Iterator[str]:
        for i in range(len(self)):
            yield self.raw(i).decode("utf-8")

    def find(self, value: str) -> int:
        """Row of value in a sorted column, -1 when absent (binary search, log2(n) rows decoded)."""
        want = value.encode("utf-8")
        lo, hi = 0, len(self)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.raw(mid) < want:
                lo = mid + 1
            else:
                hi = mid
        return lo if lo < len(self) and self.raw(lo) == want else -1


class StringWriter:
    """Appends strings to <name>.bin and remembers the offsets; close() writes <name>.off.npy."""

    def __init__(self, folder: Path, name: str):
        self.folder, self.name = folder, name
        self._fh = open(folder / f"{name}.bin", "wb")
        self._off = array("q", [0])          # 8 bytes a row, not a Python int
        self._pos = 0

    def add(self, value: str | bytes) -> None:
        data = value.encode("utf-8") if isinstance(value, str) else value
        self._fh.write(data)
        self._pos += len(data)
        self._off.append(self._pos)

    def close(self) -> None:
        self._fh.close()
        np.save(self.folder / f"{self.name}.off.npy", np.frombuffer(self._off, dtype=np.int64), allow_pickle=False)


def write_strings(folder: Path, name: str, values: Iterable[str]) -> None:
    w = StringWriter(folder, name)
    for v in values:
        w.add(v)
    w.close()


def _meta_json(c: Chunk) -> str:
    return json.dumps([c.title, list(c.tags), list(c.aliases)], ensure_ascii=False)


def write_columns(folder: Path, chunks: Iterable[Chunk]) -> int:
    """Write chunks (any iterable, read once, in order) as columns under folder; returns the row count.

    Memory: ~70 bytes a row (int arrays, not Python lists) and the distinct paths, metas and words; the text
    goes straight to disk."""
    folder.mkdir(parents=True, exist_ok=True)
    writers = {name: StringWriter(folder, name) for name in TEXT_FIELDS}
    lines, path_of, meta_of, keys = array("q"), array("q"), array("q"), bytearray()
    paths: dict[str, int] = {}
    metas: dict[str, int] = {}
    words: set[str] = set()
    identifiers: set[str] = set()
    compact = open(folder / "compact.bin", "wb")
    n = 0
    for c in chunks:
        low = c.text.lower()
        parts = _PART.findall(low)
        words.update(parts)
        compact.write("".join(parts).encode("utf-8"))
        if "_" in c.search_text:
            identifiers.update(m.lower().strip("_") for m in _IDENTIFIER.findall(c.search_text))
        for name, w in writers.items():
            w.add(getattr(c, name))
        lines.extend((c.start_line, c.end_line))
        path_of.append(paths.setdefault(c.path, len(paths)))
        meta_of.append(metas.setdefault(_meta_json(c), len(metas)))
        keys += embed_key(c.embed_text)         # 20 bytes
        n += 1
    for w in writers.values():
        w.close()
    compact.close()
    for name, values in (("words", words), ("identifiers", identifiers)):
        (folder / f"{name}.txt").write_bytes(("\n" + "".join(v + "\n" for v in sorted(values))).encode("utf-8"))
    # paths sorted so that a path is found by binary search; rows renumbered to match
    by_name = sorted(paths)
    renumber = np.zeros(len(paths), dtype=np.int32)
    for new, p in enumerate(by_name):
        renumber[paths[p]] = new
    write_strings(folder, "paths", by_name)
    write_strings(folder, "metas", list(metas))
    np.save(folder / "path.npy", renumber[np.frombuffer(path_of, dtype=np.int64)] if n else
            np.zeros(0, np.int32), allow_pickle=False)
    np.save(folder / "meta.npy", np.frombuffer(meta_of, dtype=np.int64).astype(np.int32), allow_pickle=False)
    np.save(folder / "lines.npy", np.frombuffer(lines, dtype=np.int64).astype(np.int32).reshape(n, 2),
            allow_pickle=False)
    np.save(folder / "keys.npy", np.frombuffer(keys, dtype="S20").reshape(n), allow_pickle=False)
    return n


class _Table:
    """What ChunkColumns and ChunkList share: filters and per-note lookups from the path and meta tables."""

    paths: Sequence[str]          # distinct note paths
    path_ids: np.ndarray          # int32 per row
    meta_ids: np.ndarray          # int32 per row
    _metas_cache: list | None = None
    _rows_by_path: tuple | None = None

    def metas(self) -> list[tuple[str, list[str], list[str]]]:
        raise NotImplementedError

    def tags(self) -> set[str]:
        return {t for _, tags, _ in self.metas() for t in tags}

    def folders(self) -> set[str]:
        return {p.rsplit("/", 1)[0] for p in self.paths if "/" in p}

    def rows_matching(self, tags=None, folder=None) -> np.ndarray:
        """Rows whose note has one of `tags` (case-insensitive, '#' optional) and lies in `folder`."""
        mask = np.ones(len(self.path_ids), dtype=bool)
        if tags:
            want = {t.lower().lstrip("#") for t in tags}
            good = np.array([bool(want & {t.lower() for t in m[1]}) for m in self.metas()], dtype=bool)
            mask &= good[self.meta_ids] if len(good) else False
        if folder:
            name = folder.strip("/")
            prefix = name + "/"
            good = np.array([(p + "/").startswith(prefix) or (p.rsplit("/", 1)[0] if "/" in p else "") == name
                             for p in self.paths], dtype=bool)
            mask &= good[self.path_ids] if len(good) else False
        return np.flatnonzero(mask).astype(np.int64)

    def rows_of_path(self, path: str) -> np.ndarray:
        """The rows of one note, in table order (rows are sorted by path, start line, id when written)."""
        pid = self.path_id(path)
        if pid < 0:
            return np.zeros(0, dtype=np.int64)
        if self._rows_by_path is None:
            order = np.argsort(self.path_ids, kind="stable")
            starts = np.searchsorted(self.path_ids[order], np.arange(len(self.paths) + 1))
            self._rows_by_path = (order, starts)
        order, starts = self._rows_by_path
        return order[starts[pid]:starts[pid + 1]].astype(np.int64)

    def path_id(self, path: str) -> int:
        raise NotImplementedError

    def rows_of_paths(self, paths) -> np.ndarray:
        """The rows of these notes, in table order (one pass over the distinct paths, not one search each)."""
        want = set(paths)
        if len(want) <= 64 and isinstance(self.paths, StringColumn):   # a few notes: found by binary search
            ids = [i for i in (self.paths.find(p) for p in want) if i >= 0]
            return np.flatnonzero(np.isin(self.path_ids, np.asarray(ids, dtype=self.path_ids.dtype))) \
                .astype(np.int64) if ids else np.zeros(0, np.int64)
        good = np.fromiter((p in want for p in self.paths), dtype=bool, count=len(self.paths))
        return np.flatnonzero(good[self.path_ids]).astype(np.int64) if len(good) else np.zeros(0, np.int64)

    def path(self, i: int) -> str:
        return self.paths[int(self.path_ids[i])]

    def title(self, i: int) -> str:
        return self.metas()[int(self.meta_ids[i])][0]


class ChunkColumns(_Table, Sequence[Chunk]):
    """The memory-mapped chunk table of a generation (see the module docstring)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._cols = {name: StringColumn.open(folder, name) for name in TEXT_FIELDS}
        self.paths = StringColumn.open(folder, "paths")
        self._metas = StringColumn.open(folder, "metas")
        self.path_ids = _mapped(folder / "path.npy")
        self.meta_ids = _mapped(folder / "meta.npy")
        self.lines = _mapped(folder / "lines.npy")
        self.keys = _mapped(folder / "keys.npy")
        self._metas_cache = None
        self._rows_by_path = None
        self._meta_rows: dict[int, tuple] = {}
        derived = [folder / f for f in ("words.txt", "identifiers.txt", "compact.bin")]
        if all(f.exists() for f in derived):
            self._words, self._identifiers, self._compact = (_map(f) for f in derived)
        else:        # a table written before these files: refusal.py reads the chunks as it always did
            for name in ("notes_text", "compact_text", "identifiers"):
                setattr(self, name, None)
        n = len(self._cols["id"])
        if any(len(c) != n for c in self._cols.values()) or self.lines.shape != (n, 2) \
                or len(self.path_ids) != n or len(self.meta_ids) != n or len(self.keys) != n:
            raise ValueError("the chunk columns have different lengths")
        if n and (int(self.path_ids.max(initial=0)) >= len(self.paths)
                  or int(self.meta_ids.max(initial=0)) >= len(self._metas)):
            raise ValueError("the chunk table points past its path or meta table")

    def __len__(self) -> int:
        return len(self.path_ids)

    def release(self) -> None:
        """Drop the resident pages read of the memory-mapped columns (they stay in the page cache)."""
        cols = [*self._cols.values(), self._metas, self.paths]
        arrays = [c._off for c in cols] + [self.path_ids, self.meta_ids, self.lines, self.keys]
        for m in [c._blob for c in cols] + [getattr(a.base, "_mmap", None) for a in arrays]:
            if hasattr(m, "madvise"):
                m.madvise(mmap.MADV_DONTNEED)

    def _meta(self, m: int) -> tuple:
        got = self._meta_rows.get(m)
        if got is None:
            title, tags, aliases = json.loads(self._metas[m])
            got = self._meta_rows[m] = (title, tags, aliases)
        return got

    def metas(self) -> list[tuple[str, list[str], list[str]]]:
        if self._metas_cache is None:
            self._metas_cache = [self._meta(m) for m in range(len(self._metas))]
        return self._metas_cache

    def title(self, i: int) -> str:
        return self._meta(int(self.meta_ids[i]))[0]

    def path_id(self, path: str) -> int:
        return self.paths.find(path)

    def field(self, name: str, i: int) -> str:
        return self._cols[name][i]

    # what refusal.py asks of the notes' whole text, from files written with the table
    def notes_text(self):
        """(the notes' lowercased words, the lowercased text for `part in text`) as refusal.py reads them."""
        return _Framed(self._words), _Substrings(self._words)

    def compact_text(self):
        return _Substrings(self._compact)

    def identifiers(self):
        return _Framed(self._identifiers)

    def text(self, i: int) -> str:
        return self._cols["text"][i]

    def search_text(self, i: int) -> str:
        return self._cols["search_text"][i]

    def embed_text(self, i: int) -> str:
        return self._cols["embed_text"][i]

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        title, tags, aliases = self._meta(int(self.meta_ids[i]))
        start, end = self.lines[i]
        c = self._cols
        return Chunk(id=c["id"][i], path=self.paths[int(self.path_ids[i])], title=title,
                     heading=c["heading"][i], start_line=int(start), end_line=int(end), text=c["text"][i],
                     embed_text=c["embed_text"][i], search_text=c["search_text"][i], tags=list(tags),
                     aliases=list(aliases))

    def __iter__(self) -> Iterator[Chunk]:
        for i in range(len(self)):
            yield self[i]


class ChunkList(_Table, Sequence[Chunk]):
    """The same table over Chunk objects in memory (an index written before columns, or a fresh build)."""

    def __init__(self, chunks: list[Chunk]):
        self._chunks = chunks
        self.paths = sorted({c.path for c in chunks})
        index = {p: i for i, p in enumerate(self.paths)}
        self._path_index = index
        self.path_ids = np.asarray([index[c.path] for c in chunks], dtype=np.int32)
        metas: dict[str, int] = {}
        self.meta_ids = np.asarray([metas.setdefault(_meta_json(c), len(metas)) for c in chunks], dtype=np.int32)
        self._metas_list = [tuple(json.loads(m)) for m in metas]
        self._metas_cache = None
        self._rows_by_path = None
        self.keys = np.asarray([embed_key(c.embed_text) for c in chunks], dtype="S20").reshape(len(chunks))
        self.lines = np.asarray([(c.start_line, c.end_line) for c in chunks], dtype=np.int32).reshape(-1, 2)

    def field(self, name: str, i: int) -> str:
        return getattr(self._chunks[i], name)

    def notes_text(self):
        text = "\n".join(c.text for c in self._chunks).lower()
        return frozenset(_PART.findall(text)), text

    def compact_text(self):
        return "".join(_PART.findall(self.notes_text()[1]))

    def identifiers(self):
        return frozenset(m.lower().strip("_") for c in self._chunks if "_" in c.search_text
                         for m in _IDENTIFIER.findall(c.search_text))

    def metas(self):
        return self._metas_list

    def path_id(self, path: str) -> int:
        return self._path_index.get(path, -1)

    def text(self, i: int) -> str:
        return self._chunks[i].text

    def search_text(self, i: int) -> str:
        return self._chunks[i].search_text

    def embed_text(self, i: int) -> str:
        return self._chunks[i].embed_text

    def __len__(self) -> int:
        return len(self._chunks)

    def __getitem__(self, i):
        return self._chunks[i]

    def __iter__(self) -> Iterator[Chunk]:
        return iter(self._chunks)
