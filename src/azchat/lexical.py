"""BM25 over chunk text (bm25s): tokenization for English and German, build, save, load, score."""
from __future__ import annotations

import re
import threading
import json
import unicodedata
from collections import Counter
from functools import lru_cache
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
_GERMAN_HINT = re.compile(r"[äöüß]")
ENGLISH_STOPWORDS = frozenset("""
a an the and or but if of at by for with about against between into through during before after above below
to from up down in out on off over under again further then once here there when where why how all any both
each few more most other some such no nor not only own same so than too very s t can will just don should now
is are was were be been being have has had having do does did doing i me my we our you your he him his she her
it its they them their what which who whom this that these those am would could shall may might must
also just really every everything everyone something anything via onto upon within without whether
""".split())
GERMAN_STOPWORDS = frozenset("""
der die das den dem des ein eine einer eines einem einen und oder aber wenn als auch an auf aus bei bis durch
für gegen im in ist sind war waren wird werden wurde mit nach nicht noch nur ob so über um unter von vor wie
wo zu zum zur es sie er wir ihr ich du man sich was wer welche welcher welches dass daß kann können muss
welchem welchen mein meine meinem meinen meiner dein deine sein seine ihre ihrem ihren unser unsere euer
dieser diese dieses diesem diesen jeder jede jedes jedem jeden alle allen kein keine keinen keinem
da dann denn doch hier dort wann warum wieso womit wofür wozu woher wohin dabei dafür damit daran darauf
darin davon dazu also sehr mehr immer wieder schon bereits etwa ganz gibt gib bin bist seid habe hast hat
haben hatte hatten soll sollte sollen will wollen möchte darf dürfen könnte würde wäre mal nun ja nein
zwischen ohne seit während bzw usw etc
""".split())
STOPWORDS = ENGLISH_STOPWORDS | GERMAN_STOPWORDS
# German function words that are also English words or common in technical text ("man", "bin", "hat", "des",
# "war"): they do not tell a German sentence from an English one ("was" and "die" do, in a question)
_NOT_GERMAN_EVIDENCE = (ENGLISH_STOPWORDS - {"was"}) | \
    frozenset("man bin hat des war mal gib etc bis ob um da ja".split())
_GERMAN_EVIDENCE = GERMAN_STOPWORDS - _NOT_GERMAN_EVIDENCE


def is_german(text: str) -> bool:
    """A rough guess at the language of a question or passage: umlauts/ß, or two German function words."""
    low = unicodedata.normalize("NFKC", text).lower()
    return bool(_GERMAN_HINT.search(low)) or len(_GERMAN_EVIDENCE & set(_TOKEN.findall(low))) >= 2


_STEMMERS = threading.local()   # per thread: see _stemmer
_GERMAN_PLURALS = (("ungen", "ung"), ("heiten", "heit"), ("keiten", "keit"), ("nisse", "nis"), ("ien", "i"))


def _stemmer(lang: str):
    """This thread's stemmer for lang: snowball stemmers keep per-word state, so threads must not share one
    (the chat server answers concurrent questions; a shared one raised IndexError under load)."""
    stemmers = getattr(_STEMMERS, "by_lang", None)
    if stemmers is None:
        stemmers = _STEMMERS.by_lang = {}
    st = stemmers.get(lang)
    if st is None:
        try:
            import snowballstemmer

            st = snowballstemmer.stemmer(lang)
        except ImportError:   # pragma: no cover - the dependency is declared; fall back to a plural fold
            st = False
        stemmers[lang] = st
    return st


@lru_cache(maxsize=200_000)
def stem(tok: str) -> str:
    """Snowball stem: German for words with umlauts/ß, English (Porter 2) otherwise; digits stay as they are."""
    if tok.isdigit() or len(tok) < 4:
        return tok
    for plural, single in _GERMAN_PLURALS:   # German plurals the English stemmer does not know
        if tok.endswith(plural) and len(tok) >= len(plural) + 4:
            tok = tok[: -len(plural)] + single
            break
    st = _stemmer("german" if _GERMAN_HINT.search(tok) else "english")
    if not st:
        return tok[:-1] if len(tok) > 4 and tok.endswith("s") and not tok.endswith("ss") else tok
    return st.stemWord(tok)


def words(text: str) -> list[str]:
    """Lowercased word tokens without stopwords, not stemmed (what the reader sees)."""
    text = unicodedata.normalize("NFKC", text).lower()
    return [t for t in _TOKEN.findall(text) if t not in STOPWORDS and (len(t) >= 2 or t.isdigit())]


