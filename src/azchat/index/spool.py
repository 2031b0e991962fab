"""What a full build keeps on disk while it runs, not in memory: its chunks (ChunkSpool: one JSON line each in an
anonymous temporary file beside the index, gone when closed, and on a crash, read back one at a time) and their
vectors (VectorFile: float32 rows in another one). What stays in memory per chunk is 20 bytes: the line's
offset, the note's number and the start line (the sort key without Python objects)."""
from __future__ import annotations

import json
import os
import tempfile
from array import array
from pathlib import Path

import numpy as np

from ..types import Chunk


class ChunkSpool:
    """A list of chunks on disk: append(), len(), [i], key(i), and order(): the rows sorted by
    (path, start_line, id) without reading the chunks back (only those that tie on path and line)."""

    def __init__(self, folder: Path):
        self._file = tempfile.TemporaryFile(dir=folder, prefix=".spool-")
        self._offsets = array("q")
        self._note = array("i")             # number of the chunk's path in _paths
        self._line = array("q")
        self._paths: dict[str, int] = {}
        self._end = 0

    def append(self, chunk: Chunk) -> None:
        line = json.dumps(chunk.to_dict(), ensure_ascii=False).encode("utf-8") + b"\n"
        self._file.seek(self._end)
        self._file.write(line)
        self._offsets.append(self._end)
        self._end += len(line)
        self._note.append(self._paths.setdefault(chunk.path, len(self._paths)))
        self._line.append(chunk.start_line)

    def extend(self, chunks) -> None:
        for chunk in chunks:
            self.append(chunk)

    def __len__(self) -> int:
        return len(self._offsets)

    def __getitem__(self, i: int) -> Chunk:
        self._file.seek(self._offsets[i])
        return Chunk.from_dict(json.loads(self._file.readline()))

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def key(self, i: int) -> tuple[str, int, str]:
        """The sort key of row i: (path, start_line, id)."""
        return self[i].path, self._line[i], self[i].id

    def order(self) -> np.ndarray:
        """The rows in the order of sorted((path, start_line, id)), stable: what a sort of every key gives."""
        n = len(self)
        rank = np.zeros(len(self._paths), dtype=np.int64)
        rank[[self._paths[p] for p in sorted(self._paths)]] = np.arange(len(self._paths))
        note = rank[np.frombuffer(self._note, dtype=np.int32)] if n else np.zeros(0, np.int64)
        line = np.frombuffer(self._line, dtype=np.int64) if n else np.zeros(0, np.int64)
        return key_order(note, line, lambda r: self[r].id)

    def close(self) -> None:
        self._file.close()


def key_order(note: np.ndarray, line: np.ndarray, id_of) -> np.ndarray:
    """Positions in the order of a stable sort of their (path, start_line, id) keys, as Python sorts those
    tuples: `note` is each position's path as its rank among the sorted paths, `line` its start line, and
    id_of(position) is asked only where path and line tie (rows of one note starting on the same line: rare)."""
    order = np.lexsort((line, note))
    same = np.flatnonzero((note[order][1:] == note[order][:-1]) & (line[order][1:] == line[order][:-1]))
    start = 0
    while start < len(same):
        end = start
        while end + 1 < len(same) and same[end + 1] == same[end] + 1:
            end += 1
        lo, hi = int(same[start]), int(same[end]) + 2
        order[lo:hi] = sorted(order[lo:hi].tolist(), key=lambda r: (id_of(r), r))
        start = end + 1
    return order


class VectorFile:
    """float32 rows of `dim` in an anonymous temporary file: rows written at any position (pwrite, so nothing
    of it is held by this process) and read back memory-mapped."""

    def __init__(self, folder: Path, rows: int, dim: int):
        self._file = tempfile.TemporaryFile(dir=folder, prefix=".vectors-")
        self.rows, self.dim = rows, dim
        self._file.truncate(rows * dim * 4)

    def write(self, at: np.ndarray, vectors: np.ndarray) -> None:
        """vectors[k] becomes row at[k]; runs of consecutive rows are written in one call."""
        by_row, at, runs = _runs(at)
        if not len(at):
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)[by_row]
        fd = self._file.fileno()
        for lo, hi in runs:
            data, pos = memoryview(vectors[lo:hi]).cast("B"), int(at[lo]) * self.dim * 4
            while len(data):
                done = os.pwrite(fd, data, pos)
                data, pos = data[done:], pos + done

    def gather(self, rows: np.ndarray) -> np.ndarray:
        """float32 rows[k] of the file, read with pread: scattered rows through a memory map would map whole
        large folios of the page cache (~2 MB a fault on this kernel), nearly the whole file for a few thousand
        rows; pread copies only the rows and maps nothing."""
        by_row, at, runs = _runs(rows)
        out = np.empty((len(at), self.dim), dtype=np.float32)
        fd, width = self._file.fileno(), self.dim * 4
        for lo, hi in runs:
            data = os.pread(fd, (hi - lo) * width, int(at[lo]) * width)
            out[by_row[lo:hi]] = np.frombuffer(data, dtype=np.float32).reshape(hi - lo, self.dim)
        return out

    def array(self) -> np.ndarray:
        """The rows, memory-mapped read-only (dense.release lets go of the pages read)."""
        if not self.rows:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.memmap(self._file, dtype=np.float32, mode="r", shape=(self.rows, self.dim))

    def close(self) -> None:
        self._file.close()


def _runs(rows) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """(order, rows in that order, (lo, hi) of each run of consecutive rows in it): one pread/pwrite a run."""
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    by_row = np.argsort(rows, kind="stable")
    at = rows[by_row]
    breaks = (np.flatnonzero(np.diff(at) != 1) + 1).tolist()
    return by_row, at, [(lo, hi) for lo, hi in zip([0, *breaks], [*breaks, len(at)]) if hi > lo]
