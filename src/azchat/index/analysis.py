"""Text analysis for BM25 and the answer: word tokens, stopwords, stemming (English and German), German
detection, compound splitting, and what BM25 indexes of one chunk (passage_tokens)."""
from __future__ import annotations

import re
import threading
import unicodedata
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .lexical import LexicalSettings

_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
_GERMAN_HINT = re.compile(r"[äöüß]")
# the notes' words and code identifiers as refusal.py asks about them (columns.py writes their lists)
_PART = re.compile(r"[^\W_]+")                      # letters and digits between underscores
_IDENTIFIER = re.compile(r"\w*_\w*")
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


def passage_tokens(search_text: str, settings: LexicalSettings) -> list[str]:
    """What BM25 indexes of one chunk's search_text (before compound parts): its first line (title, aliases,
    tags, heading) `meta_repeat` times, then the body; from version 4 a German body and its first line are
    stemmed as German."""
    meta, _, body = search_text.partition("\n")
    repeat = max(settings.meta_repeat, 1)
    if settings.version >= 4:
        german = is_german(body)
        return document_tokens(meta, german) * repeat + document_tokens(body, german)
    cut = document_tokens if settings.version >= 3 else tokenize
    return cut(meta) * repeat + cut(body)
