"""Cutting a chunk into quotable units (sentences, list items, table rows, code and diagram lines), each with
its exact line span in the file."""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..notes.syntax import LineCleaner, clean_inline, fence_of, heading_of, indent_width, starts_inside_code
from ..types import Chunk

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[`*_]?[A-ZÄÖÜ0-9])")
_LIST = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_QUOTE = re.compile(r"^\s*>")
_ONE_LINE_FENCE = re.compile(r"^\s*`{3,}([^`]+)`{3,}\s*$")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}")
_DIAGRAM_STYLE = re.compile(r"^\s*(style|classDef|class|linkStyle)\s", re.IGNORECASE)   # mermaid's styling lines


@dataclass
class Unit:
    """A quotable piece of a chunk: a sentence, list item, table row, code or diagram line."""

    text: str          # raw, exactly as in the file (lines joined by "\n")
    display: str       # cleaned for reading
    start_line: int    # 1-based
    end_line: int
    kind: str          # sentence | item | row | code | diagram | quote; list | table | snippet when merged
    header: tuple[str, ...] = ()   # a table row's column names, when its table has a header row


_CONTINUED = re.compile(r"\s+[\\`^]\s*$")


_UNKNOWN = ("?", "?")   # segment(): the code block open above the chunk is not known, guess from its own lines


def segment(chunk: Chunk, open_block: tuple[str, str] | None = _UNKNOWN, in_indented_code: bool = False
            ) -> list[Unit]:
    """Split a chunk's raw text into quotable units, each with its exact line span. open_block: the fence and
    language of the code block the chunk starts inside (None: it starts outside code), when the caller knows
    it from the note; else it is guessed from the chunk (a closing fence with no opener above it).
    in_indented_code: the chunk's first line lies in an indented code block (known from the note)."""
    lines = chunk.text.split("\n")
    units: list[Unit] = []
    cleaner = LineCleaner()
    if open_block is _UNKNOWN:
        marker = starts_inside_code(lines)
        open_block = (marker, "") if marker else None
    if open_block:   # a long section was split inside a code block
        cleaner.fences.open(*open_block)
    para: list[tuple[int, str]] = []
    header: list[str] = []       # the cells of the current table's header row
    blank_above = in_indented_code   # the line above the chunk: unknown unless the caller says it was code
    indented = in_indented_code  # inside an indented code block (4 spaces after a blank line, not in a list)

    def flush():
        if para:
            units.extend(_sentences(para))
            para.clear()

    for offset, raw in enumerate(lines):
        line_no = chunk.start_line + offset
        one_line = None if cleaner.in_code else _ONE_LINE_FENCE.match(raw)
        if one_line:   # ```cmd``` on one line is inline code (CommonMark: no backticks in an info string)
            flush()
            units.append(Unit(raw.strip(), one_line.group(1).strip(), line_no, line_no, "code"))
            continue
        after_blank, blank_above = blank_above, not raw.strip()
        if not cleaner.in_code and fence_of(raw) is None:
            if not raw.strip():
                flush()
                header = []
                continue
            if indent_width(raw) >= 4 and (indented or after_blank and not para and not _LIST.match(raw)
                                      and not (units and units[-1].kind == "item")):
                # an indented code block (CommonMark): it cannot interrupt a paragraph or continue a list
                # (nor start with a list marker: the middle of a long YAML block cut out of its fence)
                indented = True
                flush()
                units.append(Unit(raw.strip(), raw.strip(), line_no, line_no, "code"))
                continue
            indented = False
        was_code = cleaner.in_code
        clean = cleaner.clean(raw)
        if was_code or cleaner.in_code:
            flush()
            if clean and was_code and cleaner.in_code:
                kind = "diagram" if cleaner.fence_lang == "mermaid" else "code"
                prev = units[-1] if units else None
                if kind == "code" and prev is not None and prev.kind == "code" \
                        and prev.end_line == line_no - 1 and _CONTINUED.search(prev.text):
                    # a command continued over several lines (\ in shells, ` in PowerShell) is one unit
                    units[-1] = Unit(prev.text + "\n" + raw, _CONTINUED.sub("", prev.display) + " " + clean,
                                     prev.start_line, line_no, "code")
                elif kind == "diagram" and _DIAGRAM_STYLE.match(raw):
                    pass   # "style EI fill:#f9f,stroke:#333": how the diagram looks, not what it says
                elif kind == "code" or ":" in clean:   # a diagram line that says something ("state X : ...")
                    units.append(Unit(raw.strip(), clean, line_no, line_no, kind))
            continue
        if _TABLE_RULE.match(raw) and "-" in raw and units and units[-1].kind == "row" \
                and units[-1].end_line == line_no - 1:
            header = _cells(units.pop().text)   # the row above the rule is the header: shown in each row
            continue
        if not raw.strip() or heading_of(raw) or _TABLE_RULE.match(raw) and "-" in raw:
            flush()
            header = []
            continue
        if raw.lstrip().startswith("|"):
            flush()
            cells = _cells(raw)
            shown = clean
            if header and len(cells) == len(header) and cells != header:
                shown = "; ".join(f"{h}: {c}" if h else c for h, c in zip(header, cells) if c)
            units.append(Unit(raw.strip(), shown, line_no, line_no, "row", tuple(header)))
        elif _LIST.match(raw):
            flush()
            units.append(Unit(raw.strip(), clean, line_no, line_no, "item"))
        elif _QUOTE.match(raw):
            flush()
            if clean and not clean.endswith(":"):
                units.append(Unit(raw.strip(), clean, line_no, line_no, "quote"))
        elif raw.startswith((" ", "\t")) and units and units[-1].kind == "item" and not para:
            prev = units[-1]   # a list item's continuation line
            units[-1] = Unit(prev.text + "\n" + raw.strip(), prev.display + " " + clean,
                             prev.start_line, line_no, "item")
            # keep the raw text exact: the continuation line is quoted without its indent
        else:
            para.append((line_no, raw))
    flush()
    return [u for u in units if u.display]


def _cells(row: str) -> list[str]:
    return [clean_inline(c) for c in row.strip().strip("|").split("|")]


def _sentences(para: list[tuple[int, str]]) -> list[Unit]:
    first_line = para[0][0]
    text = "\n".join(raw for _, raw in para)
    out = []
    start = 0
    bounds = [m.start() for m in _SENTENCE_END.finditer(text)] + [len(text)]
    for end in bounds:
        piece = text[start:end]
        lead = len(piece) - len(piece.lstrip())
        raw = piece.strip()
        if raw:
            s_line = first_line + text.count("\n", 0, start + lead)
            e_line = s_line + raw.count("\n")
            out.append(Unit(raw, clean_inline(raw.replace("\n", " ")), s_line, e_line, "sentence"))
        start = end
    return out
