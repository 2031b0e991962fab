"""The word lists the chunk table writes for refusal.py (words.txt, identifiers.txt, compact.bin; columns.py),
read memory-mapped: `word in it` and `part in it` without building a set per process."""
from __future__ import annotations

import mmap
from pathlib import Path


class _Framed:
    """`word in it`: a "\n"-framed word list, memory-mapped and searched (no set built per process)."""

    def __init__(self, blob):
        self._blob = blob

    def __contains__(self, word) -> bool:
        return isinstance(word, str) and self._blob.find(("\n" + word + "\n").encode("utf-8")) >= 0


class _Substrings:
    """`part in it`: a substring search in a memory-mapped blob (a letters-and-digits part occurs in the text
    exactly when it occurs inside one of its words)."""

    def __init__(self, blob):
        self._blob = blob

    def __contains__(self, part) -> bool:
        return isinstance(part, str) and self._blob.find(part.encode("utf-8")) >= 0


def _map(path: Path):
    if path.stat().st_size == 0:
        return b""
    with open(path, "rb") as fh:
        return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
