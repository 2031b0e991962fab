"""How common a word is in English or German at large (the `wordfreq` package's frequency lists, offline).

A word the notes never use tells something only when it names a thing (a product, a tool: "Proxmox", "restic");
an ordinary word of either language ("recipe", "afterwards", "Anmeldeversuche") is how a paraphrase or a German
question is written. The frequency lists tell the two apart for any vault, with no list of names of our own.

Reading wordfreq's lists takes a second or two, too slow for a cold `azchat ask`: the first build writes the
words that matter (Zipf >= 2 in either language) to a small table in the index folder (`lang/`, numpy, no
pickle), which a query process reads in milliseconds (open_table). Without the table the lists are read.
"""
from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

COMMON_ZIPF = 3.0    # about once per million words: rarer than this, a word reads as a name
PART_ZIPF = 2.5      # a part of a compound ("Zugriffs" + "ebene") must be at least this common
MIN_PART = 3
PREFIX_ZIPF = 5.0    # ... and a two-letter one must be a very common German word (the verb prefixes "ab", "an")
TABLE_MIN_ZIPF = 2.0  # the table keeps the words at least this common; rarer ones read as 0.0 (all rules ask >= 2.5)
TABLE_FILE = "wordfreq-zipf-v1.npz"
LANGS = ("en", "de")

_table: dict | None = None   # {"keys": sorted uint64, "en": uint16 zipf*100, "de": ...} once open_table found one


def _key(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "little")


def table_path(index_dir) -> Path:
    return Path(index_dir) / "lang" / TABLE_FILE


def write_table(index_dir) -> Path | None:
    """Write the word table for this index folder when it is missing (atomically: a temp file renamed).
    None when wordfreq is not installed."""
    path = table_path(index_dir)
    if path.is_file():
        return path
    try:
        from wordfreq import get_frequency_list
    except ImportError:   # pragma: no cover - a declared dependency
        return None
    values: dict[int, list[int]] = {}
    for n, lang in enumerate(LANGS):
        # wordfreq's lists are buckets of words, one per centibel: bucket i holds the words of Zipf 9 - i/100
        for i, bucket in enumerate(get_frequency_list(lang, "best")[:int(round((9.0 - TABLE_MIN_ZIPF) * 100)) + 1]):
            for word in bucket:
                values.setdefault(_key(word), [0] * len(LANGS))[n] = 900 - i
    keys = np.array(sorted(values), dtype=np.uint64)
    arrays = {"keys": keys}
    for n, lang in enumerate(LANGS):
        arrays[lang] = np.array([values[int(k)][n] for k in keys], dtype=np.uint16)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    os.replace(tmp, path)
    return path


def open_table(index_dir) -> bool:
    """Use the index folder's word table for every lookup in this process (False when it has none)."""
    global _table
    path = table_path(index_dir)
    if not path.is_file():
        return False
    if _table is not None and _table.get("path") == path:
        return True
    try:
        with np.load(path, allow_pickle=False) as data:
            table = {"keys": data["keys"], **{lang: data[lang] for lang in LANGS}, "path": path}
    except (OSError, ValueError, KeyError):
        return False   # a damaged table: the lists themselves are read instead
    _table = table
    _clear_caches()
    return True


@lru_cache(maxsize=100_000)
def zipf(word: str) -> float:
    """The word's frequency on the Zipf scale (log10 of occurrences per billion words), the larger of English
    and German; 0.0 for a word neither list has."""
    low = word.lower()
    return max(_zipf_in(low, "en"), _zipf_in(low, "de"))


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
    """The word's Zipf frequency in one language: from the index's table when open_table found one, else from
    wordfreq's own lists."""
    table = _table
    if table is None:
        from wordfreq import zipf_frequency

        return zipf_frequency(word, lang)
    keys = table["keys"]
    k = np.uint64(_key(word.casefold()))   # as wordfreq reads a word ("Größe" -> "grösse")
    i = int(np.searchsorted(keys, k))
    return table[lang][i] / 100.0 if i < len(keys) and keys[i] == k else 0.0


def _clear_caches() -> None:
    for f in (zipf, is_common_word, _compound, _zipf_in):
        f.cache_clear()


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
