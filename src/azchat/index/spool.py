"""The chunks of a full build kept on disk while the build runs, not as Python objects in memory: each chunk is
one JSON line in an anonymous temporary file beside the index (gone when closed, and on a crash), read back one
at a time. What stays in memory per chunk is its sort key and the line's offset."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from ..types import Chunk


class ChunkSpool:
    """A list of chunks on disk: append(), len(), [i], and the (path, start_line, id) key of each without reading."""

    def __init__(self, folder: Path):
        self._file = tempfile.TemporaryFile(dir=folder, prefix=".spool-")
        self._offsets: list[int] = []
        self.keys: list[tuple[str, int, str]] = []
        self._end = 0

    def append(self, chunk: Chunk) -> None:
        line = json.dumps(chunk.to_dict(), ensure_ascii=False).encode("utf-8") + b"\n"
        self._file.seek(self._end)
        self._file.write(line)
        self._offsets.append(self._end)
        self._end += len(line)
        self.keys.append((chunk.path, chunk.start_line, chunk.id))

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

    def close(self) -> None:
        self._file.close()
