"""The notes of an index as a memory-mapped table (notes/ in a generation) instead of a JSON object in the
manifest, and a fast scan of the notes folder.

    notes/
      paths.bin + paths.off.npy     the note paths (relative to the notes folder), sorted
      stat.npy                      (n, 4) int64: mtime_ns, size, chunks, flags (1: the note has warnings)
      hash.bin + hash.off.npy       the content hash of each note
      info.bin + info.off.npy       the rest of each note's entry (title, tags, warnings, ...) as JSON,
                                    parsed only when that note's entry is read
      removed.bin + removed.off.npy (a segment's table, when any) notes of the base that are gone, sorted

A full generation (a base) writes every note once. A segment generation (segments.py) writes only the notes
changed since its base and the base's notes removed since; reading it overlays them on the base's table.
A one-note update therefore writes a few rows instead of a 21 MB manifest at 64k notes, and opening an
index parses no per-note JSON. Checking the folder for changes compares stat results with the stat column
(`scan_notes` stats each note once, through os.scandir).

Manifests of format 2 kept the notes in manifest["notes"] (a dict); they are still read (`notes_of` gives the
same interface over a dict), and the next update writes a table.
"""
from __future__ import annotations

import hashlib
import json
import os
import stat as stat_mod
from collections.abc import Mapping
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .columns import StringColumn, _mapped, write_strings

FOLDER = "notes"
WARNED = 1
_STAT_KEYS = ("hash", "mtime_ns", "size", "chunks")


# -- writing ----------------------------------------------------------------------------------------------
def write_notes(folder: Path, notes: Mapping[str, dict], removed: Iterable[str] = ()) -> int:
    """Write a notes table (every note of a base, or a segment's changed notes and removed base notes)."""
    folder.mkdir(parents=True, exist_ok=True)
    names = sorted(notes)
    table = np.zeros((len(names), 4), dtype=np.int64)
    hashes, infos = [], []
    for i, rel in enumerate(names):
        m = notes[rel]
        warned = WARNED if m.get("warnings") else 0
        table[i] = (int(m.get("mtime_ns") or 0), int(m.get("size") or 0), int(m.get("chunks") or 0), warned)
        hashes.append(str(m.get("hash", "")))
        infos.append(json.dumps({k: v for k, v in m.items() if k not in _STAT_KEYS}, ensure_ascii=False))
    write_strings(folder, "paths", names)
    write_strings(folder, "hash", hashes)
    write_strings(folder, "info", infos)
    if removed:                  # only a segment's table has them (an empty file could not be checked)
        write_strings(folder, "removed", sorted(set(removed)))
    np.save(folder / "stat.npy", table, allow_pickle=False)
    return len(names)


# -- reading ----------------------------------------------------------------------------------------------
def decode_all(column) -> list[str]:
    """Every row of a StringColumn (or a list), decoded in one pass over plain ints (iterating the column
    indexes numpy offsets per row: ~10x slower at 64k rows)."""
    if not isinstance(column, StringColumn):
        return list(column)
    off = column._off.tolist()
    data = bytes(column._blob[: off[-1]]) if off[-1] else b""
    return [data[a:b].decode("utf-8") for a, b in zip(off[:-1], off[1:])]


def _damaged(folder: Path, exc: Exception):
    from ..errors import IndexCorruptError
    from .store import REBUILD_HINT

    return IndexCorruptError(f"The index in {Path(folder).parent} is damaged (its notes table: {exc}). "
                             f"{REBUILD_HINT}")


def _column(folder: Path, name: str) -> StringColumn:
    try:
        return StringColumn.open(folder, name)
    except ValueError:
        raise ValueError(f"{FOLDER}/{name} and its offsets disagree") from None


class _Part:
    """One notes/ folder, memory-mapped."""

    def __init__(self, folder: Path):
        self.paths = _column(folder, "paths")
        self.hash = _column(folder, "hash")
        self.info = _column(folder, "info")
        self.removed = _column(folder, "removed") if (folder / "removed.bin").exists() else []
        self.stat = _mapped(folder / "stat.npy")
        if self.stat.dtype != np.int64:
            raise ValueError("notes/stat.npy has the wrong type")
        n = len(self.paths)
        if len(self.hash) != n or len(self.info) != n or self.stat.shape != (n, 4):
            raise ValueError("the notes table's columns have different lengths")
        self._names: list[str] | None = None

    def names(self) -> list[str]:
        if self._names is None:
            self._names = decode_all(self.paths)
        return self._names

    def entry(self, i: int) -> dict:
        mtime, size, chunks, _ = (int(x) for x in self.stat[i])
        return {"hash": self.hash[i], "mtime_ns": mtime, "size": size, **json.loads(self.info[i]),
                "chunks": chunks}


