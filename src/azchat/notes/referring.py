"""Words that point back at something said just before ("it", "that", "the above", "das", "damit"), English and
German: one list for the question that continues a conversation (service.is_follow_up) and for the sentence
that explains the code above it (answer.py)."""
from __future__ import annotations

import re

REFERRING = frozenset({
    "it", "its", "it's", "that", "this", "these", "those", "they", "them", "their", "there", "here", "one",
    "the above",
    "es", "das", "dies", "diese", "dieser", "dieses", "sie", "ihn", "ihm", "ihr", "deren", "dessen", "dort",
    "hier", "dafür", "dazu", "damit", "davon", "der obige",
})
_WORD = re.compile(r"[\w']+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def refers_back(text: str) -> bool:
    """Some word (or two-word phrase) of the text points back."""
    words = _words(text)
    return any(w in REFERRING for w in words) or any(f"{a} {b}" in REFERRING for a, b in zip(words, words[1:]))


def opens_referring_back(text: str) -> bool:
    """The text begins with a word (or two-word phrase) that points back: "This command ...", "Damit ..."."""
    words = _words(text)[:2]
    return bool(words) and (words[0] in REFERRING or " ".join(words) in REFERRING)
