"""A piece of a note's markdown as safe HTML for the sources panel, with the quoted lines marked.

Markdown is parsed with markdown-it (CommonMark + tables + strikethrough) with raw HTML turned off, so a
`<script>` or `<img onerror=...>` in a note is parsed as text; Obsidian syntax is shown as what it means
(a wikilink as its text, a callout as its kind); code is highlighted with Pygments; a mermaid block is shown
as its labelled source. Images are never loaded (a note could point at a tracking pixel): they show as their
alt text. Links open in a new tab only for http(s) and mailto. The result then goes through nh3 (a maintained
HTML sanitizer) with a short allowlist, and `$`, `{`, `}` become entities so no template syntax survives.

Lines: `first_line` is the 1-based file line of the text's first line; `quoted` holds the file lines that an
answer cites. Blocks on those lines get class `azchat-quoted`, code lines Pygments' `hll` highlight, and the
cited sentences themselves `<mark class="azchat-match">`.
"""
from __future__ import annotations

import html
import re
from functools import lru_cache

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token

_WIKILINK = re.compile(r"(!?)\[\[([^\[\]|#]*)(?:#([^\[\]|]*))?(?:\|([^\[\]]*))?\]\]")
_CALLOUT = re.compile(r"^\[!(\w+)\][+-]?\s*")
_SAFE_LINK = re.compile(r"^(https?:|mailto:)", re.IGNORECASE)
_FRONTMATTER_END = ("---", "...")

TAGS = {"a", "b", "blockquote", "br", "code", "del", "div", "em", "figcaption", "figure", "h1", "h2", "h3",
        "h4", "h5", "h6", "hr", "i", "li", "mark", "ol", "p", "pre", "s", "span", "strong", "table", "tbody",
        "td", "th", "thead", "tr", "ul"}
ATTRIBUTES = {"*": {"class"}, "a": {"href", "title", "target"}, "span": {"title"}, "th": {"style"},
              "td": {"style"}, "ol": {"start"}}


@lru_cache(maxsize=1)
def _cleaner() -> nh3.Cleaner:
    return nh3.Cleaner(tags=TAGS, attributes=ATTRIBUTES, url_schemes={"http", "https", "mailto"},
                       filter_style_properties={"text-align"}, link_rel="noopener noreferrer",
                       clean_content_tags={"script", "style"})


def sanitize(markup: str) -> str:
    """nh3 with the panel's allowlist, then no template syntax (`$`, `{`, `}` as entities)."""
    clean = _cleaner().clean(markup)
    return clean.replace("$", "&#36;").replace("{", "&#123;").replace("}", "&#125;")


# -- parsing -----------------------------------------------------------------------------------
def _obsidian(state) -> None:
    """Core rule: wikilinks and embeds become `wikilink` tokens holding their text; a callout's `[!kind]`
    becomes a `callout` token (and its blockquote gets a class)."""
    tokens = state.tokens
    for idx, tok in enumerate(tokens):
        if tok.type != "inline" or not tok.children:
            continue
        in_quote = idx >= 2 and tokens[idx - 1].type == "paragraph_open" and tokens[idx - 2].type == "blockquote_open"
        children: list[Token] = []
        for pos, child in enumerate(tok.children):
            if child.type != "text":
                children.append(child)
                continue
            content = child.content
            if in_quote and pos == 0 and _CALLOUT.match(content):
                kind = _CALLOUT.match(content).group(1).capitalize()
                tokens[idx - 2].attrJoin("class", f"azchat-callout azchat-callout-{kind.lower()}")
                call = Token("callout", "", 0)
                call.content = kind
                children.append(call)
                content = content[_CALLOUT.match(content).end():]
            last = 0
            for m in _WIKILINK.finditer(content):
                if m.start() > last:
                    children.append(_text(content[last:m.start()]))
                embed, target, heading, alias = m.groups()
                shown = (alias or "").strip() or " › ".join(p.strip() for p in (target, heading) if p and p.strip())
                link = Token("wikilink", "", 0)
                link.content = shown or m.group(0)
                link.meta = {"embed": bool(embed), "target": (target or "").strip()}
                children.append(link)
                last = m.end()
            if last < len(content):
                children.append(_text(content[last:]))
        tok.children = children


def _text(content: str) -> Token:
    t = Token("text", "", 0)
    t.content = content
    return t