class NoteTable(Mapping):
    """The notes of a generation, {path: entry} as manifest["notes"] was: its own table, over its base's
    table for a segment. Opened when first used; lookups are binary searches, bulk reads use the columns."""

    def __init__(self, folder: Path, base: "NoteTable | None" = None, sums: dict | None = None):
        self.folder, self.base = Path(folder), base
        self.sums = sums        # {file name: sha256}: checked when opened (as the manifest's JSON was)
        self._part: _Part | None = None
        self._len: int | None = None
        self._removed: set[str] | None = None

    @property
    def part(self) -> _Part:
        if self._part is None:
            try:
                if self.sums is not None:
                    from .models import file_sha256

                    for name, want in self.sums.items():
                        if file_sha256(self.folder / name) != want:
                            raise ValueError(f"{FOLDER}/{name} does not match its checksum")
                self._part = _Part(self.folder)
            except (OSError, ValueError) as exc:
                raise _damaged(self.folder, exc) from exc
        return self._part

    def _entry(self, i: int) -> dict:
        try:
            return self.part.entry(i)
        except (ValueError, TypeError, IndexError) as exc:   # undecodable bytes, bad JSON
            raise _damaged(self.folder, exc) from exc

    def check(self) -> "NoteTable":
        """Open (and verify) this generation's own table now: IndexCorruptError on damage. A base's table
        is checked when the base generation is loaded."""
        self.part
        return self

    def _removed_set(self) -> set[str]:
        if self._removed is None:
            self._removed = set(decode_all(self.part.removed))
        return self._removed

    def own(self) -> dict[str, dict]:
        """This part's own entries (a segment's changed notes)."""
        p = self.part
        return {name: self._entry(i) for i, name in enumerate(p.names())}

    def removed(self) -> set[str]:
        return set(self._removed_set())

    def __getitem__(self, rel: str) -> dict:
        if not isinstance(rel, str):
            raise KeyError(rel)
        i = self.part.paths.find(rel)
        if i >= 0:
            return self._entry(i)
        if self.base is not None and rel not in self._removed_set():
            return self.base[rel]
        raise KeyError(rel)

    def __contains__(self, rel) -> bool:
        try:
            self[rel]
        except KeyError:
            return False
        return True

    def names(self) -> list[str]:
        """Every note path, sorted."""
        own = self.part.names()
        if self.base is None:
            return list(own)
        gone = self._removed_set() | set(own)
        return sorted([n for n in self.base.names() if n not in gone] + own)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        if self._len is None:
            self._len = len(self.part.names()) if self.base is None else len(self.names())
        return self._len

    def flat(self) -> tuple[list[str], np.ndarray]:
        """(every note path, their (mtime_ns, size) as an (n, 2) int64 array), the segment's over the base's."""
        own = self.part
        mine = np.asarray(own.stat[:, :2], dtype=np.int64)
        if self.base is None:
            return own.names(), mine
        names, table = self.base.flat()
        gone = self._removed_set() | set(own.names())
        keep = [i for i, n in enumerate(names) if n not in gone] if gone else None
        if keep is not None:
            names, table = [names[i] for i in keep], table[np.asarray(keep, dtype=np.int64)]
        return names + own.names(), np.concatenate([table, mine]) if len(mine) else table

    def match(self, rels: list[str], stats: list[tuple[int, int]]):
        """For notes found on disk: (their names known here, a bool array: known with the same mtime and
        size), compared as arrays (a 64k-note folder: no dict of tuples, no entry parsed)."""
        names, table = self.flat()
        return _match(names, table, rels, stats)

    def warnings(self) -> dict[str, list]:
        """{path: warnings} of the notes that have some (only those entries are parsed)."""
        p = self.part
        mine = {p.names()[i]: self._entry(i).get("warnings", []) for i in np.flatnonzero(p.stat[:, 3] & WARNED)}
        if self.base is None:
            return mine
        gone = self._removed_set() | set(p.names())
        out = {k: v for k, v in self.base.warnings().items() if k not in gone}
        out.update(mine)
        return out

    def entries(self) -> dict[str, dict]:
        """Every entry as a dict (a full rebuild or a merge writes them all)."""
        if self.base is None:
            return self.own()
        out = self.base.entries()
        for rel in self._removed_set():
            out.pop(rel, None)
        out.update(self.own())
        return out

    def __eq__(self, other) -> bool:
        return isinstance(other, Mapping) and dict(self.items()) == dict(other.items())

    __hash__ = None

    def __repr__(self) -> str:
        return f"NoteTable({self.folder}, {len(self)} notes)"


