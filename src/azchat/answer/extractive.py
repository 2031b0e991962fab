"""The extractive answer: pick the sentences of the best hits that answer the question, cite each one."""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

from ..index.lexical import tokenize
from ..notes.referring import opens_referring_back
from ..notes.syntax import LineCleaner, clean_inline, fence_of, heading_of, indent_width
from ..types import Answer, Chunk, Citation, Hit

NOT_FOUND = "I could not find anything about this in your notes."
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


def _starts_inside_code(lines: list[str]) -> str | None:
    """The fence that closes the block the chunk began in (the first fence, bare, and odd in number), else None."""
    fences = [f for f in map(fence_of, lines) if f]
    return fences[0][0] if fences and not fences[0][1] and len(fences) % 2 == 1 else None


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
        marker = _starts_inside_code(lines)
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
    ctx = ctx | _near_matches(q_tokens - ctx, ctx_tokens)
    scores = []
    for unit in units:
        if _drawing(unit.display) or _only_embeds(unit):
            scores.append(0.0)   # a line of an ASCII-art box diagram, an embedded image: nothing to read
            continue
        u_tokens = set(tokenize(clean_inline(unit.text) if unit.kind == "row" else unit.display))
        if unit.kind == "diagram":   # "CycleCloud" as written, not only as the label reads ("Cycle Cloud")
            u_tokens |= set(tokenize(clean_inline(unit.text)))
        hit = q_tokens & u_tokens
        hit |= _near_matches(q_tokens - hit, u_tokens - hit)
        half = (ctx | set(tokenize(unit.display))) - hit   # a table row's header words count half, too
        cover = (sum(idf.get(t, 1.0) for t in hit) + 0.5 * sum(idf.get(t, 1.0) for t in half & q_tokens)) / total
        words = len(unit.display.split())
        brevity = 0.6 if words < 4 else 1.0
        bonus = 0.1 if numeric and any(ch.isdigit() for ch in unit.display) else 0.0
        direct = 1.0 if hit else 0.5        # matched only through its heading or table header: weaker
        if _is_reference(unit):
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


def _near_matches(q_tokens: set[str], u_tokens: set[str]) -> set[str]:
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


def _is_reference(unit: Unit) -> bool:
    """Mostly URLs or image file names, or nothing but embedded images."""
    refs = _URL.findall(unit.display)
    return bool(refs) and len(" ".join(refs)) >= 0.5 * len(unit.display.strip()) or _only_embeds(unit)


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


def _merge(units: list[Unit], first: int, last: int, chunk: Chunk, snippet: bool = False) -> Unit:
    """One unit for units[first..last]; its text is the exact span of lines (fences and blanks included).
    Its kind: "snippet" (code with the lines that explain it, a line with its sub-items), else list or table."""
    part = units[first:last + 1]
    kind = "snippet" if snippet else ("list" if part[-1].kind == "item" else "table")
    lines = chunk.text.split("\n")[part[0].start_line - chunk.start_line:part[-1].end_line - chunk.start_line + 1]
    return Unit("\n".join(lines).strip(), "\n".join(u.display for u in part), part[0].start_line,
                part[-1].end_line, kind)


def _introduces(unit: Unit) -> bool:
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
    named = [q_tokens & (c | _near_matches(q_tokens, c)) for c in cols]
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


def _with_blocks(units: list[Unit], scores: list[float], chunk: Chunk, question: str = "") \
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
        if _introduces(unit) or comment or unit.kind == "sentence":
            gap = 3 if not unit.kind == "sentence" or _introduces(unit) else 2
            j = i
            while j + 1 < len(units) and j - i < 3 and _is_code(units[j + 1]) \
                    and (units[j + 1].start_line <= units[j].end_line + gap
                         or _blank_between(lines, chunk, units[j].end_line, units[j + 1].start_line)):
                j += 1
            if j > i:
                # a comment inside a block also reads with the command right above it ("$EDITOR ~/.zprofile")
                first = i - 1 if comment and code_above else i
                out.append((_merge(units, first, j, chunk, snippet=True), scores[i] + 0.02))
            elif comment and code_above:   # `cmd` then `# what it does`
                out.append((_merge(units, i - 1, i, chunk, snippet=True), scores[i] + 0.02))
        # "This command takes the clipboard ...": a sentence that refers back to the short code block above it
        if unit.kind == "sentence" and opens_referring_back(unit.display) and i > 0 and _is_code(units[i - 1]) \
                and units[i - 1].end_line >= unit.start_line - 3:
            first = i - 1
            while first > 0 and i - first < 3 and _is_code(units[first - 1]) \
                    and units[first - 1].end_line == units[first].start_line - 1:
                first -= 1
            if first == 0 or not (_is_code(units[first - 1])
                                  and units[first - 1].end_line == units[first].start_line - 1):
                out.append((_merge(units, first, i, chunk, snippet=True), scores[i] + 0.02))
        # a line of nested code (YAML, a PowerShell hashtable) reads with its parent line and siblings:
        # "- name: Build" / "  run: hugo --minify", "$subnet = @{" / "Name = '...'" / "AddressPrefix = '...'" / "}"
        if unit.kind == "code":
            group = _nested_code(units, i, lines, chunk)
            if group is not None:
                merged = _merge(units, group[0], group[1], chunk, snippet=True)
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
                out.append((_merge(units, i, j, chunk, snippet=True), scores[i] + 0.02))
    for first, last in blocks(units, chunk=chunk):
        inner = scores[first:last + 1]
        intro = first - 1 if first > 0 and _introduces(units[first - 1]) \
            and units[first - 1].end_line >= units[first].start_line - 2 else None
        intro_score = scores[intro] if intro is not None else 0.0
        matched = sum(1 for x in inner if x > 0)
        # a table's rows all repeat the header words, so only an intro sentence makes the whole table the answer
        if intro_score >= max(inner) or (matched >= 2 and units[first].kind == "item") \
                or units[first].kind == "row" and _compares(units[first].header, question):
            whole = _merge(units, first if intro is None else intro, last, chunk)
            out.append((whole, max(intro_score, max(inner)) + 0.05))
    return out


