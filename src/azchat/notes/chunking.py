"""Split a Note into heading-aware chunks that fit the embedder, with exact 1-based line spans."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Callable, Sequence

from ..config import ChunkSettings
from .syntax import LineCleaner, heading_of
from ..types import Chunk, Note

TokenCounter = Callable[[Sequence[str]], list[int]]


@dataclass
class Section:
    headings: list[str]   # heading path
    start: int            # 0-based index of the first line (the heading line itself, if any)
    end: int              # exclusive


def sections(note: Note) -> tuple[list[Section], list[str]]:
    """Cut the body at headings (outside code fences). Returns sections and each line's clean text."""
    cleaner = LineCleaner()
    clean = [""] * len(note.lines)
    out: list[Section] = []
    stack: list[tuple[int, str]] = []
    current = Section([], note.body_start, note.body_start)
    for i in range(note.body_start, len(note.lines)):
        line = note.lines[i]
        was_code = cleaner.in_code
        clean[i] = cleaner.clean(line)
        h = None if (was_code or cleaner.in_code) else heading_of(line)
        if h:
            current.end = i
            out.append(current)
            level, text = h
            stack = [(lv, t) for lv, t in stack if lv < level] + [(level, text)]
            current = Section([t for _, t in stack], i, i)
    current.end = len(note.lines)
    out.append(current)
    return [s for s in out if s.end > s.start], clean


def _prefix(note: Note, headings: list[str]) -> str:
    parts = [note.title] + [h for h in headings if h != note.title]
    return " > ".join(p for p in parts if p)


def chunk_note(note: Note, count_tokens: TokenCounter, max_tokens: int,
               settings: ChunkSettings = ChunkSettings()) -> list[Chunk]:
    """All chunks of one note. No chunk exceeds the token budget; long sections overlap by a few lines."""
    budget = min(settings.max_tokens, max_tokens)
    secs, clean = sections(note)
    line_tokens = [0] * len(note.lines)
    live = [i for i, c in enumerate(clean) if c]
    for i, n in zip(live, count_tokens([clean[i] for i in live])):
        line_tokens[i] = n
    chunks: list[Chunk] = []
    for sec in secs:
        body = [i for i in range(sec.start, sec.end) if clean[i]]
        heading_line = sec.start if sec.headings and heading_of(note.lines[sec.start]) else None
        if not [i for i in body if i != heading_line]:
            continue   # a heading with nothing under it: its children carry the path
        heading = " > ".join(sec.headings)
        prefix = _prefix(note, sec.headings)
        room = max(budget - count_tokens([prefix])[0] - 1, 16)
        for start, end, piece in _windows(note, sec, clean, line_tokens, room, settings.overlap_lines,
                                          count_tokens):
            chunks.append(_make_chunk(note, heading, prefix, start, end, piece, clean))
    if not chunks and note.body_start > 0 and note.title:
        # frontmatter only: the title and tags are still worth finding
        chunks.append(_make_chunk(note, "", note.title, 0, note.body_start - 1, None, clean))
    return chunks


