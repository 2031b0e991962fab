"""BM25 arrays written without bm25s (BM25Writer): postings as int32 arrays, never Python token lists. With a
spill folder (a full build) the postings go to disk in runs of RUN postings and are merged by token when
saved, so memory holds one run, the vocabulary and 8 bytes per document, not the corpus's postings."""
from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from .analysis import passage_tokens, split_compound
from .lexical import LexicalIndex, LexicalSettings, write_sorted_vocab


class _Growing:
    """An int32 array appended to in place (doubling), not a list of small arrays."""

    def __init__(self):
        self.data = np.zeros(1 << 16, dtype=np.int32)
        self.n = 0

    def extend(self, values: np.ndarray) -> None:
        end = self.n + len(values)
        if end > len(self.data):
            grown = np.zeros(max(end, 2 * len(self.data)), dtype=np.int32)
            grown[:self.n] = self.data[:self.n]
            self.data = grown
        self.data[self.n:end] = values
        self.n = end

    def take(self) -> np.ndarray:
        out = self.data[:self.n].copy()
        self.data, self.n = np.zeros(0, dtype=np.int32), 0
        return out


class _NpyOut:
    """A 1-d .npy file written in pieces (the header np.save writes, then the values as they come)."""

    def __init__(self, path: Path, dtype, length: int):
        self.dtype, self._fh = np.dtype(dtype), open(path, "wb")
        np.lib.format.write_array_header_1_0(self._fh, {"descr": np.lib.format.dtype_to_descr(self.dtype),
                                                        "fortran_order": False, "shape": (int(length),)})

    def write(self, values: np.ndarray) -> None:
        self._fh.write(memoryview(np.ascontiguousarray(values, dtype=self.dtype)))

    def close(self) -> None:
        self._fh.close()


