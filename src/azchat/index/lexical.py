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
