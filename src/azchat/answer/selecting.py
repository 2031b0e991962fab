"""Selecting what to quote: runs of list items and table rows, code with the lines that explain it, a section
cut in two read whole, repeats left out."""
from __future__ import annotations

import re
from dataclasses import replace

from ..notes.referring import opens_referring_back
from ..index.analysis import tokenize
from ..notes.syntax import fence_of, indent_width
from ..types import Chunk, Hit
from .scoring import near_matches
from .segmenting import Unit

def blocks(units: list[Unit], max_units: int = 12, chunk: Chunk | None = None) -> list[tuple[int, int]]:
    """(first, last) unit indexes of each short run of list items or table rows on consecutive lines, or of
    list items one blank line apart (a loose list)."""
    lines = chunk.text.split("\n") if chunk is not None else []

    def blank(line_no: int) -> bool:
        at = line_no - chunk.start_line if chunk is not None else -1
        return 0 <= at < len(lines) and not lines[at].strip()

    out, i = [], 0
    while i < len(units):
        if units[i].kind in ("item", "row"):
            j = i
            while j + 1 < len(units) and units[j + 1].kind == units[i].kind \
                    and units[j + 1].start_line == units[j].end_line + 1:
                j += 1
            if j == i and units[i].kind == "item":
                # a loose list: single items, each one blank line below the last (not tight groups
                # separated by blank lines: those are separate lists)
                while j + 1 < len(units) and units[j + 1].kind == "item" \
                        and units[j + 1].start_line == units[j].end_line + 2 and blank(units[j].end_line + 1) \
                        and not (j + 2 < len(units) and units[j + 2].kind == "item"
                                 and units[j + 2].start_line == units[j + 1].end_line + 1):
                    j += 1
            if 1 <= j - i + 1 <= max_units and j > i:
                out.append((i, j))
            i = j + 1
        else:
            i += 1
    return out


def span_unit(units: list[Unit], first: int, last: int, chunk: Chunk, snippet: bool = False) -> Unit:
    """One unit for units[first..last]; its text is the exact span of lines (fences and blanks included).
    Its kind: "snippet" (code with the lines that explain it, a line with its sub-items), else list or table."""
    part = units[first:last + 1]
    kind = "snippet" if snippet else ("list" if part[-1].kind == "item" else "table")
    lines = chunk.text.split("\n")[part[0].start_line - chunk.start_line:part[-1].end_line - chunk.start_line + 1]
    return Unit("\n".join(lines).strip(), "\n".join(u.display for u in part), part[0].start_line,
                part[-1].end_line, kind)


def introduces(unit: Unit) -> bool:
    """The unit ends in ':' ("Resume a job:", "Verify installation:"): what follows it is what it is about."""
    return unit.display.rstrip().endswith(":")


def _is_code(unit: Unit) -> bool:
    """A code line, or a paragraph that is one inline-code span (`find * -size -100M ...`)."""
    t = unit.text.strip()
    return unit.kind == "code" or unit.kind == "sentence" and len(t) > 2 and t[0] == "`" and t[-1] == "`" \
        and "\n" not in t


_COMPARE_Q = re.compile(r"\b(differ\w*|compar\w*|vs\.?|versus|unterschied\w*|unterscheide\w*|vergleich\w*)\b",
                        re.IGNORECASE)


def _compares(header: tuple[str, ...], question: str) -> bool:
    """A comparison question over a table whose columns are the things it compares (| Feature | Zed | Cursor |
    for 'what sets Zed apart from Cursor'): two columns after the first each hold a question word that no
    other column holds."""
    if len(header) < 3 or not _COMPARE_Q.search(question):
        return False
    q_tokens = set(tokenize(question))
    cols = [set(tokenize(h)) for h in header[1:]]
    named = [q_tokens & (c | near_matches(q_tokens, c)) for c in cols]
    own = [n - set().union(*(m for j, m in enumerate(named) if j != i)) for i, n in enumerate(named)]
    return sum(1 for o in own if o) >= 2


_CLOSER = re.compile(r"^\s*[)\]}]+[,;]?\s*$")