def tokenize(text: str) -> list[str]:
    """Stemmed word tokens without stopwords, so 'vnets' meets 'vnet' and 'Netzwerke' meets 'Netzwerk'."""
    return [stem(t) for t in words(text)]


def document_tokens(text: str, german: bool = False) -> list[str]:
    """What BM25 indexes: every stemmed word, stopwords included, so a note about `du -sh`, `man` pages or
    /usr/bin keeps its commands (a question drops the stopwords of its own language: query_tokens). german: the
    passage is German, and its words are stemmed as German words (stem_german)."""
    text = unicodedata.normalize("NFKC", text).lower()
    cut = stem_german if german else stem
    return [cut(t) for t in _TOKEN.findall(text) if len(t) >= 2 or t.isdigit()]


@lru_cache(maxsize=200_000)
def stem_german(tok: str) -> str:
    """Snowball's German stem, for every word of a German passage ("Befehle" -> "befehl", "Container" ->
    "contain"); digits and short words stay as they are."""
    if tok.isdigit() or len(tok) < 4:
        return tok
    st = _stemmer("german")
    return st.stemWord(tok) if st else stem(tok)


def question_tokens(text: str, cut=None) -> list[str]:
    """A question's stemmed words without the stopwords of its language: a German question drops German and
    English function words, an English one only English ones ("du", "man", "bin", "hat" stay). cut: the
    stemmer (stem, or stem_german)."""
    stop = STOPWORDS if is_german(text) else ENGLISH_STOPWORDS
    cut = cut or stem
    text = unicodedata.normalize("NFKC", text).lower()
    return [cut(t) for t in _TOKEN.findall(text) if t not in stop and (len(t) >= 2 or t.isdigit())]


def split_compound(tok: str, vocab, min_part: int = 4) -> list[str]:
    """Split a long token into two known tokens (German compounds: 'speicherkonto' -> speicher, konto;
    a linking 's' is allowed: 'zugriffsschlüssel' -> zugriff, schlüssel). [] when no split is found."""
    if len(tok) < 2 * min_part + 1 or tok.isdigit():
        return []
    best: list[str] = []
    for i in range(min_part, len(tok) - min_part + 1):
        left, right = tok[:i], tok[i:]
        r = stem(right)
        if r not in vocab and right not in vocab:
            continue
        right_tok = r if r in vocab else right
        for l in (left, left[:-1] if left.endswith("s") and len(left) > min_part else None):
            if l and (l in vocab or stem(l) in vocab):
                parts = [l if l in vocab else stem(l), right_tok]
                if not best or min(len(p) for p in parts) > min(len(p) for p in best):
                    best = parts
                break
    return best


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

    def __init__(self, bm25=None, size: int = 0, settings: LexicalSettings = LexicalSettings()):
        self._bm25 = bm25
        self.size = size
        self.settings = settings
        self._split_cache: dict[str, list[str]] = {}

    @classmethod
    def build(cls, texts: Sequence[str], settings: LexicalSettings = LexicalSettings()) -> "LexicalIndex":
        import bm25s

        if not texts:
            return cls(None, 0, settings)
        docs = []
        for t in texts:
            meta, _, body = t.partition("\n")
            if settings.version >= 4:
                german = is_german(body)
                docs.append(document_tokens(meta, german) * max(settings.meta_repeat, 1)
                            + document_tokens(body, german))
            else:
                cut = document_tokens if settings.version >= 3 else tokenize
                docs.append(cut(meta) * max(settings.meta_repeat, 1) + cut(body))
        if settings.compounds:
            vocab = Counter(tok for d in docs for tok in set(d))
            splits = {tok: split_compound(tok, vocab) for tok in vocab}
            docs = [d + [p for tok in d for p in splits[tok]] for d in docs]
        bm25 = bm25s.BM25(method="lucene", k1=settings.k1, b=settings.b)
        bm25.index([d or ["\u2205"] for d in docs], show_progress=False)
        return cls(bm25, len(texts), settings)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        if self._bm25 is not None:
            self._bm25.save(str(folder), allow_pickle=False, show_progress=False)
        (folder / "azchat_lexical.json").write_text(json.dumps(self.settings.to_dict()), encoding="utf-8")

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
        return cls(bm25, size, settings)

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
