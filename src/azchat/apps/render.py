"""Answers, sources and index status as safe markup for a browser. No UI framework here.

Note text never becomes live HTML: the chat's Markdown escapes it (md_text), the sources panel renders it
through note_html (markdown-it without raw HTML, then the nh3 sanitizer), and everything else is escaped
(esc). A note that contains `<script>`, `<img onerror=...>` or `javascript:` links shows them as text.
"""
from __future__ import annotations

import html
import re
from typing import Callable

from .editor import EditorLinks
from .note_html import plain_text, render_markdown
from ..notes.syntax import blocks_open_at
from ..types import Answer, Citation, Hit, follow_up_line

_MD_SPECIAL = re.compile(r"([\\`*_\[\]#|~])")   # after html.escape: no tags, links, emphasis, code


def esc(text: str) -> str:
    """Text -> HTML text. Also escapes `$`, `{` and `}`, so no template syntax survives either."""
    return (html.escape(str(text), quote=True)
            .replace("$", "&#36;").replace("{", "&#123;").replace("}", "&#125;"))


def md_text(text: str) -> str:
    """Text -> Markdown that renders as exactly that text (no HTML, links, emphasis or code)."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(str(text), quote=False))


def code_span(text: str) -> str:
    """A Markdown code span that shows text literally, whatever backticks it holds."""
    ticks = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    return f"{ticks} {text} {ticks}"


def _text_lines(text: str) -> list[str]:
    """Text shown literally, line by line; a line that starts "- " stays a list item."""
    return ["- " + md_text(line[2:]) if line.startswith("- ") else md_text(line) for line in text.split("\n")]


def chat_markdown(answer: Answer) -> str:
    """The answer as Markdown that shows the notes' text literally: the cited sentences as a list with
    their [n] markers (a quoted command as code), then one compact line of sources (the sources panel has the
    details). Read from the answer's parts, not from its text."""
    if not answer.citations or not answer.parts:
        return "\n".join(_text_lines(answer.answer))
    out = _text_lines(follow_up_line(answer.read_as)) + [""] if answer.read_as else []
    out += [md_text(answer.intro), ""]
    for part in answer.parts:
        if part.style == "written":
            out += _text_lines(part.text)
        elif part.style == "code":      # a code span shows its text literally
            out.append(f"- {code_span(part.text)} {md_text(f'[{part.n}]')}")
        else:
            shown = part.text.replace("\n", "\n  ") if part.style == "block" else part.text
            out += _text_lines(f"- {shown} [{part.n}]")
    while out and not out[-1].strip():
        out.pop()
    out += ["", "Sources: " + " · ".join(md_text(f"[{c.n}] {c.location}") for c in answer.citations)]
    return "\n".join(out)


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

LONG_LINE = 3000          # characters of one line shown in the sources panel; longer ones are cut around the quote