def _windows(note, sec: Section, clean, line_tokens, room, overlap, count_tokens):
    """(first line, last line, piece-or-None) windows over a section, each within `room` tokens."""
    lines = list(range(sec.start, sec.end))
    while lines and not note.lines[lines[-1]].strip():
        lines.pop()
    if sum(line_tokens[i] for i in lines) <= room:
        yield lines[0], lines[-1], None
        return
    pos = 0
    while pos < len(lines):
        i = lines[pos]
        if line_tokens[i] > room:
            if line_tokens[i] > VERY_LONG_LINE * room:
                # half a chunk per window: a line without structure (an export of many records) holds many
                # unrelated facts, and a smaller window keeps one of them from drowning in its neighbours
                yield from _split_long_line(note.lines[i], i, room // 2, count_tokens)
            else:   # a paragraph written on one line (an abstract): chunk-sized pieces, as any section
                yield from _split_line(note.lines[i], i, room, count_tokens)
            pos += 1
            continue
        total, end = 0, pos
        while end < len(lines) and line_tokens[lines[end]] <= room and total + line_tokens[lines[end]] <= room:
            total += line_tokens[lines[end]]
            end += 1
        # prefer ending at a blank line (paragraph boundary) in the second half of the window
        for cut in range(end - 1, pos + (end - pos) // 2, -1):
            if not note.lines[lines[cut]].strip():
                end = cut + 1
                break
        first, last = lines[pos], lines[end - 1]
        while last > first and not note.lines[last].strip():
            last -= 1
        if any(clean[j] and not heading_of(note.lines[j]) for j in range(first, last + 1)):
            yield first, last, None
        if end >= len(lines):
            break
        pos = max(end - overlap, pos + 1) if not any(line_tokens[lines[j]] > room for j in range(pos, end)) else end
        while pos < len(lines) and not note.lines[lines[pos]].strip():
            pos += 1


_SENTENCE_END = re.compile(r"[.!?;:]['\")\]]*$")


# A line longer than this many chunks is an export or a minified file, not a paragraph: it gets the smaller,
# sentence-aligned windows of _split_long_line (SciFact's one-line abstracts, 1-3 chunks long, keep
# _split_line's chunk-sized pieces: half-size windows there cost BM25 0.026 nDCG@10, bench/QUALITY.md round 5)
VERY_LONG_LINE = 8


def _word_spans(line: str) -> list[tuple[int, int]]:
    """(start, end) of each word of a line; a word-less blob (base64, minified code) cut every 200 chars."""
    spans = []
    for m in re.finditer(r"\S+", line):
        s, e = m.start(), m.end()
        while e - s > 200:
            spans.append((s, s + 200))
            s += 200
        spans.append((s, e))
    return spans


def _fill(counts: list[int], i: int, room: int) -> int:
    """Where a window that starts at word i ends (exclusive): as many words as fit in `room` tokens, at least one."""
    total, j = 0, i
    while j < len(counts) and (j == i or total + counts[j] <= room):
        total += counts[j]
        j += 1
    return j


def _split_line(line: str, index: int, room: int, count_tokens):
    """A line longer than the budget: pieces of `room` tokens cut between words, overlapping by a tenth."""
    spans = _word_spans(line)
    counts = count_tokens([line[s:e] for s, e in spans])
    i = 0
    while i < len(spans):
        j = _fill(counts, i, room)
        yield index, index, line[spans[i][0]:spans[j - 1][1]]
        if j >= len(spans):
            break
        i = max(j - max((j - i) // 10, 1), i + 1)


def _split_long_line(line: str, index: int, room: int, count_tokens):
    """A single line of many chunks (an export, a minified file): windows of `room` tokens over it
    that all carry its line number. Windows are cut between words, end after a sentence where one ends in
    their second half, and overlap by a quarter of `room`, starting at a sentence where one starts in the
    overlap, so every sentence shorter than the overlap lies whole inside at least one window."""
    spans = _word_spans(line)
    counts = count_tokens([line[s:e] for s, e in spans])
    ends = [bool(_SENTENCE_END.search(line[s:e])) for s, e in spans]
    overlap = max(room // 4, 1)
    i = 0
    while i < len(spans):
        j = _fill(counts, i, room)
        if j < len(spans):
            j = next((k + 1 for k in range(j - 1, i + (j - i) // 2, -1) if ends[k]), j)
        yield index, index, line[spans[i][0]:spans[j - 1][1]]
        if j >= len(spans):
            break
        start, back = j, 0
        while start - 1 > i and back + counts[start - 1] <= overlap:
            start -= 1
            back += counts[start]
        start = next((k for k in range(start, j) if ends[k - 1]), start)
        i = max(start, i + 1)


def _make_chunk(note: Note, heading: str, prefix: str, first: int, last: int,
                piece: str | None, clean: list[str]) -> Chunk:
    if piece is None:
        text = "\n".join(note.lines[first:last + 1])
        body = "\n".join(c for c in clean[first:last + 1] if c)
    else:
        text = piece
        body = LineCleaner().clean(piece)
    embed_text = f"{prefix}\n{body}" if body else prefix
    meta = " ".join([note.title, *note.aliases, *note.tags, heading, note.description])
    cid = hashlib.sha1(f"{note.path}\0{first}\0{last}\0{text}".encode()).hexdigest()[:16]
    return Chunk(id=cid, path=note.path, title=note.title, heading=heading,
                 start_line=first + 1, end_line=last + 1, text=text, embed_text=embed_text,
                 search_text=f"{meta}\n{body}", tags=list(note.tags), aliases=list(note.aliases))