def _nested_code(units: list[Unit], i: int, lines: list[str], chunk: Chunk, most: int = 6
                 ) -> tuple[int, int] | None:
    """(first, last) unit of the small nested group a one-line code unit belongs to: its parent (the nearest
    less-indented code line right above, or the unit itself when deeper lines follow it), the parent's deeper
    lines right below it, and a bare closing bracket at the parent's indent. None when there is no such group
    of 2-`most` lines."""
    def code_at(j: int) -> bool:
        return 0 <= j < len(units) and units[j].kind == "code" and units[j].start_line == units[j].end_line

    def indent(j: int) -> int:
        return indent_width(lines[units[j].start_line - chunk.start_line])

    def next_to(j: int, k: int) -> bool:   # units j < k on consecutive lines
        return units[k].start_line == units[j].end_line + 1

    parent = i
    while code_at(parent - 1) and next_to(parent - 1, parent) and i - parent < most - 1 \
            and indent(parent) >= indent(i):
        parent -= 1
    if indent(parent) >= indent(i):   # no less-indented line above: the unit is the parent if deeper lines follow
        parent = i
    last = parent
    while code_at(last + 1) and next_to(last, last + 1) and last + 1 - parent < most \
            and indent(last + 1) > indent(parent):
        last += 1
    if last == parent:
        return None
    if code_at(last + 1) and next_to(last, last + 1) and last + 1 - parent < most \
            and indent(last + 1) == indent(parent) and _CLOSER.match(units[last + 1].text):
        last += 1
    return parent, last


def _blank_between(lines: list[str], chunk: Chunk, end_line: int, start_line: int) -> bool:
    """Only a few blank lines lie between two units (whitespace-only lines around an indented code block)."""
    between = lines[end_line - chunk.start_line + 1:start_line - chunk.start_line]
    return len(between) <= 4 and all(not ln.strip() for ln in between)


def with_blocks(units: list[Unit], scores: list[float], chunk: Chunk, question: str = "") \
        -> list[tuple[Unit, float]]:
    """Units with their scores, plus whole lists/tables as one unit where the list is the answer: its intro
    sentence (ending in ':') matches the question, several of its items do, or the table compares things the
    question names."""
    out = list(zip(units, scores))
    lines = chunk.text.split("\n")
    for i, unit in enumerate(units):
        if scores[i] <= 0:
            continue
        comment = unit.kind == "code" and unit.text.lstrip().startswith("#")
        code_above = i > 0 and units[i - 1].kind == "code" and units[i - 1].end_line == unit.start_line - 1
        # "Resume a job:", a "# comment" line or a sentence right above a command: the code below it answers
        if introduces(unit) or comment or unit.kind == "sentence":
            gap = 3 if not unit.kind == "sentence" or introduces(unit) else 2
            j = i
            while j + 1 < len(units) and j - i < 3 and _is_code(units[j + 1]) \
                    and (units[j + 1].start_line <= units[j].end_line + gap
                         or _blank_between(lines, chunk, units[j].end_line, units[j + 1].start_line)):
                j += 1
            if j > i:
                # a comment inside a block also reads with the command right above it ("$EDITOR ~/.zprofile")
                first = i - 1 if comment and code_above else i
                out.append((span_unit(units, first, j, chunk, snippet=True), scores[i] + 0.02))
            elif comment and code_above:   # `cmd` then `# what it does`
                out.append((span_unit(units, i - 1, i, chunk, snippet=True), scores[i] + 0.02))
        # "This command takes the clipboard ...": a sentence that refers back to the short code block above it
        if unit.kind == "sentence" and opens_referring_back(unit.display) and i > 0 and _is_code(units[i - 1]) \
                and units[i - 1].end_line >= unit.start_line - 3:
            first = i - 1
            while first > 0 and i - first < 3 and _is_code(units[first - 1]) \
                    and units[first - 1].end_line == units[first].start_line - 1:
                first -= 1
            if first == 0 or not (_is_code(units[first - 1])
                                  and units[first - 1].end_line == units[first].start_line - 1):
                out.append((span_unit(units, first, i, chunk, snippet=True), scores[i] + 0.02))
        # a line of nested code (YAML, a PowerShell hashtable) reads with its parent line and siblings:
        # "- name: Build" / "  run: hugo --minify", "$subnet = @{" / "Name = '...'" / "AddressPrefix = '...'" / "}"
        if unit.kind == "code":
            group = _nested_code(units, i, lines, chunk)
            if group is not None:
                merged = span_unit(units, group[0], group[1], chunk, snippet=True)
                # shown with its nesting: the lines' indents relative to the first one
                span = lines[merged.start_line - chunk.start_line:merged.end_line - chunk.start_line + 1]
                shown = [ln for ln in span if ln.strip()]
                cut = min(indent_width(ln) for ln in shown)
                merged = replace(merged, display="\n".join(ln.expandtabs(4)[cut:].rstrip() for ln in shown))
                out.append((merged, scores[i] + 0.02))
        # indented sub-items right below a line belong to it: "terraform fmt" / "  - formats code in canonical ..."
        if unit.kind in ("sentence", "item"):
            j = i
            while j + 1 < len(units) and j - i < 4 and units[j + 1].kind == "item" \
                    and units[j + 1].start_line == units[j].end_line + 1 \
                    and indent_width(lines[units[j + 1].start_line - chunk.start_line]) > \
                    indent_width(lines[unit.start_line - chunk.start_line]):
                j += 1
            if j > i:
                out.append((span_unit(units, i, j, chunk, snippet=True), scores[i] + 0.02))
    for first, last in blocks(units, chunk=chunk):
        inner = scores[first:last + 1]
        intro = first - 1 if first > 0 and introduces(units[first - 1]) \
            and units[first - 1].end_line >= units[first].start_line - 2 else None
        intro_score = scores[intro] if intro is not None else 0.0
        matched = sum(1 for x in inner if x > 0)
        # a table's rows all repeat the header words, so only an intro sentence makes the whole table the answer
        if intro_score >= max(inner) or (matched >= 2 and units[first].kind == "item") \
                or units[first].kind == "row" and _compares(units[first].header, question):
            whole = span_unit(units, first if intro is None else intro, last, chunk)
            out.append((whole, max(intro_score, max(inner)) + 0.05))
    return out


