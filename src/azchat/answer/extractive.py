"""The extractive answer: pick the sentences of the best hits that answer the question, cite each one."""
from __future__ import annotations

from ..types import Answer, Chunk, Citation, Hit, Part, answer_text
from .scoring import is_reference, score_units
from .segmenting import Unit, segment
from .selecting import frontmatter_only, introduces, joined, one_block, repeats, span_unit, widened, with_blocks

NOT_FOUND = "I could not find anything about this in your notes."
INTRO = "From your notes:"


def compose(question: str, hits: list[Hit], chunks: list[Chunk], idf: dict[str, float], found: bool,
            max_sentences: int = 4, max_hits: int = 4, opening=None) -> Answer:
    """Render the answer text and its citations from the top hits (chunks aligned with hits). opening(chunk):
    (the fenced block open at the chunk's first line, whether it lies in indented code), read from its note
    (see segment); guessed from the chunk alone when not given."""
    if not found or not hits:
        return Answer(question, NOT_FOUND + " Try other words, or check that the note is in the notes folder.",
                      False, [], hits)
    all_hits = hits
    # a note with no body is found by its title, but its YAML keys answer nothing: quote from the others
    kept = [(h, c) for h, c in zip(hits, chunks) if not frontmatter_only(c)]
    if not kept:
        return Answer(question, NOT_FOUND, False, [], all_hits)
    hits, chunks = [h for h, _ in kept], [c for _, c in kept]
    top_score = hits[0].score
    read: dict[int, Chunk] = {}   # hit index -> the chunk its units were cut from
    candidates: list[tuple[float, int, int, Unit]] = []   # (score, hit index, order, unit)
    for h_idx, (hit, chunk) in enumerate(zip(hits[:max_hits], chunks[:max_hits])):
        if hit.score < 0.6 * top_score and h_idx > 0:
            break
        # a section cut in two whose other piece is a later hit reads whole (a list cut at the split, too)
        chunk = widened(chunk, chunks)
        read[h_idx] = chunk
        prior = hit.score / top_score if top_score > 0 else 1.0
        units = segment(chunk, *opening(chunk)) if opening else segment(chunk)
        scored = with_blocks(units, score_units(question, units, idf, f"{chunk.title} {chunk.heading}"), chunk,
                              question)
        if one_block(units, chunk):
            # a section that is only a short code block: its own heading is the intro ("### Ordner kopieren")
            own = chunk.heading.rsplit(" > ", 1)[-1]
            intro = score_units(question, [Unit(own, own, 0, 0, "sentence")], idf, chunk.title)[0]
            if intro > 0:   # the whole block, not a piece of it, when a piece scores best
                best_piece = max(sc for _, sc in scored) if scored else 0.0
                scored.append((span_unit(units, 0, len(units) - 1, chunk, snippet=True), max(intro, best_piece) + 0.02))
        for unit, s in scored:
            if unit.kind == "diagram" and len(unit.display.split()) < 2:
                continue   # a bare edge label ("uses") says nothing alone
            if unit.kind in ("sentence", "item") and introduces(unit) \
                    and unit.end_line >= units[-1].end_line:
                s *= 0.5   # an intro with nothing below it in its section ("Let's explore some applications:")
            candidates.append((s * (0.5 + 0.5 * prior) + 0.01 * prior, h_idx, unit.start_line, unit))
    if not candidates:
        return Answer(question, NOT_FOUND, False, [], all_hits)
    candidates.sort(key=lambda c: (-c[0], c[1], c[2]))
    best = candidates[0][0]
    chosen: list = []
    for c in candidates:
        if len(chosen) >= max_sentences or (chosen and (c[0] < 0.5 * best or c[0] <= 0)):
            break
        if not repeats(c, chosen, hits):
            chosen.append(c)
    if chosen and all(c[1] != 0 for c in chosen):
        # the best-ranked hit (by meaning and words) always has its say: its best unit takes the last slot
        # (hit 1's prior is 1, so a unit that shares a word with the question scores above the 0.01 floor)
        own = [c for c in candidates if c[1] == 0 and c[0] > 0.01 + 1e-9 and not is_reference(c[3])
               and not repeats(c, chosen, hits)]
        if own:
            if len(chosen) >= max_sentences:
                chosen.pop()
            chosen.append(own[0])
    # read in note order: by hit, then position in the chunk
    chosen.sort(key=lambda c: (c[1], c[2]))
    chosen = joined(chosen, read)
    citations: list[Citation] = []
    parts: list[Part] = []
    for n, (_, h_idx, _, unit) in enumerate(chosen, start=1):
        hit = hits[h_idx]
        citations.append(Citation(n, hit.path, hit.title, hit.heading, unit.start_line, unit.end_line,
                                  unit.text))
        style = {"code": "code", "list": "block", "table": "block", "snippet": "block"}.get(unit.kind, "text")
        parts.append(Part(unit.display, n, style))
    return Answer(question, answer_text(INTRO, parts, citations), True, citations, all_hits, INTRO, parts)
