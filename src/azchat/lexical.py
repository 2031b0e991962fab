"""BM25 over chunk text (bm25s): tokenization for English and German, build, save, load, score."""
from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Sequence

import numpy as np

_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
STOPWORDS = frozenset("""
a an the and or but if of at by for with about against between into through during before after above below
to from up down in out on off over under again further then once here there when where why how all any both
each few more most other some such no nor not only own same so than too very s t can will just don should now
is are was were be been being have has had having do does did doing i me my we our you your he him his she her
it its they them their what which who whom this that these those am would could shall may might must
der die das den dem des ein eine einer eines einem einen und oder aber wenn als auch an auf aus bei bis durch
für gegen im in ist sind war waren wird werden wurde mit nach nicht noch nur ob so über um unter von vor wie
wo zu zum zur es sie er wir ihr ich du man sich was wer welche welcher welches dass daß kann können muss
""".split())


def tokenize(text: str) -> list[str]:
    """Lowercased word tokens without stopwords; a light plural fold so 'vnets' meets 'vnet'."""
    text = unicodedata.normalize("NFKC", text).lower()
    out = []
    for tok in _TOKEN.findall(text):
        if tok in STOPWORDS or (len(tok) < 2 and not tok.isdigit()):
            continue
        if len(tok) > 4 and tok.endswith("s") and not tok.endswith("ss"):
            tok = tok[:-1]
        out.append(tok)
    return out


class LexicalIndex:
    """A BM25 index over the chunk table's search_text, saved as bm25s arrays (no pickle)."""

    def __init__(self, bm25=None, size: int = 0):
        self._bm25 = bm25
        self.size = size

    @classmethod
    def build(cls, texts: Sequence[str]) -> "LexicalIndex":
        import bm25s

        if not texts:
            return cls(None, 0)
        bm25 = bm25s.BM25(method="lucene", k1=1.2, b=0.75)
        bm25.index([tokenize(t) or ["\u2205"] for t in texts], show_progress=False)
        return cls(bm25, len(texts))

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        if self._bm25 is not None:
            self._bm25.save(str(folder), allow_pickle=False, show_progress=False)

    @classmethod
    def load(cls, folder: Path, size: int) -> "LexicalIndex":
        if size == 0:
            return cls(None, 0)
        bm25 = _SavedBM25.open(folder)
        if bm25 is None:   # a variant with non-occurrence scores: let bm25s read it
            import bm25s

            bm25 = bm25s.BM25.load(str(folder), allow_pickle=False, show_progress=False)
        return cls(bm25, size)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every chunk for the query (zeros when no term matches)."""
        tokens = tokenize(query)
        if self._bm25 is None or not tokens:
            return np.zeros(self.size, dtype=np.float32)
        known = [t for t in tokens if t in self._bm25.vocab_dict]
        if not known:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._bm25.get_scores(known), dtype=np.float32)

    def idf(self, tokens: Sequence[str]) -> dict[str, float]:
        """Inverse document frequency of each token (unknown tokens get the highest weight)."""
        if self._bm25 is None:
            return {t: 1.0 for t in tokens}
        indptr = self._bm25.scores["indptr"]
        n = max(self.size, 1)
        out = {}
        for tok in tokens:
            col = self._bm25.vocab_dict.get(tok)
            df = int(indptr[col + 1] - indptr[col]) if col is not None else 0
            out[tok] = float(np.log(1 + (n - df + 0.5) / (df + 0.5)))
        return out


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
        vocab = json.loads((folder / "vocab.index.json").read_text(encoding="utf-8"))
        scores = {name: np.load(folder / f"{name}.csc.index.npy", allow_pickle=False)
                  for name in ("data", "indices", "indptr")}
        scores["num_docs"] = int(params["num_docs"])
        return cls(scores, vocab, params.get("dtype", "float32"))

    def get_scores(self, tokens: list[str]) -> np.ndarray:
        data, indices, indptr = self.scores["data"], self.scores["indices"], self.scores["indptr"]
        out = np.zeros(self.scores["num_docs"], dtype=self.dtype)
        for tok in tokens:
            col = self.vocab_dict.get(tok)
            if col is not None:
                start, end = indptr[col], indptr[col + 1]
                np.add.at(out, indices[start:end], data[start:end])
        return out
