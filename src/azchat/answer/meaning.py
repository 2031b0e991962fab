"""Lines by meaning (issue 18 item 4): the candidate units the composer considers, embedded at question time and
their cosine to the question blended into the word score. Off unless asked for (compose(meaning=...))."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Sequence

Similarity = Callable[[str, Sequence[str]], Sequence[float]]   # (question, texts) -> cosine of each text


@dataclass(frozen=True)
class LineMeaning:
    """unit score = (1 - weight) * word score + weight * max(0, (cos - floor) / (1 - floor)), for the `most`
    best candidates by word score (one embedder call); the rest keep (1 - weight) * word score."""

    weight: float = 0.5
    floor: float = 0.2          # a cosine at or below it says nothing
    heading: bool = False       # embed "heading: unit" instead of the unit alone
    most: int = 12
    form: str = "blend"         # "add": word score + weight * meaning (the word scores are not scaled down)
    trust: bool = True          # weight times the retrieval's trust in the embedder for this question (fertility)
    words: int = 0              # embed at most this many words of each text (0: all; the cost is per token)
    inherit: bool = True        # a span (a list, a line with its code) means at least what a line inside it means


def from_env(value: str | None = None) -> LineMeaning | None:
    """$AZCHAT_LINES_BY_MEANING: "off" / unset, or "w=.5,floor=.2,heading=1,most=12" (any subset)."""
    value = os.environ.get("AZCHAT_LINES_BY_MEANING", "") if value is None else value
    if value.strip().lower() in ("", "0", "off", "no", "false"):
        return None
    kw: dict = {}
    for part in value.split(","):
        key, _, val = part.partition("=")
        key = key.strip()
        if key in ("w", "weight"):
            kw["weight"] = float(val)
        elif key in ("floor", "c0"):
            kw["floor"] = float(val)
        elif key == "heading":
            kw["heading"] = val.strip().lower() in ("1", "yes", "true", "on")
        elif key == "words":
            kw["words"] = int(val)
        elif key == "most":
            kw["most"] = int(val)
        elif key in ("trust", "inherit"):
            kw[key] = val.strip().lower() in ("1", "yes", "true", "on")
        elif key == "form":
            kw["form"] = val.strip()
    return LineMeaning(**kw)


def blended(question: str, raw: list, settings: LineMeaning, similarity: Similarity, trust: float = 1.0
            ) -> list[float]:
    """The word scores of raw [(word score, rank key, text, heading, (hit, first line, last line))] with the
    meaning of the `most` best (by rank key) blended in; one similarity() call for all of them. trust (0-1):
    how far the embedder reads this question (1: its words are the model's own)."""
    w, c0 = settings.weight * (trust if settings.trust else 1.0), settings.floor
    if w <= 0:
        return [r[0] for r in raw]
    order = sorted(range(len(raw)), key=lambda i: raw[i][1])[:settings.most]
    texts = [f"{raw[i][3]}: {raw[i][2]}" if settings.heading and raw[i][3] else raw[i][2] for i in order]
    if settings.words:
        texts = [" ".join(t.split()[:settings.words]) for t in texts]
    cos = list(similarity(question, texts)) if texts else []
    mean = [0.0] * len(raw)
    for i, c in zip(order, cos):
        mean[i] = max(0.0, (float(c) - c0) / (1 - c0))
    if settings.inherit:
        spans = [r[4] for r in raw]
        mean = [max([m] + [mean[j] for j, (h, a, b) in enumerate(spans) if h == spans[i][0]
                           and spans[i][1] <= a and b <= spans[i][2] and j != i])
                for i, m in enumerate(mean)]
    base = [(1 - w) * r[0] if settings.form == "blend" else r[0] for r in raw]
    return [b + w * m for b, m in zip(base, mean)]
