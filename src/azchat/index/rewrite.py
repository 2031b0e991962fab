"""An update that rewrites every row: the kept rows of the old generation and the fresh chunks, sorted by
(path, start_line, id) into one new generation. That is a small index's update (below segment_from() rows: in
memory, it is cheap) and the merge of a segmented index into a new base (segments.py), which streams as a full
build does (streaming.py): the sort keys come from the old generation's memory-mapped columns as arrays (a
path number and a start line per row, not a Python tuple), the vectors go in final row order to a temp file
(VectorFile; old rows copied from the memory-mapped old vectors a block at a time, float16 -> float32 as the
in-memory path casts them), and BM25's postings are spilled in runs. Both write the same bytes."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from . import dense
from .bm25_writer import BM25Writer
from .spool import VectorFile, key_order
from .store import Generation, write_generation
from ..types import Chunk

IN_MEMORY: bool | None = None     # None: in memory below segment_from() rows, streamed from there (tests force)


def in_memory(rows: int) -> bool:
    from .segments import segment_from

    return IN_MEMORY if IN_MEMORY is not None else rows < max(segment_from(), 1)


def write_rewrite(index_dir: Path, old: Generation, kept_rows: np.ndarray, fresh: list[Chunk],
                  fresh_vecs: np.ndarray, common: dict, threshold: int, log: Callable[[str], None]) -> int:
    """Write the generation of the old rows kept and the fresh chunks (vectors fresh_vecs); returns its rows."""
    kept_rows = np.asarray(kept_rows, dtype=np.int64)
    if in_memory(len(kept_rows) + len(fresh)):
        return _write_in_memory(index_dir, old, kept_rows.tolist(), fresh, fresh_vecs, common, threshold)
    return _write_streamed(index_dir, old, kept_rows, fresh, fresh_vecs, common, threshold, log)


def merged_in_memory(old: Generation, kept_rows, start_line: Callable[[int], int], fresh: list[Chunk],
                     fresh_vecs: np.ndarray) -> tuple[list[tuple], np.ndarray]:
    """The kept old rows and the fresh chunks sorted by (path, start_line, id), as (key, old row or -1, fresh
    index or -1) entries, and their float32 vectors in that order (old rows' from the old generation)."""
    table = old.chunks
    keyed = [((table.path(r), start_line(r), table.field("id", r)), int(r), -1) for r in kept_rows]
    keyed += [((c.path, c.start_line, c.id), -1, i) for i, c in enumerate(fresh)]
    keyed.sort(key=lambda e: e[0])
    vectors = np.zeros((len(keyed), fresh_vecs.shape[1]), dtype=np.float32)
    old_at = np.asarray([n for n, e in enumerate(keyed) if e[1] >= 0], dtype=np.int64)
    if len(old_at):
        vectors[old_at] = old.vectors[np.asarray([keyed[n][1] for n in old_at], dtype=np.int64)]
    new_at = [(n, e[2]) for n, e in enumerate(keyed) if e[1] < 0]
    if new_at:
        vectors[[n for n, _ in new_at]] = fresh_vecs[[i for _, i in new_at]]
    return keyed, vectors


def _write_in_memory(index_dir, old, kept_rows, fresh, fresh_vecs, common, threshold) -> int:
    # old rows stay where they are, read from the old table when written; fresh chunks are merged in
    table = old.chunks
    keyed, vectors = merged_in_memory(old, kept_rows, lambda r: int(table.lines[r][0]), fresh, fresh_vecs)

    def rows():
        for _, r, i in keyed:
            yield table[r] if r >= 0 else fresh[i]

    # BM25 with numpy alone (BM25Writer: bm25s's "lucene" scores without importing bm25s and scipy, which
    # cost a one-note rebuild ~0.2 s)
    lexical = BM25Writer()
    for _, r, i in keyed:
        lexical.add(table.search_text(r) if r >= 0 else fresh[i].search_text)
    kind = dense.choose_kind(len(keyed), threshold)
    dense_index, dense_index_params = dense.build(vectors, kind)
    manifest = {**common, "dense": dense_index_params}
    write_generation(index_dir, manifest, rows(), vectors, {
        "dense.faiss": lambda p: dense.write(dense_index, p),
        "bm25": lexical.save,
    })
    return len(keyed)


def _parts(table, rows: np.ndarray):
    """(its table, its rows) of each part these rows of the old table lie in: a segmented generation's view
    (segments.ChunkView) is its base's live rows then its segment's rows; another table is one part."""
    base_live = getattr(table, "base_live", None)
    if base_live is None:
        return [(table, rows)]
    nb = len(base_live)
    return [(table.base, np.asarray(base_live)[rows[rows < nb]]), (table.segment, rows[rows >= nb] - nb)]


def merge_order(table, kept_rows: np.ndarray, fresh: list[Chunk]) -> np.ndarray:
    """The positions (kept_rows' rows first, then the fresh chunks) in the order of a stable sort of their
    keys (path, start_line, id), as Python sorts those tuples, from the columns: a path number (the paths'
    sorted rank) and a start line per row; ids are read only where path and line tie (rare)."""
    parts, names = [], {c.path for c in fresh}
    for part, rows in _parts(table, kept_rows):
        ids = np.asarray(part.path_ids)[rows].astype(np.int64)
        used = np.unique(ids)
        paths = [part.paths[int(u)] for u in used.tolist()]
        names.update(paths)
        parts.append((np.searchsorted(used, ids), paths, np.asarray(part.lines)[rows, 0].astype(np.int64)))
    rank = {p: n for n, p in enumerate(sorted(names))}
    notes = [np.asarray([rank[p] for p in paths], dtype=np.int64)[local] if len(local) else
             np.zeros(0, np.int64) for local, paths, _ in parts]
    notes.append(np.asarray([rank[c.path] for c in fresh], dtype=np.int64))
    lines = [line for _, _, line in parts] + [np.asarray([c.start_line for c in fresh], dtype=np.int64)]
    nk = len(kept_rows)
    return key_order(np.concatenate(notes), np.concatenate(lines),
                     lambda pos: table.field("id", int(kept_rows[pos])) if pos < nk else fresh[pos - nk].id)


def _release(vectors, table) -> None:
    """Let go of the pages read of the old generation's memory-mapped vectors and columns (base and segment)."""
    for part in (vectors, getattr(vectors, "base", None), getattr(vectors, "segment", None)):
        if part is not None:
            dense.release(part)
    for part in (table, getattr(table, "base", None), getattr(table, "segment", None)):
        if hasattr(part, "release"):
            part.release()


def _write_streamed(index_dir, old, kept_rows, fresh, fresh_vecs, common, threshold, log) -> int:
    from .streaming import write_streamed

    table, nk = old.chunks, len(kept_rows)
    order = merge_order(table, kept_rows, fresh)
    n, dim = len(order), fresh_vecs.shape[1]
    log(f"Merging {nk} kept and {len(fresh)} new chunks into one index")
    lexical, file = BM25Writer(spill=index_dir), VectorFile(index_dir, n, dim)
    try:
        for lo in range(0, n, dense.BLOCK):        # vectors in final row order, a block at a time
            pos = order[lo:lo + dense.BLOCK]
            block = np.empty((len(pos), dim), dtype=np.float32)
            is_old = pos < nk
            if is_old.any():
                block[is_old] = old.vectors[kept_rows[pos[is_old]]]
                _release(old.vectors, None)
            if not is_old.all():
                block[~is_old] = fresh_vecs[pos[~is_old] - nk]
            file.write(np.arange(lo, lo + len(pos), dtype=np.int64), block)

        def rows():                 # each row read once: to the chunk table, and its words to BM25
            for lo in range(0, n, dense.BLOCK):
                _release(None, table)
                for p in order[lo:lo + dense.BLOCK].tolist():
                    if p < nk:
                        r = int(kept_rows[p])
                        lexical.add(table.search_text(r))
                        yield table[r]
                    else:
                        lexical.add(fresh[p - nk].search_text)
                        yield fresh[p - nk]

        return write_streamed(index_dir, common, rows(), file, lexical, threshold, log)
    finally:
        lexical.close()
        file.close()
