"""Reusing vectors: a chunk whose text the last build embedded already takes that vector (found by the sha1 of
its embed_text in the old generation's key column), so a rebuild embeds only new text."""
from __future__ import annotations

import hashlib

import numpy as np

from .store import Generation


def text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _find_keys(keys: np.ndarray, want: list[bytes]) -> np.ndarray:
    """For each wanted key, a row of `keys` that has it, or -1 (binary search over the sorted keys)."""
    if len(keys) == 0 or not want:
        return np.full(len(want), -1, dtype=np.int64)
    if len(want) <= 256 and keys.dtype == np.dtype("S20"):
        # a few wanted keys (a one-note update): their first 8 bytes matched as integers over the table, then
        # the few candidates compared whole -- no sort of a million keys
        prefix = np.ascontiguousarray(keys).view(np.dtype([("p", "<u8"), ("rest", "V12")]))["p"]   # no copy
        w_prefix = np.frombuffer(b"".join(bytes(k).ljust(20, b"\0")[:8] for k in want), dtype="<u8")
        hits = np.flatnonzero(np.isin(prefix, w_prefix)) if len(want) > 8 else \
            np.concatenate([np.flatnonzero(prefix == w) for w in w_prefix])
        first: dict[bytes, int] = {}
        for r in sorted(set(hits.tolist())):
            first.setdefault(bytes(keys[r]), r)
        return np.asarray([first.get(bytes(k).rstrip(b"\0"), -1) for k in want], dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    w = np.asarray(want, dtype=keys.dtype)
    pos = np.minimum(np.searchsorted(ordered, w), len(ordered) - 1)
    return np.where(ordered[pos] == w, order[pos], -1).astype(np.int64)


def cached_vectors(old: Generation, want: list[bytes]) -> list:
    """For each wanted embedding key, a vector of the old generation with that key, or None. A base + segment
    generation is searched part by part (no view of a million keys gathered), the base's deleted rows too:
    an edited note's unchanged chunks find their old vectors there."""
    parts = [(old.chunks.keys, old.vectors)] if old.base is None else \
        [(old.segment.chunks.keys, old.segment.vectors), (old.base.chunks.keys, old.base.vectors)]
    out: list = [None] * len(want)
    for keys, vectors in parts:
        missing = [i for i, v in enumerate(out) if v is None]
        if not missing:
            break
        rows = _find_keys(np.asarray(keys), [want[i] for i in missing])
        for i, r in zip(missing, rows.tolist()):
            if r >= 0:
                out[i] = np.asarray(vectors[r], dtype=np.float32)
    return out
