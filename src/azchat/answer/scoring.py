"""Scoring units: how much of the question's IDF-weighted vocabulary each one covers."""
from __future__ import annotations

import re

from ..index.analysis import tokenize
from ..notes.syntax import clean_inline
from .segmenting import Unit

_NUMERIC_Q = re.compile(r"\b(how (many|much|long|often|big|large|deep)|wie (viele|viel|lange|oft|gro)|when|wann|"
                        r"which (port|version|size)|welche[rns]? (port|version))", re.IGNORECASE)


def score_units(question: str, units: list[Unit], idf: dict[str, float], context: str = "") -> list[float]:
    """How much of the question's (IDF-weighted) vocabulary each unit covers. Words of the chunk's title and
    heading (`context`) count half: a sentence under 'terraform fmt' answers 'what does terraform fmt do'."""
    q_tokens = set(tokenize(question))
    total = sum(idf.get(t, 1.0) for t in q_tokens) or 1.0
    ctx_tokens = set(tokenize(context))
    ctx = ctx_tokens & q_tokens
    numeric = bool(_NUMERIC_Q.search(question))
    ctx = ctx | near_matches(q_tokens - ctx, ctx_tokens)
    scores = []
    for unit in units:
        if _drawing(unit.display) or _only_embeds(unit):
            scores.append(0.0)   # a line of an ASCII-art box diagram, an embedded image: nothing to read
            continue
        u_tokens = set(tokenize(clean_inline(unit.text) if unit.kind == "row" else unit.display))
        if unit.kind == "diagram":   # "CycleCloud" as written, not only as the label reads ("Cycle Cloud")
            u_tokens |= set(tokenize(clean_inline(unit.text)))
        hit = q_tokens & u_tokens
        hit |= near_matches(q_tokens - hit, u_tokens - hit)
        half = (ctx | set(tokenize(unit.display))) - hit   # a table row's header words count half, too
        cover = (sum(idf.get(t, 1.0) for t in hit) + 0.5 * sum(idf.get(t, 1.0) for t in half & q_tokens)) / total
        words = len(unit.display.split())
        brevity = 0.6 if words < 4 else 1.0
        bonus = 0.1 if numeric and any(ch.isdigit() for ch in unit.display) else 0.0
        direct = 1.0 if hit else 0.5        # matched only through its heading or table header: weaker
        if is_reference(unit):
            direct *= 0.2                    # a link list or an embedded image's file name answers nothing
        scores.append(cover * brevity * direct + bonus * (cover > 0))
    return scores


def _drawing(text: str) -> bool:
    """Lines of an ASCII-art diagram: mostly box-drawing characters ("+-----+", "|  v  |"), or cells that are
    mostly empty ("|  |  | (Read/Write)    |    |  |"). A one-line unit only; a table row has few empty cells."""
    if "\n" in text or not text.strip():
        return False
    visible = [ch for ch in text if not ch.isspace()]
    letters = sum(ch.isalnum() for ch in visible)
    if len(visible) >= 6 and letters < 0.3 * len(visible):
        return True
    cells = text.strip().strip("`").split("|")
    return len(cells) >= 5 and sum(not c.strip() for c in cells) >= 0.5 * len(cells)


def near_matches(q_tokens: set[str], u_tokens: set[str]) -> set[str]:
    """Question tokens that a unit word matches up to an inflection ending. The stemmer is English, so German
    words keep their endings ('kopiere' -> kopier, 'kopieren' stays; 'unterstützt' / 'unterstützen'): a shared
    start of at least 6 letters that leaves at most 2 letters of the shorter and 3 of the longer word counts
    as the same word ('config' / 'confirm' share only 5)."""
    found = set()
    for q in q_tokens:   # "size" / "resize", "name" / "renamed": the verb again, with the prefix re-
        if len(q) >= 4 and any(u.startswith("re") and len(u) - 2 >= len(q) - 1 and u[2:2 + len(q) - 1] == q[:-1]
                               and len(u) - 2 <= len(q) + 1 for u in u_tokens):
            found.add(q)
    long_q = [q for q in q_tokens if len(q) >= 6]
    if not long_q:
        return found
    by_start: dict[str, list[str]] = {}
    for u in u_tokens:
        if len(u) >= 6:
            by_start.setdefault(u[:6], []).append(u)
    for q in long_q:
        for u in by_start.get(q[:6], ()):
            shared = _shared_start(q, u)
            if shared >= min(len(q), len(u)) - 2 and shared >= max(len(q), len(u)) - 3:
                found.add(q)
                break
    return found


def _shared_start(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


_URL = re.compile(r"https?://\S+|\S+\.(?:png|jpe?g|gif|svg|webp|pdf)\b", re.IGNORECASE)


_EMBED = re.compile(r"!\[\[[^\]]*\]\]|!\[[^\]]*\]\([^)]*\)")   # ![[Pasted image 2023.png]], ![alt](img.png)


def _only_embeds(unit: Unit) -> bool:
    """Nothing but embedded images or files (whose names may hold spaces: "Pasted image 2023....png")."""
    return bool(_EMBED.search(unit.text)) and not re.sub(r"[\s>*+-]", "", _EMBED.sub("", unit.text))


def is_reference(unit: Unit) -> bool:
    """Mostly URLs or image file names, or nothing but embedded images."""
    refs = _URL.findall(unit.display)
    return bool(refs) and len(" ".join(refs)) >= 0.5 * len(unit.display.strip()) or _only_embeds(unit)
