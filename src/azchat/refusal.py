"""Whether the notes answer a question at all: the "not in your notes" decision, apart from ranking and answers.

The decision reads what `Retriever.ask` ranked (the hits it will quote and the best dense cosine of the whole
candidate pool) and three kinds of evidence:
- confidence: w * best cosine + (1 - w) * the best IDF-weighted share of the question's words in one of the top
  3 hits;
- names the notes never mention ("BigQuery", "Ansible", "LFS", or a name made of ordinary words in an English
  question: "Nginx Proxy Manager", "Home Assistant"): such a question asks for more confidence;
- rare words the notes never mention and the embedding model does not know as one word ("venv", "for_each"):
  still more.
"Never mention" means: not in BM25's vocabulary and not anywhere in the notes' own text (a name inside a URL,
a diagram or a code block counts as mentioned). Calibrated in bench/quality.py (`calibrate`, `refusal`) on the
path `ask` ships; see bench/QUALITY.md.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from .lexical import LexicalIndex, is_german, tokenize, words
from .types import Chunk


@dataclass(frozen=True)
class RefusalSettings:
    """Thresholds of the "not in your notes" decision; calibrated on bench/ (see bench/QUALITY.md)."""

    min_confidence: float = 0.245  # below this the notes do not answer
    confidence_dense_weight: float = 0.5   # confidence = w * best cosine + (1 - w) * question coverage
    name_confidence: float = 0.40  # a name the notes never mention asks for this much
    rare_pieces: int = 2           # a word the model splits into this many word pieces or more is rare
    rare_confidence: float = 0.45  # a rare word the notes never mention asks for this much


# a hit as Retriever._ranked returns it: (chunk row, fused score, dense cosine, raw BM25)
Scored = Sequence[tuple[int, float, float, float]]


class Refusal:
    """Decides whether the notes answer a question, from the hits and what the notes' words are."""

    def __init__(self, chunks: Sequence[Chunk], lexical: LexicalIndex, embedder,
                 settings: RefusalSettings = RefusalSettings()):
        self.chunks, self.lexical, self.embedder, self.settings = chunks, lexical, embedder, settings
        self._identifiers: frozenset[str] | None = None   # the notes' code identifiers, read when first asked
        self._text: tuple[frozenset[str], str] | None = None   # the notes' words and lowercased text
        self._seen: dict[str, bool] = {}    # word -> mentioned (the substring search is ~1 ms on a large vault)
        self._compact: str | None = None    # the notes' letters and digits, run together (for name_phrases)

    # -- the signals ----------------------------------------------------------------------------
    def signals(self, question: str, scored: Scored, best_cos: float | None = None) -> tuple[float, float]:
        """(best dense cosine among the hits or, when given, the candidate pool; best IDF-weighted share of the
        question's words in one of the top 3 hits)."""
        if not scored:
            return 0.0, 0.0
        q = set(tokenize(question))
        cos = max([d for _, _, d, _ in scored] + ([best_cos] if best_cos is not None else []))
        if not q:
            return cos, 0.0
        idf = self.lexical.idf(sorted(q))
        total = sum(idf.values()) or 1.0
        cover = max(sum(idf[t] for t in q & set(tokenize(self.chunks[row].search_text))) / total
                    for row, _, _, _ in scored[:3])
        return cos, cover

    def confidence(self, question: str, scored: Scored, best_cos: float | None = None) -> float:
        """How sure we are that the notes answer: the best cosine and how much of the question one hit covers."""
        cos, cover = self.signals(question, scored, best_cos)
        w = self.settings.confidence_dense_weight
        return w * cos + (1 - w) * cover

    def unknown_names(self, question: str) -> list[str]:
        """Words of the question that look like names (capitalized inside an English sentence; mixed case,
        all caps, with digits or an inner underscore in any language) and occur nowhere in the notes."""
        out = []
        german = is_german(question)
        for n, word in enumerate(_WORD.findall(question)):
            idents = [p for p in _SUBWORD.split(word) if _is_identifier(p)]
            if idents:
                if not all(self._knows_identifier(p) for p in idents):
                    out.append(word)
                continue
            # mixed case within one part: "WireGuard", "iPhone"; not the hyphenated German "Archiv-Zugriffsebene"
            name = any(_mixed_case(part) for part in _SUBWORD.split(word)) \
                or any(c.isdigit() for c in word) and any(c.isalpha() for c in word) \
                or not german and n > 0 and word[0].isupper()
            toks = tokenize(word)
            if name and toks and self.lexical.unknown(toks) and not self._mentioned(word):
                out.append(word)
        if not german:   # (a German sentence capitalizes every noun: there a run of capitals is no name)
            out.extend(p for p in name_phrases(question)
                       if not any(w in p.split() for w in out) and not self._phrase_mentioned(p))
        return out

    def rare_unknown_words(self, question: str) -> list[str]:
        """Words of the question the notes never use (not even as part of a compound) and the embedding model
        does not know as one word (it splits them into `rare_pieces` word pieces or more): names like "venv",
        "unittest", "for_each", "BigQuery" rather than ordinary words like "autumn" or "iPhone". German words
        are split into many pieces by an English vocabulary, so in German questions only name-shaped words
        (mixed case, all caps, an inner underscore) count. An embedder that counts every word as one token
        (no word-piece vocabulary) finds none, and the rule falls back to unknown_names."""
        german = is_german(question)
        cands: list[tuple[str, str]] = []   # (word as written, what the model's vocabulary is asked about)
        for word in _WORD.findall(question):
            for sub in _SUBWORD.split(word):
                if _is_identifier(sub):
                    if not self._knows_identifier(sub):
                        cands.append((sub, sub.lower().strip("_")))
                    continue
                for part in _PART.findall(sub):
                    if german and not _mixed_case(part):
                        continue
                    for low in words(part):
                        if low.isalpha() and not self.lexical.query_tokens(low) and not self._mentioned(low):
                            cands.append((part, low))
        if not cands:
            return []
        pieces = self.embedder.count_tokens([low for _, low in cands])
        out: list[str] = []
        for (word, _), n in zip(cands, pieces):
            if n >= self.settings.rare_pieces and word not in out:
                out.append(word)
        return out

    # -- the decision ---------------------------------------------------------------------------
    def refuses(self, question: str, scored: Scored, best_cos: float | None = None) -> bool:
        """The notes do not answer: too little confidence, or a name they never mention and not much more
        (a rare one, by the model's vocabulary, needs more than a common one)."""
        if not scored:
            return True
        conf = self.confidence(question, scored, best_cos=best_cos)
        s = self.settings
        if conf < s.min_confidence:
            return True
        if conf < s.rare_confidence and self.rare_unknown_words(question):
            return True
        return conf < s.name_confidence and bool(self.unknown_names(question))

    # -- what the notes say ---------------------------------------------------------------------
    def _mentioned(self, word: str) -> bool:
        """Whether the notes' own text has the word: as a word (in a diagram or code block BM25 does not read:
        "CycleCloud" in a mermaid mind map), or, 6 letters or more, inside a longer token (a name in a URL:
        "miessler" in github.com/danielmiessler/fabric)."""
        low = word.lower()
        found = self._seen.get(low)
        if found is not None:
            return found
        known, text = self._notes_text()
        parts = _PART.findall(low)
        found = bool(parts) and all(p in known or len(p) >= 6 and p in text for p in parts)
        if len(self._seen) > 50_000:
            self._seen.clear()
        self._seen[low] = found
        return found

    def _notes_text(self) -> tuple[frozenset[str], str]:
        """The notes' words and their whole text, lowercased (read once, when first asked)."""
        if self._text is None:
            if getattr(self.chunks, "notes_text", None):     # the chunk table's files (columns.py): not read whole
                self._text = self.chunks.notes_text()
            else:
                text = "\n".join(c.text for c in self.chunks).lower()
                self._text = frozenset(_PART.findall(text)), text
        return self._text

    def _phrase_mentioned(self, phrase: str) -> bool:
        """Whether the notes have the words of a multi-word name in a row, with anything but letters and digits
        between them or nothing at all: "Let's Encrypt", "nginx-proxy-manager", "letsencrypt.org",
        "github.com/danielmiessler/fabric" for "Daniel Miessler's Fabric"."""
        key = "\0" + phrase.lower()
        found = self._seen.get(key)
        if found is None:
            if self._compact is None:
                self._compact = self.chunks.compact_text() if getattr(self.chunks, "compact_text", None) \
                    else "".join(_PART.findall(self._notes_text()[1]))
            forms = {phrase.lower(), _POSSESSIVE.sub("", phrase.lower())}
            found = any("".join(_PART.findall(f)) in self._compact for f in forms)
            self._seen[key] = found
        return found

    def _knows_identifier(self, word: str) -> bool:
        """Whether a code identifier with an inner underscore ("for_each") occurs in some chunk."""
        if self._identifiers is None and getattr(self.chunks, "identifiers", None):
            self._identifiers = self.chunks.identifiers()
        if self._identifiers is None:
            found = set()
            for c in self.chunks:
                if "_" in c.search_text:
                    found.update(m.lower().strip("_") for m in _IDENTIFIER.findall(c.search_text))
            self._identifiers = frozenset(found)
        return word.lower().strip("_") in self._identifiers