@lru_cache(maxsize=1)
def _md() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.core.ruler.push("azchat_obsidian", _obsidian)
    r = md.add_render_rule
    r("text", lambda self, tokens, i, options, env: _marked(tokens[i]))
    r("wikilink", _render_wikilink)
    r("callout", lambda self, tokens, i, options, env:
      f'<b class="azchat-callout-kind">{html.escape(tokens[i].content)}</b> ')
    r("code_inline", lambda self, tokens, i, options, env: f"<code>{_marked(tokens[i])}</code>")
    r("image", lambda self, tokens, i, options, env:
      f'<span class="azchat-image" title="an image, not loaded">[image: {html.escape(tokens[i].content)}]</span>')
    r("link_open", _render_link_open)
    r("link_close", lambda self, tokens, i, options, env: "</a>" if tokens[i].meta.get("external") else "</span>")
    r("fence", _render_fence)
    r("code_block", _render_fence)
    return md


def _marked(tok: Token) -> str:
    """Escaped token text with the cited ranges (token.meta["marks"]) wrapped in <mark>."""
    text, out, pos = tok.content, [], 0
    for s, e in tok.meta.get("marks", []) if tok.meta else []:
        out.append(html.escape(text[pos:s]))
        out.append('<mark class="azchat-match">' + html.escape(text[s:e]) + "</mark>")
        pos = e
    out.append(html.escape(text[pos:]))
    return "".join(out)


def _render_wikilink(self, tokens, i, options, env) -> str:
    tok = tokens[i]
    kind = "azchat-embed" if tok.meta.get("embed") else "azchat-wikilink"
    title = ("embeds " if tok.meta.get("embed") else "links to ") + tok.meta.get("target", "")
    return f'<span class="{kind}" title="{html.escape(title)}">{_marked(tok)}</span>'


def _render_link_open(self, tokens, i, options, env) -> str:
    tok = tokens[i]
    href = tok.attrGet("href") or ""
    external = bool(_SAFE_LINK.match(href))
    # the matching link_close renders </a> or </span> to match
    depth = 0
    for close in tokens[i + 1:]:
        if close.type == "link_open":
            depth += 1
        elif close.type == "link_close":
            if depth == 0:
                close.meta = {**(close.meta or {}), "external": external}
                break
            depth -= 1
    if external:
        return f'<a href="{html.escape(href)}" target="_blank" title="{html.escape(href)}">'
    return f'<span class="azchat-link" title="{html.escape(href)}">'


def _render_fence(self, tokens, i, options, env) -> str:
    tok = tokens[i]
    lang = (tok.info or "").strip().split(" ")[0].lower() if tok.type == "fence" else ""
    code = tok.content
    hl = tok.meta.get("hl_lines", []) if tok.meta else []
    if lang == "mermaid":
        return ('<figure class="azchat-mermaid"><figcaption>Mermaid diagram (source)</figcaption>'
                f"<pre><code>{html.escape(code)}</code></pre></figure>")
    return highlight_code(code, lang, hl)


def highlight_code(code: str, lang: str, hl_lines: list[int]) -> str:
    """Pygments HTML for a code block (classes, no inline styles); `hl_lines` are 1-based code lines."""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import TextLexer, get_lexer_by_name
    from pygments.util import ClassNotFound

    try:
        lexer = get_lexer_by_name(lang) if lang else TextLexer()
    except ClassNotFound:
        lexer = TextLexer()
    label = f'<span class="azchat-code-lang">{html.escape(lang)}</span>' if lang else ""
    body = highlight(code, lexer, HtmlFormatter(cssclass="azchat-code-body", hl_lines=hl_lines, wrapcode=True))
    return f'<div class="azchat-code">{label}{body}</div>'


def code_css(light: str = "friendly", dark: str = "github-dark") -> str:
    """Pygments token colours for light mode and for Gradio's `.dark` mode."""
    from pygments.formatters import HtmlFormatter

    def rules(style: str, scope: str) -> str:
        css = HtmlFormatter(style=style).get_style_defs(scope)
        return "\n".join(line for line in css.splitlines()
                         if not line.startswith(("pre {", "td.linenos", "span.linenos", "  pre")))

    return rules(light, ".azchat-code-body") + "\n" + rules(dark, ".dark .azchat-code-body")