def _overlaps(a, b, hits: list[Hit]) -> bool:
    """Two candidates quote overlapping lines of the same note (the same hit, or two chunks of one note that
    share their overlap lines)."""
    return hits[a[1]].path == hits[b[1]].path \
        and a[3].start_line <= b[3].end_line and b[3].start_line <= a[3].end_line


def repeats(c, chosen: list, hits: list[Hit]) -> bool:
    """The candidate quotes what is already chosen: overlapping lines of the same note (an item inside a
    chosen list), or words already quoted from another note (a copied section)."""
    return any(_overlaps(o, c, hits) or c[3].display in o[3].display for o in chosen)


def one_block(units: list[Unit], chunk: Chunk) -> bool:
    """The chunk's text is one short code block (up to 6 lines)."""
    return bool(units) and all(u.kind in ("code", "diagram") for u in units) and len(units) <= 6


def widened(chunk: Chunk, chunks: list[Chunk]) -> Chunk:
    """The chunk joined with the other pieces of its section among the hits (the same note and heading, lines
    that overlap or adjoin): a long section split in two reads as one, so a list cut by the split is whole."""
    lines = chunk.text.split("\n")
    if any(fence_of(x) for x in lines):
        return chunk   # (pieces of a code block are read as they were cut: a fence decides what is code)
    start, end = chunk.start_line, chunk.start_line + len(lines) - 1
    own = (start, end)
    grown = True
    while grown:
        grown = False
        for other in chunks:
            if other is chunk or other.path != chunk.path or other.heading != chunk.heading \
                    or any(fence_of(x) for x in other.text.split("\n")):
                continue
            o_lines = other.text.split("\n")
            o_start, o_end = other.start_line, other.start_line + len(o_lines) - 1
            if o_start <= end + 1 and o_end > end and o_start >= start:
                lines = lines + o_lines[end - o_start + 1:]
                end = o_end
                grown = True
            elif o_end >= start - 1 and o_start < start and o_end <= end:
                lines = o_lines[:start - o_start] + lines
                start = o_start
                grown = True
    if (start, end) == own:
        return chunk
    return replace(chunk, start_line=start, end_line=end, text="\n".join(lines))


def joined(chosen: list, read: dict[int, Chunk]) -> list:
    """Chosen quotes in note order, where an intro ("Start your site on the French locale:") and the quote right
    below it (its command, its list) were both chosen: one quote of both, so they read together."""
    out: list = []
    for c in chosen:
        if out:
            prev = out[-1]
            first, second = prev[3], c[3]
            if prev[1] == c[1] and introduces(first) and second.start_line > first.end_line:
                chunk = read[c[1]]
                lines = chunk.text.split("\n")
                between = lines[first.end_line - chunk.start_line + 1:second.start_line - chunk.start_line]
                if len(between) <= 3 and all(not ln.strip() or fence_of(ln) for ln in between):
                    span = lines[first.start_line - chunk.start_line:second.end_line - chunk.start_line + 1]
                    both = Unit("\n".join(span).strip(), first.display + "\n" + second.display, first.start_line,
                                second.end_line, "snippet")
                    out[-1] = (max(prev[0], c[0]), prev[1], prev[2], both)
                    continue
        out.append(c)
    return out


def frontmatter_only(chunk: Chunk) -> bool:
    """The chunk of a note that has nothing but its frontmatter block (chunking's title-only chunk)."""
    lines = chunk.text.split("\n")
    return (chunk.start_line == 1 and not chunk.heading and len(lines) >= 2 and lines[0].strip() == "---"
            and lines[-1].strip() in ("---", "..."))
