"""How common a word is in English or German at large (the `wordfreq` package's frequency lists, bundled, offline).

A word the notes never use tells something only when it names a thing (a product, a tool: "Proxmox", "restic");
an ordinary word of either language ("sourdough", "afterwards", "Anmeldeversuche") is how a paraphrase or a German
question is written. The frequency lists tell the two apart for any vault, with no list of names of our own.
"""
from __future__ import annotations

from functools import lru_cache

COMMON_ZIPF = 3.0    # about once per million words: rarer than this, a word reads as a name
PART_ZIPF = 2.5      # a part of a compound ("Zugriffs" + "ebene") must be at least this common
MIN_PART = 3
PREFIX_ZIPF = 5.0    # ... and a two-letter one must be a very common German word (the verb prefixes "ab", "an")


@lru_cache(maxsize=100_000)
def zipf(word: str) -> float:
    """The word's frequency on the Zipf scale (log10 of occurrences per billion words), the larger of English
    and German; 0.0 for a word neither list has."""
    from wordfreq import zipf_frequency

    low = word.lower()
    return max(zipf_frequency(low, "en"), zipf_frequency(low, "de"))


@lru_cache(maxsize=100_000)
def is_common_word(word: str, threshold: float = COMMON_ZIPF) -> bool:
    """An ordinary word of English or German: common itself, as its singular ("gotchas"), or a compound of
    common parts with an optional linking s ("Anmeldeversuche", "zurückschreiben", "Weboberfläche")."""
    low = word.lower()
    if not low.isalpha():
        return False
    if zipf(low) >= threshold or len(low) > 3 and low.endswith("s") and zipf(low[:-1]) >= threshold:
        return True
    return _compound(low)


@lru_cache(maxsize=100_000)
def _zipf_in(word: str, lang: str) -> float:
    from wordfreq import zipf_frequency

    return zipf_frequency(word, lang)


def _german_head(part: str) -> bool:
    """The last part of a German compound: a German word, more German than English ("versuche", "ebene",
    "oberfläche"; not "scale", "guard", "cloud", which make English names like "Tailscale")."""
    de = _zipf_in(part, "de")
    return len(part) >= 4 and de >= PART_ZIPF and de > _zipf_in(part, "en")


@lru_cache(maxsize=100_000)
def _compound(low: str) -> bool:
    """A German compound or prefixed verb: a common first part (of either language: "Web", "Auto", "zurück"),
    with an optional linking s, and a German word as its head ("Anmelde|versuche", "Zugriffs|ebene",
    "zurück|schreiben"); the head may be a compound itself."""
    for i in range(2, len(low) - 4 + 1):
        left, right = low[:i], low[i:]
        if i < MIN_PART:   # a two-letter first part only as a very common German word: "ab|weist", "an|melden"
            if _zipf_in(left, "de") < PREFIX_ZIPF:
                continue
        elif not (zipf(left) >= PART_ZIPF
                  or left.endswith("s") and len(left) > MIN_PART and zipf(left[:-1]) >= PART_ZIPF):
            continue
        if _german_head(right) or len(right) >= 2 * MIN_PART + 1 and _compound(right):
            return True
    return False
