"""BM25 over chunk text (bm25s): build, save, load, score (the tokenization for English and German is
analysis.py's)."""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .analysis import is_german, passage_tokens, question_tokens, split_compound, stem_german, tokenize


@dataclass(frozen=True)
class LexicalSettings:
    """Tokenization and BM25 parameters; saved next to the BM25 arrays so queries are tokenized the same way."""

    k1: float = 1.2
    b: float = 0.75
    meta_repeat: int = 2        # the first line of search_text (title, aliases, tags, heading) counts this often
    compounds: bool = True      # add the parts of compound words found in the corpus vocabulary
    # the tokenization rules an index was built with, read back on load so questions are cut the same way:
    # 2 drops English and German stopwords everywhere; 3 indexes every word and drops only the question's
    # own language's stopwords (document_tokens / question_tokens); 4 also stems a German passage as German and
    # matches a question in both analyses, each against the passages of its language
    version: int = 4

    def to_dict(self) -> dict:
        return {"k1": self.k1, "b": self.b, "meta_repeat": self.meta_repeat, "compounds": self.compounds,
                "version": self.version}


class LexicalIndex:
    """A BM25 index over the chunk table's search_text, saved as bm25s arrays (no pickle)."""

    def __init__(self, bm25=None, size: int = 0, settings: LexicalSettings = LexicalSettings(),
                 avgdl: float = 0.0):
        self._bm25 = bm25
        self.size = size
        self.settings = settings
        self.avgdl = avgdl          # average document length in tokens (0.0: not recorded)
        self._split_cache: dict[str, list[str]] = {}

    @classmethod
    def build(cls, texts: Sequence[str], settings: LexicalSettings = LexicalSettings()) -> "LexicalIndex":
        import bm25s

        if not texts:
            return cls(None, 0, settings)
        docs = [passage_tokens(t, settings) for t in texts]
        if settings.compounds:
            vocab = Counter(tok for d in docs for tok in set(d))
            splits = {tok: split_compound(tok, vocab) for tok in vocab}
            docs = [d + [p for tok in d for p in splits[tok]] for d in docs]
        bm25 = bm25s.BM25(method="lucene", k1=settings.k1, b=settings.b)
        bm25.index([d or ["\u2205"] for d in docs], show_progress=False)
        return cls(bm25, len(texts), settings, float(np.mean([len(d) or 1 for d in docs])))

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        if self._bm25 is not None:
            self._bm25.save(str(folder), allow_pickle=False, show_progress=False)
            write_sorted_vocab(folder, self._bm25.vocab_dict)
        (folder / "azchat_lexical.json").write_text(
            json.dumps({**self.settings.to_dict(), "docs": self.size, "avgdl": self.avgdl}), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path, size: int) -> "LexicalIndex":
        meta = folder / "azchat_lexical.json"
        saved = json.loads(meta.read_text(encoding="utf-8")) if meta.is_file() else {"version": 2}
        known = LexicalSettings.__dataclass_fields__
        settings = LexicalSettings(**{k: v for k, v in saved.items() if k in known})
        if size == 0:
            return cls(None, 0, settings)
        bm25 = _SavedBM25.open(folder)
        if bm25 is None:   # a variant with non-occurrence scores: let bm25s read it
            import bm25s

            bm25 = bm25s.BM25.load(str(folder), allow_pickle=False, show_progress=False)
        return cls(bm25, size, settings, float(saved.get("avgdl", 0.0)))

    def query_tokens(self, query: str) -> list[str]:
        """The query's tokens that the index knows, compound parts added."""
        if self._bm25 is None:
            return []
        vocab = self._bm25.vocab_dict
        out = []
        toks = (question_tokens if self.settings.version >= 3 else tokenize)(query)
        if self.settings.version >= 4 and is_german(query):
            # a German question read as German too, for the German passages (its English stems still meet the
            # English ones: a German question about an English note shares its technical words)
            german = question_tokens(query, stem_german)
            toks = list(dict.fromkeys(toks + german))
        for tok in toks:
            if tok in vocab:
                out.append(tok)
            if self.settings.compounds:
                parts = self._split_cache.get(tok)
                if parts is None:
                    parts = self._split_cache[tok] = split_compound(tok, vocab)
                out.extend(p for p in parts if p in vocab)
        return out

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every chunk for the query (zeros when no term matches)."""
        known = self.query_tokens(query)
        if not known:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._bm25.get_scores(known), dtype=np.float32)

    def unknown(self, tokens: Sequence[str]) -> list[str]:
        """The tokens that occur in no chunk."""
        if self._bm25 is None:
            return list(tokens)
        return [t for t in tokens if self._bm25.vocab_dict.get(t) is None]

    def idf(self, tokens: Sequence[str]) -> dict[str, float]:
        """Inverse document frequency of each token (unknown tokens get the highest weight)."""
        if self._bm25 is None:
            return {t: 1.0 for t in tokens}
        n = max(self.size, 1)
        out = {}
        for tok in tokens:
            df = self._df(tok)
            out[tok] = float(np.log(1 + (n - df + 0.5) / (df + 0.5)))
        return out

    def _df(self, tok: str) -> int:
        """How many chunks have the token (segments.py adds those of a segment)."""
        if self._bm25 is None:
            return 0
        col = self._bm25.vocab_dict.get(tok)
        indptr = self._bm25.scores["indptr"]
        return int(indptr[col + 1] - indptr[col]) if col is not None and col + 1 < len(indptr) else 0


class _SavedBM25:
    """Reads a saved bm25s index with numpy alone (bm25s pulls in scipy: ~0.35 s on every cold query).

    bm25s stores each token's precomputed BM25 contributions as a CSC matrix; a query's scores are the
    sum of its tokens' columns, exactly as bm25s.BM25.get_scores computes them.
    """

    def __init__(self, scores: dict, vocab: dict[str, int], dtype: str):
        self.scores = scores
        self.vocab_dict = vocab
        self.dtype = dtype

    @classmethod
    def open(cls, folder: Path) -> "_SavedBM25 | None":
        import json

        folder = Path(folder)
        params = json.loads((folder / "params.index.json").read_text(encoding="utf-8"))
        if params.get("method", "lucene") not in ("lucene", "robertson", "atire"):
            return None
        if (folder / "vocab.sorted.bin").is_file():
            vocab = SortedVocab.open(folder)      # memory-mapped: nothing parsed per token
        else:
            vocab = json.loads((folder / "vocab.index.json").read_text(encoding="utf-8"))
        scores = {name: np.load(folder / f"{name}.csc.index.npy", mmap_mode="r", allow_pickle=False)
                  .view(np.ndarray) for name in ("data", "indices", "indptr")}    # mapped, without memmap's slow []
        scores["num_docs"] = int(params["num_docs"])
        if len(scores["indptr"]) > len(vocab) + 1 or int(scores["indptr"][-1]) != len(scores["data"]) \
                or len(scores["indices"]) != len(scores["data"]):
            raise ValueError("the BM25 arrays disagree with each other")
        return cls(scores, vocab, params.get("dtype", "float32"))

    def get_scores(self, tokens: list[str]) -> np.ndarray:
        data, indices, indptr = self.scores["data"], self.scores["indices"], self.scores["indptr"]
        out = np.zeros(self.scores["num_docs"], dtype=self.dtype)
        for tok in tokens:
            col = self.vocab_dict.get(tok)
            if col is not None and col + 1 < len(indptr):   # bm25s's empty token "" has no column
                start, end = indptr[col], indptr[col + 1]
                out[indices[start:end]] += data[start:end]   # a column names each chunk once: add.at's sums
        return out


class SortedVocab:
    """bm25s's vocabulary (token -> column) as two memory-mapped columns sorted by token, looked up by binary
    search: a million-token vocabulary opens without parsing vocab.index.json."""

    def __init__(self, tokens, ids: np.ndarray):
        self._tokens, self._ids = tokens, ids

    @classmethod
    def open(cls, folder: Path) -> "SortedVocab":
        from .columns import StringColumn

        tokens = StringColumn.open(Path(folder), "vocab.sorted")
        ids = np.load(Path(folder) / "vocab.sorted.ids.npy", mmap_mode="r", allow_pickle=False).view(np.ndarray)
        if len(ids) != len(tokens):
            raise ValueError("the BM25 vocabulary columns disagree")
        return cls(tokens, ids)

    def get(self, token: str, default=None):
        row = self._tokens.find(token)
        return default if row < 0 else int(self._ids[row])

    def __contains__(self, token) -> bool:
        return isinstance(token, str) and self._tokens.find(token) >= 0

    def __getitem__(self, token: str) -> int:
        got = self.get(token)
        if got is None:
            raise KeyError(token)
        return got

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self):
        return iter(self._tokens)


def write_sorted_vocab(folder: Path, vocab: dict) -> None:
    """vocab.sorted.bin/.off.npy (tokens in UTF-8 byte order) and vocab.sorted.ids.npy (their columns)."""
    from .columns import write_strings

    order = sorted(vocab, key=lambda t: t.encode("utf-8"))
    write_strings(Path(folder), "vocab.sorted", order)
    np.save(Path(folder) / "vocab.sorted.ids.npy", np.asarray([vocab[t] for t in order], dtype=np.int64),
            allow_pickle=False)


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


class BM25Writer:
    """BM25 arrays built in batches without bm25s: documents arrive one at a time (text, or token ids of
    `vocab`), postings are kept as int32 arrays, never as Python token lists, and turned into the CSC matrix
    in blocks (memory: ~12 bytes per posting plus an int64 sort order). save() writes what
    LexicalIndex.build + save writes (the same bm25s "lucene" scores, file names and parameters), so
    LexicalIndex.load reads it; used for corpora too large for token lists in memory (bench/scale.py) and
    for segments (segments.py)."""

    BLOCK = 1 << 22           # postings handled at a time when expanding compounds and scoring

    def __init__(self, settings: LexicalSettings = LexicalSettings()):
        self.settings = settings
        self.vocab: dict[str, int] = {}
        self._tok, self._tf, self._count = _Growing(), _Growing(), _Growing()   # count: postings per doc
        self._lens = _Growing()

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

    def __len__(self) -> int:
        return self._lens.n

    def _splits(self) -> tuple[np.ndarray, np.ndarray]:
        """Compound parts of every token, as (starts per token id, part ids)."""
        words = [t for t in self.vocab if t != "\u2205"]
        known = set(words)
        by_id: list[list[int]] = [[] for _ in range(len(self.vocab))]
        for t in words:
            by_id[self.vocab[t]] = [self.vocab[p] for p in split_compound(t, known)]
        starts = np.zeros(len(by_id) + 1, dtype=np.int64)
        np.cumsum([len(g) for g in by_id], out=starts[1:])
        return starts, np.asarray([p for g in by_id for p in g], dtype=np.int32)

    def _postings(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(doc, tok, tf) int32 postings sorted by doc then token, and the documents' lengths."""
        tok, tf, count = self._tok.take(), self._tf.take(), self._count.take()
        lens = self._lens.take().astype(np.int64)
        n = len(count)
        if not (self.settings.compounds and len(tok)):
            return np.repeat(np.arange(n, dtype=np.int32), count), tok, tf, lens
        # a compound's parts count as often as the compound (LexicalIndex.build: d + parts of each token),
        # done a block of whole documents at a time so the temporaries stay small
        starts, parts = self._splits()
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
            b_doc = np.repeat(np.arange(first_doc, last_doc, dtype=np.int32), count[first_doc:last_doc])
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
        del tok, tf
        return out_doc.take(), out_tok.take(), out_tf.take(), lens

    def save(self, folder: Path, base: "LexicalIndex | None" = None) -> int:
        """Write the BM25 folder; returns the number of documents. With `base` (a segment's BM25, segments.py)
        the document count, document frequencies and average length are those of base + these documents."""
        import math

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        s = self.settings
        n = len(self)
        doc, tok, tf, lens = self._postings()
        avg = np.float64(lens.mean()) if n else np.float64(0)
        stats = {"docs": n, "avgdl": float(avg)}
        if n:
            vocab = dict(self.vocab)
            vocab.setdefault("", len(vocab))        # bm25s adds an empty token without a column
            n_cols = len(vocab) - 1
            df = np.bincount(tok, minlength=n_cols)
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
            order = np.argsort(tok, kind="stable")      # by token, then document (postings are by document)
            data = np.empty(len(tok), dtype=np.float32)
            for a in range(0, len(order), self.BLOCK):
                o = order[a:a + self.BLOCK]
                t, f = tok[o], tf[o].astype(np.float32).astype(np.float64)
                dl = lens[doc[o]].astype(np.float64)
                data[a:a + len(o)] = idf[t].astype(np.float64) * (f / (s.k1 * ((1 - s.b) + s.b * dl / avg) + f))
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
            (folder / "vocab.index.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
            params = {"k1": s.k1, "b": s.b, "delta": 0.5, "method": "lucene", "idf_method": "lucene",
                      "dtype": "float32", "int_dtype": "int32", "num_docs": n, "backend": "numpy"}
            (folder / "params.index.json").write_text(json.dumps(params, indent=4), encoding="utf-8")
            write_sorted_vocab(folder, vocab)
        (folder / "azchat_lexical.json").write_text(json.dumps({**s.to_dict(), **stats}), encoding="utf-8")
        return n