def _clip_long_lines(text: str, snippets: list[str], keep: int = LONG_LINE) -> str:
    """Lines longer than `keep` cut to the part around the first quoted snippet they hold (else their start),
    marked with "…" (a 300 kB exported line would otherwise fill the page)."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if len(line) <= keep:
            continue
        at = next((line.find(s) for s in snippets if s and line.find(s) >= 0), -1)
        lo = max(0, at - keep // 3) if at >= 0 else 0
        hi = min(len(line), lo + keep)
        lo = line.rfind(" ", 0, lo) + 1 if lo else 0
        hi = line.find(" ", hi) if line.find(" ", hi) > 0 else len(line)
        lines[i] = ("… " if lo else "") + line[lo:hi] + (" …" if hi < len(line) else "")
    return "\n".join(lines)


def _open_fence(section, first_line: int) -> str | None:
    """The language of the code block that file line `first_line` lies inside, read from its section's lines
    above it ("" for a fence without a language), or None outside code."""
    if section is None or not section.start_line < first_line <= section.end_line:
        return None
    above = section.text.split("\n")[:first_line - section.start_line + 1]
    block = blocks_open_at(dict(enumerate(above, start=section.start_line))).get(first_line)
    return block[1] if block else None


def _quoted_lines(cits: list[Citation]) -> tuple[set[int], list[str]]:
    """The cited file lines and the cited sentences as plain text (table rows are marked by line only)."""
    lines = {n for c in cits for n in range(c.start_line, c.end_line + 1)}
    needles = [plain_text(c.snippet) for c in cits if not c.snippet.lstrip().startswith("|")]
    return lines, [n for n in needles if n]


def _copy_button(text: str) -> str:
    return (f'<button type="button" class="azchat-copy" data-copy="{esc(text)}" '
            f'title="Copy {esc(text)}">Copy</button>')


def _opens(inner: str, links: EditorLinks | None, path: str, line: int, css: str, what: str) -> str:
    """`inner` as a link that opens path:line in the editor (as it is when no editor is configured)."""
    if links is None:
        return inner
    return (f'<a class="{css}" href="{esc(links.url(path, line))}" '
            f'title="Open {esc(what)} in {esc(links.editor)}">{inner}</a>')


def _loc_line(c: Citation, links: EditorLinks | None) -> str:
    loc = _opens(f'<code class="azchat-loc">{esc(c.location)}</code>', links, c.path, c.start_line,
                 "azchat-open", f"line {c.start_line}")
    return (f'<div class="azchat-cite"><span class="azchat-n">[{c.n}]</span> {loc} '
            f'{_copy_button(f"{c.path}:{c.start_line}")}</div>')


def sources_html(answer: Answer | None, read_section: SectionReader | None = None,
                 links: EditorLinks | None = None) -> str:
    """The sources panel: per cited passage its note (a link that opens the whole note), heading, each
    citation's path:line (a link that opens that line in the editor, and a copy button), the passage
    rendered as markdown with the quoted lines marked, and the whole section behind a <details> toggle."""
    if answer is None:
        return '<div class="azchat-sources azchat-empty">Sources of the answer appear here.</div>'
    if not answer.found or not answer.citations:
        return ('<div class="azchat-sources azchat-none">No sources: nothing in your notes matches this '
                "question.</div>")
    parts = ['<div class="azchat-sources">']
    for hit, cits in group_citations(answer):
        first = cits[0]
        heading = first.heading if first.heading and first.heading != first.title else ""
        title = _opens(f"<b>{esc(first.title)}</b>", links, first.path, 1, "azchat-open-note",
                       f"the whole note {first.path}")
        parts.append('<div class="azchat-source">')
        parts.append(f'<div class="azchat-source-title">{title}'
                     + (f' <span class="azchat-heading">› {esc(heading)}</span>' if heading else "")
                     + "</div>")
        parts.append('<div class="azchat-locs">' + "".join(_loc_line(c, links) for c in cits) + "</div>")
        section, problem = None, ""
        if read_section is not None:
            try:
                section = read_section(first.path, first.start_line)
            except Exception as exc:   # the note may have changed or vanished since indexing
                problem = str(exc)
        quoted, needles = _quoted_lines(cits)
        snippets = [c.snippet for c in cits]
        if hit is not None:
            body = render_markdown(_clip_long_lines(hit.text, snippets), hit.start_line, quoted, needles,
                                   _open_fence(section, hit.start_line))
            where = f"{hit.path}:{hit.start_line}-{hit.end_line}"
        else:
            body = render_markdown("\n\n".join(snippets), first.start_line, set(), needles)
            where = first.location
        parts.append(f'<div class="azchat-passage azchat-md" title="{esc(where)}">{body}</div>')
        if section is not None:
            label = f"Show the whole section ({section.path}:{section.start_line}-{section.end_line})"
            text = _clip_long_lines(section.text, snippets)
            body = render_markdown(text, section.start_line, quoted, needles)
            more = '<div class="azchat-more">… (the section goes on in the note)</div>' if section.truncated else ""
            parts.append(f'<details class="azchat-section"><summary>{esc(label)}</summary>'
                         f'<div class="azchat-section-text azchat-md">{body}{more}</div></details>')
        elif problem:
            parts.append(f'<div class="azchat-section-error">Section unavailable: {esc(problem)}</div>')
        parts.append("</div>")
    parts.append("</div>")
    return "".join(parts)


def status_html(status: dict) -> str:
    """Index status: notes, chunks, last build, model; a progress bar while a rebuild runs, its error or
    result after; how many notes changed on disk since the last build."""
    parts = [f'<div class="azchat-status-line"><b>Index:</b> {status["notes"]} notes, {status["chunks"]} chunks '
             f'· last build {esc((status["built_at"] or "never").replace("T", " "))} '
             f'· model {esc(status["model"] or "?")}</div>']
    if status.get("rebuilding"):
        p = status.get("progress") or {}
        done, total = p.get("done", 0), p.get("total", 0)
        counts = f" — {done}/{total} chunks embedded" if total else ""
        bar = f'<progress max="{total}" value="{done}"></progress>' if total else "<progress></progress>"
        parts.append(f'<div class="azchat-rebuilding"><b>Rebuilding…</b> {esc(status.get("phase") or "")}'
                     f"{counts} {bar}</div>")
    elif status.get("error"):
        parts.append(f'<div class="azchat-rebuild-error"><b>Rebuild failed:</b> {esc(status["error"])}</div>')
    elif status.get("last_build"):
        b = status["last_build"]
        parts.append(f'<div>Last update: {b["added"]} added, {b["updated"]} updated, {b["removed"]} removed, '
                     f'{b["unchanged"]} unchanged; {b["embedded"]} chunks embedded in {b["seconds"]:.1f}s.</div>')
    pending = status.get("pending")
    if pending is not None and not status.get("rebuilding"):
        n = pending["added"] + pending["changed"] + pending["removed"]
        if n:
            what = ", ".join(f"{pending[k]} {w}" for k, w in (("added", "new"), ("changed", "edited"),
                                                            ("removed", "deleted")) if pending[k])
            parts.append(f'<div class="azchat-pending">{n} note{"s" if n != 1 else ""} changed since the last '
                         f"build ({what}): Rebuild index to include them.</div>")
        else:
            parts.append('<div class="azchat-pending azchat-fresh">No notes changed since the last build.</div>')
    return '<div class="azchat-status">' + "".join(parts) + "</div>"