class BM25Writer:
    """BM25 arrays built in batches: documents arrive one at a time (text, or token ids of `vocab`), postings
    are kept as int32 arrays and turned into the CSC matrix in blocks (memory: ~12 bytes per posting plus an
    int64 sort order; with `spill`, only those of one run). save() writes what LexicalIndex.build + save
    writes (the same bm25s "lucene" scores, file names and parameters), so LexicalIndex.load reads it; used
    for full builds (spilled, streaming.py), corpora too large for token lists (bench/scale.py) and segments."""

    BLOCK = 1 << 22           # postings handled at a time when expanding compounds and scoring
    RUN = 1 << 18             # postings in memory before a run goes to the spill file (with `spill`)

    def __init__(self, settings: LexicalSettings = LexicalSettings(), spill: Path | None = None):
        self.settings = settings
        self.vocab: dict[str, int] = {}
        self._tok, self._tf, self._count = _Growing(), _Growing(), _Growing()   # count: postings per doc
        self._lens = _Growing()
        self._spill = spill       # a folder for an unnamed temp file of runs (gone when closed or on a crash)
        self._file = None
        self._runs: list[tuple[int, int, int]] = []   # (documents, postings, offset) of each run on disk

    def cut(self, text: str) -> list[str]:
        """A chunk's search_text as LexicalIndex.build cuts it (before compound parts)."""
        return passage_tokens(text, self.settings)

    def ids(self, tokens: Sequence[str]) -> np.ndarray:
        vocab = self.vocab
        return np.fromiter((vocab.setdefault(t, len(vocab)) for t in tokens), dtype=np.int32, count=len(tokens))

    def add(self, text: str) -> None:
        self.add_ids(self.ids(self.cut(text)))

    def add_ids(self, ids: np.ndarray) -> None:
        if len(ids) == 0:
            ids = self.ids(["\u2205"])
        tok, tf = np.unique(ids, return_counts=True)
        self._tok.extend(tok)
        self._tf.extend(tf)
        self._count.extend(np.asarray([len(tok)]))
        self._lens.extend(np.asarray([len(ids)]))
        if self._spill is not None and self._tok.n >= self.RUN:
            self._flush()

    def __len__(self) -> int:
        return self._lens.n

    def _flush(self) -> None:
        """The postings in memory as one run on disk: (tok, tf) per posting, then postings per document."""
        if self._file is None:
            self._file = tempfile.TemporaryFile(dir=self._spill, prefix=".bm25-")
        at = self._file.seek(0, 2)
        postings, docs = self._tok.n, self._count.n
        for grown in (self._tok, self._tf, self._count):
            self._file.write(memoryview(grown.data[:grown.n]))
            grown.n = 0
        self._runs.append((docs, postings, at))

    def close(self) -> None:
        """Let go of the spill file (save() does; a build that fails calls it)."""
        if self._file is not None:
            self._file.close()
        self._file, self._runs = None, []

    def _read(self, at: int, count: int) -> np.ndarray:
        self._file.seek(at)
        return np.frombuffer(self._file.read(4 * count), dtype=np.int32)

    def _splits(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Compound parts of every token, as (starts per token id, part ids); None without compounds."""
        if not self.settings.compounds:
            return None
        words = [t for t in self.vocab if t != "\u2205"]
        known = set(words)
        by_id: list[list[int]] = [[] for _ in range(len(self.vocab))]
        for t in words:
            by_id[self.vocab[t]] = [self.vocab[p] for p in split_compound(t, known)]
        starts = np.zeros(len(by_id) + 1, dtype=np.int64)
        np.cumsum([len(g) for g in by_id], out=starts[1:])
        return starts, np.asarray([p for g in by_id for p in g], dtype=np.int32)

    def _expand(self, tok: np.ndarray, tf: np.ndarray, count: np.ndarray, first: int, lens: np.ndarray,
                splits) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(doc, tok, tf) postings of documents first.. sorted by doc then token, compound parts added (they
        count as often as the compound, as LexicalIndex.build's d + parts of each token) and added to `lens`;
        done a block of whole documents at a time so the temporaries stay small."""
        n = len(count)
        if splits is None or not len(tok):
            return np.repeat(np.arange(first, first + n, dtype=np.int32), count), tok, tf
        starts, parts = splits
        n_tokens = np.int64(len(self.vocab))
        ends = np.cumsum(count, dtype=np.int64)
        out_doc, out_tok, out_tf = _Growing(), _Growing(), _Growing()
        first_doc = 0
        while first_doc < n:
            lo = ends[first_doc - 1] if first_doc else 0
            last_doc = int(np.searchsorted(ends, lo + self.BLOCK, side="right"))
            last_doc = max(last_doc, first_doc + 1)
            hi = ends[last_doc - 1]
            b_tok, b_tf = tok[lo:hi], tf[lo:hi]
            b_doc = np.repeat(np.arange(first + first_doc, first + last_doc, dtype=np.int32),
                              count[first_doc:last_doc])
            n_parts = (starts[1:] - starts[:-1])[b_tok]
            if n_parts.any():
                rep = np.repeat(np.arange(len(b_tok)), n_parts)
                offset = np.arange(len(rep)) - np.repeat(np.cumsum(n_parts) - n_parts, n_parts)
                e_doc, e_tok, e_tf = b_doc[rep], parts[starts[b_tok][rep] + offset], b_tf[rep]
                np.add.at(lens, e_doc, e_tf)
                key = np.concatenate([b_doc.astype(np.int64) * n_tokens + b_tok,
                                      e_doc.astype(np.int64) * n_tokens + e_tok])
                uniq, inv = np.unique(key, return_inverse=True)
                b_tf = np.bincount(inv, weights=np.concatenate([b_tf, e_tf])).astype(np.int32)
                b_doc, b_tok = (uniq // n_tokens).astype(np.int32), (uniq % n_tokens).astype(np.int32)
            out_doc.extend(b_doc)
            out_tok.extend(b_tok)
            out_tf.extend(b_tf)
            first_doc = last_doc
        return out_doc.take(), out_tok.take(), out_tf.take()

    def _idf(self, df: np.ndarray, lens: np.ndarray, vocab: dict, base: "LexicalIndex | None"):
        """(idf per column, average length): of these documents, or of base + these (a segment)."""
        n = len(lens)
        n_cols = len(df)
        avg = np.float64(lens.mean()) if n else np.float64(0)
        n_all = n
        if base is not None and base.size:
            by_col = {c: t for t, c in vocab.items()}
            df = df + np.asarray([base._df(by_col[c]) for c in range(n_cols)], dtype=df.dtype)
            n_all = n + base.size
            if base.avgdl:
                avg = np.float64((base.avgdl * base.size + lens.sum()) / n_all)
        idf = np.zeros(n_cols, dtype=np.float32)
        for col in np.flatnonzero(df):
            idf[col] = math.log(1 + (n_all - df[col] + 0.5) / (df[col] + 0.5))
        return idf, avg

    def _score(self, tok, tf, dl, idf, avg) -> np.ndarray:
        s = self.settings
        f, dl = tf.astype(np.float32).astype(np.float64), dl.astype(np.float64)
        return (idf[tok].astype(np.float64) * (f / (s.k1 * ((1 - s.b) + s.b * dl / avg) + f))).astype(np.float32)

    def save(self, folder: Path, base: "LexicalIndex | None" = None) -> int:
        """Write the BM25 folder; returns the number of documents. With `base` (a segment's BM25, segments.py)
        the document count, document frequencies and average length are those of base + these documents."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        n = len(self)
        vocab = dict(self.vocab)
        vocab.setdefault("", len(vocab))        # bm25s adds an empty token without a column
        n_cols = len(vocab) - 1
        if self._runs:
            avg = self._save_runs(folder, n_cols, vocab, base)
        elif n:
            avg = self._save_in_memory(folder, n_cols, vocab, base)
        else:
            avg = np.float64(0)
        if n:
            (folder / "vocab.index.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
            s = self.settings
            params = {"k1": s.k1, "b": s.b, "delta": 0.5, "method": "lucene", "idf_method": "lucene",
                      "dtype": "float32", "int_dtype": "int32", "num_docs": n, "backend": "numpy"}
            (folder / "params.index.json").write_text(json.dumps(params, indent=4), encoding="utf-8")
            write_sorted_vocab(folder, vocab)
        stats = {"docs": n, "avgdl": float(avg)}
        (folder / "azchat_lexical.json").write_text(json.dumps({**self.settings.to_dict(), **stats}),
                                                    encoding="utf-8")
        return n

    def _save_in_memory(self, folder: Path, n_cols: int, vocab: dict, base) -> np.float64:
        tok, tf, count = self._tok.take(), self._tf.take(), self._count.take()
        lens = self._lens.take().astype(np.int64)
        doc, tok, tf = self._expand(tok, tf, count, 0, lens, self._splits())
        df = np.bincount(tok, minlength=n_cols)
        idf, avg = self._idf(df, lens, vocab, base)
        order = np.argsort(tok, kind="stable")      # by token, then document (postings are by document)
        data = np.empty(len(tok), dtype=np.float32)
        for a in range(0, len(order), self.BLOCK):
            o = order[a:a + self.BLOCK]
            data[a:a + len(o)] = self._score(tok[o], tf[o], lens[doc[o]], idf, avg)
        del tf
        np.save(folder / "data.csc.index.npy", data, allow_pickle=False)
        del data
        indices = doc[order]
        del doc, order
        np.save(folder / "indices.csc.index.npy", indices, allow_pickle=False)
        del indices
        indptr = np.zeros(n_cols + 1, dtype=np.int64)
        np.cumsum(np.bincount(tok, minlength=n_cols), out=indptr[1:])
        np.save(folder / "indptr.csc.index.npy", indptr, allow_pickle=False)
        return avg

    def _save_runs(self, folder: Path, n_cols: int, vocab: dict, base) -> np.float64:
        """The runs on disk merged: each run's postings expanded and sorted by token (then document) into
        the spill file, then written token range by token range (at most RUN postings, or one token), each
        range gathered from every run in run order, which is document order."""
        if self._count.n:
            self._flush()
        lens = self._lens.take().astype(np.int64)
        splits = self._splits()
        df = np.zeros(n_cols, dtype=np.int64)
        by_token: list[tuple[int, int]] = []     # (postings, offset) of each run's (tok, doc, tf) by token
        first = 0
        for docs, postings, at in self._runs:
            doc, tok, tf = self._expand(self._read(at, postings), self._read(at + 4 * postings, postings),
                                        self._read(at + 8 * postings, docs), first, lens, splits)
            order = np.argsort(tok, kind="stable")
            self._file.seek(0, 2)
            out = self._file.tell()
            for column in (tok, doc, tf):
                self._file.write(memoryview(np.ascontiguousarray(column[order])))
            df += np.bincount(tok, minlength=n_cols)
            by_token.append((len(tok), out))
            first += docs
        del doc, tok, tf, order
        idf, avg = self._idf(df, lens, vocab, base)
        indptr = np.zeros(n_cols + 1, dtype=np.int64)
        np.cumsum(df, out=indptr[1:])
        bounds, most = [0], min(self.BLOCK, self.RUN)     # a range's temporaries: ~70 bytes a posting
        while bounds[-1] < n_cols:
            t = int(np.searchsorted(indptr, indptr[bounds[-1]] + most, side="right")) - 1
            bounds.append(min(max(t, bounds[-1] + 1), n_cols))
        cuts = [np.searchsorted(self._read(at, p), bounds) for p, at in by_token]
        data = _NpyOut(folder / "data.csc.index.npy", np.float32, indptr[-1])
        indices = _NpyOut(folder / "indices.csc.index.npy", np.int32, indptr[-1])
        try:
            for r in range(len(bounds) - 1):
                parts = [[self._read(at + k * 4 * p + 4 * int(cut[r]), int(cut[r + 1] - cut[r])) for k in range(3)]
                         for (p, at), cut in zip(by_token, cuts) if cut[r + 1] > cut[r]]
                if not parts:
                    continue
                tok, doc, tf = (np.concatenate(column) for column in zip(*parts))
                order = np.argsort(tok, kind="stable")
                tok, doc, tf = tok[order], doc[order], tf[order]
                data.write(self._score(tok, tf, lens[doc], idf, avg))
                indices.write(doc)
        finally:
            data.close()
            indices.close()
            self.close()
        np.save(folder / "indptr.csc.index.npy", indptr, allow_pickle=False)
        return avg
