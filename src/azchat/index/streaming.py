"""A full build's writing, streamed: its chunks come from the spool (spool.py) in sorted order, its vectors go
to a temp file in that order as they are embedded (VectorFile) and are copied into the new generation and
encoded into the FAISS file a block at a time (dense.write_flat, ivf_writer.write_ivf), and its BM25 postings
go to disk in runs (bm25_writer.py). So memory holds one block of vectors, one run of postings and a few
arrays of 8 bytes per chunk (the spool's offsets and keys, the sort order, IVF's list of each vector), not the
corpus's vectors, lists and postings. The generation is written as every other (store.write_generation): a
crash at any point leaves the last good index, and the temp files are unnamed (nothing left behind)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from . import dense
from .bm25_writer import BM25Writer
from .ivf_writer import write_ivf
from .spool import ChunkSpool, VectorFile
from .store import write_generation


class StreamedVectors:
    """Where a full build's vectors go as they are computed: row i of the spool lands at its sorted place."""

    def __init__(self, folder: Path, spool: ChunkSpool, dim: int):
        self.order = spool.order()                       # sorted row n is spool row order[n]
        self.place = np.empty(len(self.order), dtype=np.int64)
        self.place[self.order] = np.arange(len(self.order), dtype=np.int64)
        self.file = VectorFile(folder, len(self.order), dim)

    def __setitem__(self, rows, vectors: np.ndarray) -> None:
        """fresh_vecs[rows] = vectors, as the in-memory build writes them."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        self.file.write(self.place[rows], np.asarray(vectors, dtype=np.float32).reshape(len(rows), -1))

    def close(self) -> None:
        self.file.close()


def write_full(index_dir: Path, spool: ChunkSpool, vectors: StreamedVectors, common: dict, threshold: int,
               log: Callable[[str], None]) -> int:
    """Write the generation of a full build; returns its chunk count."""
    lexical = BM25Writer(spill=index_dir)
    order = vectors.order

    def rows():                     # each chunk read back once: to the chunk table, and its words to BM25
        for r in order.tolist():
            chunk = spool[r]
            lexical.add(chunk.search_text)
            yield chunk

    try:
        return write_streamed(index_dir, common, rows(), vectors.file, lexical, threshold, log)
    finally:
        lexical.close()


def write_streamed(index_dir: Path, common: dict, rows, file: VectorFile, lexical: BM25Writer, threshold: int,
                   log: Callable[[str], None]) -> int:
    """Write a generation of these rows (a generator that also adds each row's words to `lexical`) and the
    float32 vectors in `file` (row n's at n): the vectors copied and encoded into the FAISS file a block at a
    time (dense.write_flat, ivf_writer.write_ivf, which reads each list's scattered rows with file.gather;
    faiss's in-memory build when its layout differs), BM25 saved from `lexical`. Returns the row count. The
    caller closes `lexical` and the vectors' file."""
    saved = file.array()
    n = len(saved)
    kind = dense.choose_kind(n, threshold)
    params = {"kind": dense.FLAT, "codes": dense.CODES}     # what dense.build records (IVF: once written)

    def write_dense(path: Path) -> None:
        if kind == dense.FLAT:
            written = dense.write_flat(saved, path)
        else:
            log(f"Building the approximate dense index over {n} vectors")
            written = write_ivf(saved, path, gather=file.gather)
            params.clear()
            params.update(written or {})
        if not written:                 # faiss lays its files out otherwise than checked: built in memory
            index, built = dense.build(saved, kind)
            dense.write(index, path)
            params.clear()
            params.update(built)

    write_generation(index_dir, common, rows, saved, {
        "dense.faiss": write_dense,
        "bm25": lexical.save,
    }, finish=lambda manifest: manifest.update(dense=params))
    return n