class DictNotes(dict):
    """A format-2 manifest's notes dict with NoteTable's bulk methods."""

    def names(self) -> list[str]:
        return sorted(self)

    def warnings(self) -> dict[str, list]:
        return {k: m["warnings"] for k, m in self.items() if m.get("warnings")}

    def entries(self) -> dict[str, dict]:
        return dict(self)

    def match(self, rels: list[str], stats: list[tuple[int, int]]):
        names = list(self)
        table = np.asarray([(_int(m.get("mtime_ns")), _int(m.get("size"))) for m in self.values()],
                           dtype=np.int64).reshape(-1, 2)
        return _match(names, table, rels, stats)


def _int(x) -> int:
    return x if isinstance(x, int) else -1


def _match(names: list[str], table: np.ndarray, rels: list[str], stats) -> tuple[list[str], np.ndarray]:
    pos = dict(zip(names, range(len(names))))
    idx = np.fromiter((pos.get(r, -1) for r in rels), dtype=np.int64, count=len(rels))
    st = np.asarray(stats, dtype=np.int64).reshape(-1, 2)
    known = idx >= 0
    same = known & (table[np.maximum(idx, 0)] == st).all(axis=1) if len(table) else known
    return names, same


def notes_of(manifest: dict) -> NoteTable | DictNotes:
    """A manifest's notes, whichever way they are stored."""
    notes = manifest.get("notes")
    if isinstance(notes, NoteTable):
        return notes
    return DictNotes(notes or {})


def attach(manifest: dict, folder: Path) -> dict:
    """Put the notes table of the generation in `folder` at manifest["notes"] (lazily opened), as readers
    of manifest["notes"] expect; a format-2 manifest keeps its dict. A segment's table overlays its base's."""
    spec = manifest.get("notes_table")
    if not isinstance(spec, dict):
        return manifest
    base = None
    if spec.get("delta"):
        ref = manifest.get("base") or {}
        name = str(ref.get("name", ""))
        if not name.startswith("gen-") or "/" in name:
            raise ValueError("a segment's notes table without a base")
        base = Path(folder).parent / name
        try:
            raw = (base / "manifest.json").read_bytes()
            if ref.get("sha256") and hashlib.sha256(raw).hexdigest() != ref["sha256"]:
                raise ValueError("the base's manifest does not match its checksum")
            base_sums = json.loads(raw).get("sha256")
        except OSError as exc:
            raise ValueError(f"its base is unreadable: {exc}") from exc
        base = NoteTable(base / FOLDER, sums=_notes_sums(base_sums))
    manifest["notes"] = NoteTable(Path(folder) / FOLDER, base, _notes_sums(manifest.get("sha256")))
    return manifest


def _notes_sums(sums) -> dict | None:
    if not isinstance(sums, dict):
        return None             # an index written without checksums
    prefix = FOLDER + "/"
    return {k[len(prefix):]: v for k, v in sums.items() if k.startswith(prefix) and "/" not in k[len(prefix):]}


# -- scanning the notes folder ----------------------------------------------------------------------------
def scan_notes(root: Path):
    """find_notes (notes.py) with each note's stat: (paths, rels, stats, skipped), the same notes in the same
    order; one os.scandir per folder and one stat per note (find_notes' Path objects and three stats per note
    cost seconds at 64k notes)."""
    from ..errors import NotesNotFoundError
    from ..notes.reading import NOTE_SUFFIXES, Skipped, link_problem, printable

    root = Path(root)
    if not root.is_dir():
        raise NotesNotFoundError(f"Notes folder {root} does not exist or is not a folder.")
    real_root = root.resolve()
    top = os.fspath(root)
    paths: list[str] = []
    rels: list[str] = []
    stats: list[tuple[int, int]] = []
    skipped: list = []

    def walk(folder: str, prefix: str) -> None:
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            return                    # os.walk ignores folders it cannot list
        subdirs = []
        for e in entries:
            try:
                is_dir = e.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                if not e.name.startswith("."):
                    subdirs.append(e)
                continue
            name = e.name
            if name.startswith(".") or not name.lower().endswith(NOTE_SUFFIXES):
                continue
            rel = prefix + name
            try:
                rel.encode("utf-8")
            except UnicodeEncodeError:
                skipped.append(Skipped(printable(rel), "the file name is not valid UTF-8; rename it"))
                continue
            try:
                if e.is_symlink():
                    try:
                        problem = link_problem(Path(e.path), real_root)
                    except FileNotFoundError:
                        continue
                    if problem:
                        skipped.append(Skipped(rel, problem))
                        continue
                st = e.stat()
            except OSError:
                continue
            if not stat_mod.S_ISREG(st.st_mode):
                continue
            paths.append(e.path)
            rels.append(rel)
            stats.append((st.st_mtime_ns, st.st_size))
        for d in subdirs:
            try:
                if d.is_symlink():    # os.walk(followlinks=False) does not enter linked folders
                    continue
            except OSError:
                continue
            walk(d.path, prefix + d.name + "/")

    walk(top, "")
    return paths, rels, stats, skipped
