"""Obsidian markdown to searchable plain text, line by line (so line numbers survive)."""
from __future__ import annotations

import re

_FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*([\w+-]*)")
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


class LineCleaner:
    """Stateful: walk a note's lines in order; each gives its searchable text ("" for none)."""

    def __init__(self):
        self.fence: str | None = None
        self.fence_lang = ""

    @property
    def in_code(self) -> bool:
        return self.fence is not None

    def clean(self, line: str) -> str:
        m = _FENCE.match(line)
        if m and (self.fence is None or m.group(1)[0] == self.fence[0]):
            if self.fence is None:
                self.fence, self.fence_lang = m.group(1), m.group(2).lower()
            elif not line.strip()[len(m.group(1)):].strip():
                self.fence, self.fence_lang = None, ""
            return ""
        if self.fence is not None:
            if self.fence_lang == "mermaid":
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
    """(level, text) when the line is an ATX heading (callers skip fenced code)."""
    h = _HEADING.match(line)
    if not h:
        return None
    return len(h.group(1)), clean_inline(h.group(2))
