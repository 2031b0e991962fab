"""Whether the notes answer a question at all: the "not in your notes" decision, apart from ranking and answers.

The decision reads what `Retriever.ask` ranked (the hits it will quote and the best dense cosine of the whole
candidate pool) and two kinds of evidence, both of which hold for any vault and survive a paraphrase:
- confidence: w * best cosine + (1 - w) * the best IDF-weighted share of the question's words in one of the top
  3 hits;
- names of things the notes never mention: a word of the question that occurs nowhere in the notes (neither in
  BM25's vocabulary nor in their text, code and diagrams included) and is no ordinary English or German word
  (language.is_common_word: "Proxmox", "restic", "for_each", not "sourdough" or "Anmeldeversuche"). A question
  about such a thing asks for more confidence: the notes can hardly answer what they never name.
Calibrated in bench/quality.py (`calibrate`) on the shared, dev, fresh and off-topic sets, never on the held-out
gate set; the curve is in bench/QUALITY.md.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from ..notes.language import is_common_word
from ..index.analysis import _IDENTIFIER, _PART, STOPWORDS, tokenize
from ..index.lexical import LexicalIndex
from ..types import Chunk


@dataclass(frozen=True)
class RefusalSettings:
    """Thresholds of the "not in your notes" decision; calibrated on bench/ (see bench/QUALITY.md)."""

    min_confidence: float = 0.31   # below this the notes do not answer
    confidence_dense_weight: float = 0.7   # confidence = w * best cosine + (1 - w) * question coverage
    name_confidence: float = 0.49  # a question naming a thing the notes never mention asks for this much


# a hit as Retriever._ranked returns it: (chunk row, fused score, dense cosine, raw BM25)
Scored = Sequence[tuple[int, float, float, float]]


class Refusal:
    """Decides whether the notes answer a question, from the hits and what the notes' words are."""

    def __init__(self, chunks: Sequence[Chunk], lexical: LexicalIndex,
                 settings: RefusalSettings = RefusalSettings()):
        self.chunks, self.lexical, self.settings = chunks, lexical, settings
        self._identifiers: frozenset[str] | None = None   # the notes' code identifiers, read when first asked
        self._text: tuple[frozenset[str], str] | None = None   # the notes' words and lowercased text
        self._seen: dict[str, bool] = {}    # word -> mentioned (the substring search is ~1 ms on a large vault)

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

    def unknown_terms(self, question: str) -> list[str]:
        """Words of the question that name something the notes never mention: not in the notes (as a word, a
        compound part, or inside a longer token such as a URL) and no ordinary English or German word. A code
        identifier ("for_each") counts when no chunk has it."""
        out: list[str] = []
        for word in _WORD.findall(question):
            for sub in _SUBWORD.split(word):
                if _is_identifier(sub):
                    if not self._knows_identifier(sub) and sub not in out:
                        out.append(sub)
                    continue
                for part in _PART.findall(sub):
                    low = part.lower()
                    if len(low) < 3 or low.isdigit() or low in STOPWORDS or part in out:
                        continue
                    if self.lexical.query_tokens(low) or self._mentioned(low):
                        continue
                    if not is_common_word(low):
                        out.append(part)
        return out

    # -- the decision ---------------------------------------------------------------------------
    def refuses(self, question: str, scored: Scored, best_cos: float | None = None) -> bool:
        """The notes do not answer: too little confidence, or a thing they never name and not much more."""
        if not scored:
            return True
        conf = self.confidence(question, scored, best_cos=best_cos)
        s = self.settings
        if conf < s.min_confidence:
            return True
        return conf < s.name_confidence and bool(self.unknown_terms(question))

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


def _is_identifier(word: str) -> bool:
    """A code identifier: an inner underscore and a letter ("for_each", "extract_wisdom", "ARM_CLIENT_ID")."""
    core = word.strip("_")
    return "_" in core and any(c.isalpha() for c in core)