_WORD = re.compile(r"\w[\w.+-]*\w|\w")
_SUBWORD = re.compile(r"[.+-]")                    # splits a hyphenated or dotted word
_PART = re.compile(r"[^\W_]+")                      # letters and digits between underscores
_IDENTIFIER = re.compile(r"\w*_\w*")


_POSSESSIVE = re.compile(r"['’]s\b")
_MINOR = frozenset("a an the and but or nor for as at by in of on per to via with from into vs".split())
_EDGE = "\"'“”‘’()[]{}<>,;:!?."


def name_phrases(question: str) -> list[str]:
    """Runs of two or more capitalized words inside a sentence ("How do I get Let's Encrypt working with Nginx
    Proxy Manager?" -> "Let's Encrypt", "Nginx Proxy Manager"): a name made of ordinary words, which no check
    of one word at a time can see. A sentence's first word and "I" are not capitals of a name; punctuation
    before a word starts a new run, after a word ends its run; a question in Title Case has none."""
    words = question.split()
    if all(w.strip(_EDGE)[:1].isupper() for w in words
           if w.strip(_EDGE)[:1].isalpha() and w.strip(_EDGE).lower() not in _MINOR):
        return []   # Title Case: every word but articles, conjunctions and short prepositions has its capital
    out: list[str] = []
    run: list[str] = []

    def flush():
        if len(run) >= 2:
            out.append(" ".join(run))
        run.clear()

    sentence_start = True
    for raw in words:
        word = raw.strip(_EDGE)
        if raw[0] in _EDGE:
            flush()
        if word[:1].isupper() and word != "I" and not sentence_start:
            run.append(word)
        else:
            flush()
        if raw.rstrip(_EDGE) != raw:
            flush()
        sentence_start = raw.endswith((".", "?", "!", ":"))
    flush()
    return out


def _mixed_case(part: str) -> bool:
    """A capital after the first letter: "WireGuard", "iPhone", "LFS" (not "Netzwerk")."""
    return any(c.isupper() for c in part[1:])


def _is_identifier(word: str) -> bool:
    """A code identifier: an inner underscore and a letter ("for_each", "extract_wisdom", "ARM_CLIENT_ID")."""
    core = word.strip("_")
    return "_" in core and any(c.isalpha() for c in core)