# -- quoting -----------------------------------------------------------------------------------
def plain_text(markdown: str) -> str:
    """What a markdown snippet shows as text, whitespace collapsed (how a quoted sentence is found)."""
    parts = []
    for tok in _md().parse(markdown):
        if tok.type == "inline":
            parts.append(_inline_text(tok.children or [])[0])
        elif tok.type in ("fence", "code_block"):
            parts.append(tok.content)
    return " ".join(" ".join(parts).split())


def _inline_text(children: list[Token]) -> tuple[str, list[tuple[int, int, Token]]]:
    """The inline text and each text-like child's (start, end) in it."""
    text, where = "", []
    for child in children:
        if child.type in ("text", "code_inline", "wikilink"):
            where.append((len(text), len(text) + len(child.content), child))
            text += child.content
        elif child.type in ("softbreak", "hardbreak"):
            text += " "
    return text, where


def _mark_needles(children: list[Token], needles: list[str]) -> set[str]:
    """Put each needle's character ranges into the children's meta["marks"]. Returns the needles found."""
    text, where = _inline_text(children)
    found = set()
    for needle in needles:
        words = needle.split()
        if not words:
            continue
        for m in re.finditer(r"\s+".join(re.escape(w) for w in words), text):
            found.add(needle)
            for s, e, child in where:
                lo, hi = max(m.start(), s), min(m.end(), e)
                if lo < hi:
                    child.meta = child.meta or {}
                    child.meta.setdefault("marks", []).append((lo - s, hi - s))
    for _, _, child in where:
        if child.meta and child.meta.get("marks"):
            child.meta["marks"] = _union_spans(child.meta["marks"])
    return found


def _union_spans(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(e, out[-1][1]))
        else:
            out.append((s, e))
    return out


def _block_for(tokens: list[Token], idx: int) -> Token | None:
    """The visible block that shows inline token idx: a paragraph, heading, list item or table row."""
    j = idx - 1
    while j >= 0 and (tokens[j].hidden or tokens[j].type in ("th_open", "td_open")):
        if tokens[j].type in ("th_open", "td_open"):
            while j >= 0 and tokens[j].type != "tr_open":
                j -= 1
            return tokens[j] if j >= 0 else None
        j -= 1
    return tokens[j] if j >= 0 and tokens[j].nesting == 1 else None


def _frontmatter_as_code(lines: list[str], first_line: int) -> list[str]:
    """YAML frontmatter at the top of the file shows as a yaml block (same number of lines)."""
    if first_line != 1 or not lines or lines[0].strip() != "---":
        return lines
    for i in range(1, len(lines)):
        if lines[i].strip() in _FRONTMATTER_END:
            return ["```yaml", *lines[1:i], "```", *lines[i + 1:]]
    return lines


def render_markdown(text: str, first_line: int = 1, quoted: set[int] | frozenset = frozenset(),
                    needles: list[str] | None = None, open_fence: str | None = None) -> str:
    """Sanitized HTML for `text` (file lines first_line...). `quoted`: cited file lines; `needles`: the cited
    snippets as plain text (see plain_text); `open_fence`: the language of a code block the text starts
    inside (a long section split in its code), or None."""
    lines = _frontmatter_as_code(text.split("\n"), first_line)
    offset = first_line
    if open_fence is not None:
        lines = [f"```{open_fence}", *lines]
        offset -= 1
    tokens = _md().parse("\n".join(lines))
    rel = {q - offset for q in quoted}          # 0-based lines in the parsed text
    found: set[str] = set()
    for idx, tok in enumerate(tokens):
        if not tok.map or not rel:
            continue
        lo, hi = tok.map
        if tok.type in ("fence", "code_block"):
            body_start = lo + 1 if tok.type == "fence" else lo
            tok.meta = {**(tok.meta or {}), "hl_lines": sorted(q - body_start + 1 for q in rel if body_start <= q < hi)}
        elif tok.type == "inline" and any(lo <= q < hi for q in rel):
            block = _block_for(tokens, idx)
            if block is not None and "azchat-quoted" not in (block.attrGet("class") or ""):
                block.attrJoin("class", "azchat-quoted")
            if needles:
                found |= _mark_needles(tok.children or [], needles)
    missing = [n for n in needles or [] if n not in found]
    if missing:          # the note changed since it was indexed: mark the sentence wherever it is now
        for tok in tokens:
            if tok.type == "inline":
                _mark_needles(tok.children or [], missing)
    return sanitize(_md().renderer.render(tokens, _md().options, {}))
