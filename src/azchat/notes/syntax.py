"""Obsidian markdown to searchable plain text, line by line (so line numbers survive)."""
from __future__ import annotations

import re

_FENCE = re.compile(r"^\s*(`{3,}|~{3,})(.*)$")
_LANG = re.compile(r"[\w+-]*")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_EMBED = re.compile(r"!\[\[([^\]|#]+)(?:#[^\]|]*)?(?:\|[^\]]*)?\]\]")
_WIKILINK = re.compile(r"\[\[([^\]|]+)\|([^\]]+)\]\]|\[\[([^\]]+)\]\]")
_MD_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_MD_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_HTML_TAG = re.compile(r"</?[A-Za-z][^>]*>")
_CALLOUT = re.compile(r"^\s*(?:>\s*)+\[!(\w+)\][+-]?\s*(.*)$")
_QUOTE = re.compile(r"^\s*(?:>\s?)+")
_LIST = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(?:\[[ xX]\]\s+)?")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")
_EMPHASIS = re.compile(r"(\*\*|__|~~|==)")
_TAG = re.compile(r"(?<![\w&/#])#([^\W\d][\w/-]*)", re.UNICODE)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")

_MERMAID_KEYWORDS = re.compile(
    r"^\s*(stateDiagram(-v2)?|flowchart|graph|sequenceDiagram|classDiagram|erDiagram|gantt|pie|mindmap|"
    r"timeline|journey|direction|classDef|class|style|linkStyle|click|end|subgraph|note|participant|"
    r"actor|title|section|dateFormat|axisFormat)\b", re.IGNORECASE)
_MERMAID_LABEL = re.compile(r"\[\[?\(?\"?([^\]\)\"]+)\"?\)?\]?\]|\(\(?\"?([^\)\"]+)\"?\)?\)|\{\"?([^}\"]+)\"?\}|\|\"?([^|\"]+)\"?\|")
_IDENT = re.compile(r"[A-Za-z_][\w]*")


def split_camel(word: str) -> str:
    return _CAMEL.sub(" ", word)


def clean_inline(text: str) -> str:
    text = _EMBED.sub(lambda m: m.group(1), text)
    text = _WIKILINK.sub(lambda m: m.group(2) or m.group(3).replace("#", " "), text)
    text = _MD_IMAGE.sub(lambda m: m.group(1), text)
    text = _MD_LINK.sub(lambda m: m.group(1), text)
    text = _HTML_TAG.sub(" ", text)
    text = _EMPHASIS.sub("", text)
    text = text.replace("`", "")
    text = _TAG.sub(lambda m: m.group(1).replace("/", " "), text)
    return re.sub(r"\s+", " ", text).strip()


def mermaid_text(line: str) -> str:
    """Keep what a mermaid line says: node and state labels, edge labels, names split at capitals."""
    stripped = line.strip().replace("[*]", " ")
    if not stripped or stripped.startswith("%%"):
        return ""
    m = re.match(r"^state\s+\"?([^\":{]+?)\"?\s*(?::\s*(.*)|\{|as\s+(\w+))?\s*$", stripped)
    if m:
        name, label, alias = m.group(1), m.group(2), m.group(3)
        words = name.strip() if alias else split_camel(name.strip())
        return f"{words}: {label.strip()}" if label else words
    if _MERMAID_KEYWORDS.match(stripped):
        rest = _MERMAID_KEYWORDS.sub("", stripped, count=1).strip()
        return clean_inline(rest.strip('"')) if rest and not rest.startswith(("TD", "LR", "TB", "RL", "BT")) else ""
    parts: list[str] = []
    for groups in _MERMAID_LABEL.findall(stripped):
        parts.extend(g.strip() for g in groups if g.strip())
    remainder = _MERMAID_LABEL.sub(" ", stripped)
    edge_label = ""
    if " : " in remainder or re.search(r"\s:\s*\S", remainder):
        remainder, edge_label = remainder.split(":", 1)
    idents = [split_camel(w) for w in _IDENT.findall(remainder) if w not in ("o", "x")]
    if not parts:
        parts = idents
    elif idents and len(parts) < len(idents):
        parts = idents + parts
    if edge_label.strip():
        parts.append(edge_label.strip())
    return clean_inline(" ".join(parts))


def fence_of(line: str) -> tuple[str, str] | None:
    """(marker, info) when the line is a code fence: a run of 3+ backticks or tildes, then the info string."""
    m = _FENCE.match(line)
    return (m.group(1), m.group(2).strip()) if m else None


