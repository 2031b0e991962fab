"""Answers, sources and index status as safe markup for a browser. No UI framework here.

Every piece of note text is escaped before it is put into HTML or Markdown, so a note that contains
`<script>`, `<img onerror=...>` or `javascript:` links is shown as text and never runs. The only tags in the
output are the ones written here (div, span, b, code, pre, mark, details, summary).
"""
from __future__ import annotations

import html
import re
from typing import Callable

from .types import Answer, Citation, Hit

_MD_SPECIAL = re.compile(r"([\\`*_\[\]#|~])")   # after html.escape: no tags, links, emphasis, code


def esc(text: str) -> str:
    """Text -> HTML text. Also escapes `$`, `{` and `}`, so no template syntax survives either."""
    return (html.escape(str(text), quote=True)
            .replace("$", "&#36;").replace("{", "&#123;").replace("}", "&#125;"))


def md_text(text: str) -> str:
    """Text -> Markdown that renders as exactly that text (no HTML, links, emphasis or code)."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(str(text), quote=False))


def chat_markdown(answer: Answer) -> str:
    """The answer as Markdown that shows the notes' text literally: the cited sentences as a list with
    their [n] markers, then one compact line of sources (the sources panel has the details)."""
    out = []
    for line in answer.answer.split("\n"):
        if answer.citations and line.strip() == "Sources:":
            break
        out.append("- " + md_text(line[2:]) if line.startswith("- ") else md_text(line))
    if answer.citations:
        while out and not out[-1].strip():
            out.pop()
        out += ["", "Sources: " + " · ".join(md_text(f"[{c.n}] {c.location}") for c in answer.citations)]
    return "\n".join(out)


def _spans(text: str, snippets: list[str]) -> list[tuple[int, int]]:
    """Character ranges of the snippets in text (a snippet's lines are found one by one if needed)."""
    found: list[tuple[int, int]] = []
    for snippet in snippets:
        i = text.find(snippet) if snippet else -1
        if i >= 0:
            found.append((i, i + len(snippet)))
            continue
        pos = 0
        for part in (p.strip() for p in snippet.split("\n")):
            if not part:
                continue
            j = text.find(part, pos)
            if j >= 0:
                found.append((j, j + len(part)))
                pos = j + len(part)
    found.sort()
    merged: list[tuple[int, int]] = []
    for s, e in found:
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(e, merged[-1][1]))
        else:
            merged.append((s, e))
    return merged


def highlight(text: str, snippets: list[str]) -> str:
    """Escaped text with each snippet wrapped in <mark> (the marks are ours, the text is escaped)."""
    out, pos = [], 0
    for s, e in _spans(text, snippets):
        out.append(esc(text[pos:s]))
        out.append('<mark class="azchat-match">' + esc(text[s:e]) + "</mark>")
        pos = e
    out.append(esc(text[pos:]))
    return "".join(out)


def window(text: str, snippets: list[str], context: int = 2) -> tuple[str, bool, bool]:
    """The lines of text from `context` lines before the first snippet to `context` after the last.
    Returns (text, cut at the start, cut at the end); the whole text when no snippet is found."""
    spans = _spans(text, snippets)
    if not spans:
        return text, False, False
    lines = text.split("\n")
    first = text.count("\n", 0, spans[0][0])
    last = text.count("\n", 0, spans[-1][1])
    lo, hi = max(0, first - context), min(len(lines), last + context + 1)
    return "\n".join(lines[lo:hi]), lo > 0, hi < len(lines)


def group_citations(answer: Answer) -> list[tuple[Hit | None, list[Citation]]]:
    """Citations grouped by the hit (chunk) they quote, in citation order."""
    groups: list[tuple[Hit | None, list[Citation]]] = []
    for c in answer.citations:
        hit = next((h for h in answer.hits if h.path == c.path and h.heading == c.heading
                    and h.start_line <= c.start_line <= h.end_line), None)
        for g_hit, cits in groups:
            if g_hit is not None and g_hit is hit:
                cits.append(c)
                break
        else:
            groups.append((hit, [c]))
    return groups


SectionReader = Callable[[str, int], "object"]   # (path, line) -> Section (or raises)


def sources_html(answer: Answer | None, read_section: SectionReader | None = None) -> str:
    """The sources panel: per cited passage its title, heading path, path:line of each citation, the
    passage with the quoted sentences marked, and the whole section behind a <details> toggle."""
    if answer is None:
        return '<div class="azchat-sources azchat-empty">Sources of the answer appear here.</div>'
    if not answer.found or not answer.citations:
        return ('<div class="azchat-sources azchat-none">No sources: nothing in your notes matches this '
                "question.</div>")
    parts = ['<div class="azchat-sources">']
    for hit, cits in group_citations(answer):
        first = cits[0]
        heading = first.heading if first.heading and first.heading != first.title else ""
        locs = "".join(f'<div><span class="azchat-n">[{c.n}]</span> <code class="azchat-loc">{esc(c.location)}'
                       f"</code></div>" for c in cits)
        parts.append('<div class="azchat-source">')
        parts.append(f'<div class="azchat-source-title"><b>{esc(first.title)}</b>'
                     + (f' <span class="azchat-heading">› {esc(heading)}</span>' if heading else "")
                     + "</div>")
        parts.append(f'<div class="azchat-locs">{locs}</div>')
        if hit is not None:
            shown, cut_start, cut_end = window(hit.text, [c.snippet for c in cits])
            passage = (("…\n" if cut_start else "") + highlight(shown, [c.snippet for c in cits])
                       + ("\n…" if cut_end else ""))
            where = f"{hit.path}:{hit.start_line}-{hit.end_line}"
        else:
            passage = highlight("\n".join(c.snippet for c in cits), [c.snippet for c in cits])
            where = first.location
        parts.append(f'<pre class="azchat-passage" title="{esc(where)}">{passage}</pre>')
        if read_section is not None:
            try:
                sec = read_section(first.path, first.start_line)
                label = f"Show the whole section ({sec.path}:{sec.start_line}-{sec.end_line})"
                body = highlight(sec.text, [c.snippet for c in cits])
                more = "\n…" if sec.truncated else ""
                parts.append(f'<details class="azchat-section"><summary>{esc(label)}</summary>'
                             f'<pre class="azchat-section-text">{body}{more}</pre></details>')
            except Exception as exc:   # the note may have changed or vanished since indexing
                parts.append(f'<div class="azchat-section-error">Section unavailable: {esc(exc)}</div>')
        parts.append("</div>")
    parts.append("</div>")
    return "".join(parts)


def status_markdown(status: dict) -> str:
    """Index status as Markdown (notes, chunks, last build, model, rebuild progress or error)."""
    line = (f"**Index:** {status['notes']} notes, {status['chunks']} chunks · last build "
            f"{md_text(status['built_at'] or 'never')} · model {md_text(status['model'] or '?')}")
    if status.get("rebuilding"):
        p = status.get("progress") or {}
        done, total = p.get("done", 0), p.get("total", 0)
        line += f"\n\n**Rebuilding…** {md_text(status.get('phase') or '')}"
        if total:
            line += f" — {done}/{total} chunks embedded"
    elif status.get("error"):
        line += f"\n\n**Rebuild failed:** {md_text(status['error'])}"
    elif status.get("last_build"):
        b = status["last_build"]
        line += (f"\n\nLast update: {b['added']} added, {b['updated']} updated, {b['removed']} removed, "
                 f"{b['unchanged']} unchanged; {b['embedded']} chunks embedded in {b['seconds']:.1f}s.")
    return line