def _overlaps(a, b, hits: list[Hit]) -> bool:
    """Two candidates quote overlapping lines of the same note (the same hit, or two chunks of one note that
    share their overlap lines)."""
    return hits[a[1]].path == hits[b[1]].path \
        and a[3].start_line <= b[3].end_line and b[3].start_line <= a[3].end_line


def _repeats(c, chosen: list, hits: list[Hit]) -> bool:
    """The candidate quotes what is already chosen: overlapping lines of the same note (an item inside a
    chosen list), or words already quoted from another note (a copied section)."""
    return any(_overlaps(o, c, hits) or c[3].display in o[3].display for o in chosen)


def _one_block(units: list[Unit], chunk: Chunk) -> bool:
    """The chunk's text is one short code block (up to 6 lines)."""
    return bool(units) and all(u.kind in ("code", "diagram") for u in units) and len(units) <= 6


def _widened(chunk: Chunk, chunks: list[Chunk]) -> Chunk:
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


def _joined(chosen: list, read: dict[int, Chunk]) -> list:
    """Chosen quotes in note order, where an intro ("Start your site on the French locale:") and the quote right
    below it (its command, its list) were both chosen: one quote of both, so they read together."""
    out: list = []
    for c in chosen:
        if out:
            prev = out[-1]
            first, second = prev[3], c[3]
            if prev[1] == c[1] and _introduces(first) and second.start_line > first.end_line:
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


def _frontmatter_only(chunk: Chunk) -> bool:
    """The chunk of a note that has nothing but its frontmatter block (chunking's title-only chunk)."""
    lines = chunk.text.split("\n")
    return (chunk.start_line == 1 and not chunk.heading and len(lines) >= 2 and lines[0].strip() == "---"
            and lines[-1].strip() in ("---", "..."))


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
    kept = [(h, c) for h, c in zip(hits, chunks) if not _frontmatter_only(c)]
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
        chunk = _widened(chunk, chunks)
        read[h_idx] = chunk
        prior = hit.score / top_score if top_score > 0 else 1.0
        units = segment(chunk, *opening(chunk)) if opening else segment(chunk)
        scored = _with_blocks(units, score_units(question, units, idf, f"{chunk.title} {chunk.heading}"), chunk,
                              question)
        if _one_block(units, chunk):
            # a section that is only a short code block: its own heading is the intro ("### Ordner kopieren")
            own = chunk.heading.rsplit(" > ", 1)[-1]
            intro = score_units(question, [Unit(own, own, 0, 0, "sentence")], idf, chunk.title)[0]
            if intro > 0:   # the whole block, not a piece of it, when a piece scores best
                best_piece = max(sc for _, sc in scored) if scored else 0.0
                scored.append((_merge(units, 0, len(units) - 1, chunk, snippet=True), max(intro, best_piece) + 0.02))
        for unit, s in scored:
            if unit.kind == "diagram" and len(unit.display.split()) < 2:
                continue   # a bare edge label ("uses") says nothing alone
            if unit.kind in ("sentence", "item") and _introduces(unit) \
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
        if not _repeats(c, chosen, hits):
            chosen.append(c)
    if chosen and all(c[1] != 0 for c in chosen):
        # the best-ranked hit (by meaning and words) always has its say: its best unit takes the last slot
        # (hit 1's prior is 1, so a unit that shares a word with the question scores above the 0.01 floor)
        own = [c for c in candidates if c[1] == 0 and c[0] > 0.01 + 1e-9 and not _is_reference(c[3])
               and not _repeats(c, chosen, hits)]
        if own:
            if len(chosen) >= max_sentences:
                chosen.pop()
            chosen.append(own[0])
    # read in note order: by hit, then position in the chunk
    chosen.sort(key=lambda c: (c[1], c[2]))
    chosen = _joined(chosen, read)
    citations: list[Citation] = []
    bullets: list[str] = []
    for n, (_, h_idx, _, unit) in enumerate(chosen, start=1):
        hit = hits[h_idx]
        citations.append(Citation(n, hit.path, hit.title, hit.heading, unit.start_line, unit.end_line,
                                  unit.text))
        if unit.kind == "code":
            shown = f"`{unit.display}`"
        elif unit.kind in ("list", "table", "snippet"):
            shown = "\n  ".join(unit.display.split("\n"))
        else:
            shown = unit.display
        bullets.append(f"- {shown} [{n}]")
    sources = [f"[{c.n}] {c.title}" + (f" › {c.heading}" if c.heading and c.heading != c.title else "")
               + f" — {c.location}" for c in citations]
    text = "From your notes:\n\n" + "\n".join(bullets) + "\n\nSources:\n" + "\n".join(sources)
    return Answer(question, text, True, citations, all_hits)