class Fences:
    """The one reading of fenced code blocks, shared by the note reader, the chunker, the answer composer and
    the section reader, so they agree on which lines are code.

    CommonMark's rules (any indent allowed, as notes nest code in list items): a block opens with 3+ backticks
    or tildes (a backtick fence's info string holds no backtick: ```` ```cmd``` ```` is inline code); it closes
    only at a bare fence of the same character at least as long, so ```` ```python ```` inside a ```` ``` ````
    block is code; a block never closed runs to the end of the note."""

    def __init__(self):
        self.marker: str | None = None     # the open block's fence (e.g. "```", "~~~~"), None outside code
        self.lang = ""                     # its language word, lower case ("mermaid", "python", "")

    @property
    def in_code(self) -> bool:
        return self.marker is not None

    def open(self, marker: str = "```", lang: str = "") -> None:
        """Start inside a block (a text cut out of the middle of one)."""
        self.marker, self.lang = marker, lang

    def feed(self, line: str) -> bool:
        """Read the next line; True when it belongs to a code block (its opening and closing fences included)."""
        fence = fence_of(line)
        if self.marker is None:
            if fence is None or (fence[0][0] == "`" and "`" in fence[1]):
                return False
            self.open(fence[0], _LANG.match(fence[1]).group(0).lower())
            return True
        if fence is not None and fence[0][0] == self.marker[0] and len(fence[0]) >= len(self.marker) \
                and not fence[1]:
            self.marker, self.lang = None, ""
        return True


def blocks_open_at(lines: dict[int, str]) -> dict[int, tuple[str, str]]:
    """For the known lines of a note (line number -> text, gaps allowed where no code can be: the index's chunks
    cover every body line that says something), the code block open when each line starts, as (fence, language);
    lines outside code are left out."""
    fences = Fences()
    out: dict[int, tuple[str, str]] = {}
    for number in sorted(lines):
        if fences.marker is not None:
            out[number] = (fences.marker, fences.lang)
        fences.feed(lines[number])
    return out


def starts_inside_code(lines: list[str]) -> str | None:
    """For a text cut out of a note with nothing known above it (a chunk alone): the fence that closes the block
    it began in (the first fence, bare, and odd in number), else None."""
    fences = [f for f in map(fence_of, lines) if f]
    return fences[0][0] if fences and not fences[0][1] and len(fences) % 2 == 1 else None


def indent_width(line: str) -> int:
    """Leading whitespace of a line, tabs as 4 columns."""
    return len(line.expandtabs(4)) - len(line.expandtabs(4).lstrip())


def indented_code_at(lines: dict[int, str], number: int) -> bool:
    """Whether line `number` of a note lies in an indented code block (CommonMark: 4+ spaces, after a blank line,
    not a list item's content), judged from the known lines above it; a line not known counts as blank (the
    index's chunks leave out only blank lines and the headings of empty sections)."""
    def text(n: int) -> str:
        return lines.get(n, "")

    first = text(number)
    if not first.strip() or indent_width(first) < 4 or _LIST.match(first):
        return False
    n = number - 1
    while n >= 1 and text(n).strip() and indent_width(text(n)) >= 4 and not _LIST.match(text(n)):
        n -= 1   # the indented run the line belongs to
    if n >= 1 and text(n).strip():
        return False   # the run follows a paragraph or list line directly: a continuation, not code
    while n >= 1 and not text(n).strip():
        n -= 1
    return n < 1 or not _LIST.match(text(n))   # after a list item, indented text continues the item


def code_lines(lines) -> list[bool]:
    """For each line, whether it is part of a fenced code block (fences included)."""
    fences = Fences()
    return [fences.feed(line) for line in lines]


class LineCleaner:
    """Stateful: walk a note's lines in order; each gives its searchable text ("" for none)."""

    def __init__(self):
        self.fences = Fences()

    @property
    def in_code(self) -> bool:
        return self.fences.in_code

    @property
    def fence_lang(self) -> str:
        return self.fences.lang

    def clean(self, line: str) -> str:
        was_code = self.fences.in_code
        if self.fences.feed(line):
            if not (was_code and self.fences.in_code):
                return ""                      # an opening or closing fence
            if self.fences.lang == "mermaid":
                return mermaid_text(line)
            return line.strip()
        if _TABLE_RULE.match(line) and "-" in line:
            return ""
        h = _HEADING.match(line)
        if h:
            return clean_inline(h.group(2))
        c = _CALLOUT.match(line)
        if c:
            kind, title = c.group(1).capitalize(), clean_inline(c.group(2))
            return f"{kind}: {title}" if title else f"{kind}:"
        line = _QUOTE.sub("", line)
        line = _LIST.sub("", line)
        if line.lstrip().startswith("|"):
            line = " ; ".join(cell.strip() for cell in line.strip().strip("|").split("|"))
        return clean_inline(line)


def heading_of(line: str) -> tuple[int, str] | None:
    """(level, text) when the line is an ATX heading (callers skip fenced code: see Fences)."""
    h = _HEADING.match(line)
    if not h:
        return None
    return len(h.group(1)), clean_inline(h.group(2))
