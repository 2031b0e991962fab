"""The sources panel's markup without a browser: markdown rendered and sanitized (note_html.py), the quoted
lines marked, open-in-editor links (editor.py), long lines cut, and the status line."""
from __future__ import annotations

import os
import re
from html.parser import HTMLParser

import pytest

from azchat.apps.editor import EditorLinks, check_template
from azchat.errors import AzchatError
from azchat.apps.note_html import plain_text, render_markdown, sanitize
from azchat.apps.render import sources_html, status_html
from azchat.types import Answer, Citation, Hit

NOTE = """## Steps

The release train leaves every second Thursday. It stops at [[Staging|the staging ring]] first.

- Freeze **main**
- Tag the [[Releases#Candidates]]

| Env | Window |
|---|---:|
| staging | 30 min |

```python
def tag(version):
    return version
```

```mermaid
graph TD
  A --> B
```

> [!warning] Careful
> Never on a Friday. ![diagram](https://tracker.example/pixel.png) [docs](https://example.org/x) [local](other.md)
"""


def tags_of(markup: str) -> set[str]:
    return {m.lower() for m in re.findall(r"<([a-zA-Z][a-zA-Z0-9]*)", markup)}


def test_markdown_renders_headings_lists_tables_code_and_obsidian_syntax():
    out = render_markdown(NOTE, first_line=1)
    assert "<h2>Steps</h2>" in out
    assert re.search(r"<li>Freeze <strong>main</strong></li>", out)
    assert "the staging ring" in out and "[[" not in out and "Releases › Candidates" in out
    assert re.search(r"<th>Env</th>", out) and re.search(r'<td style="text-align:right">30 min</td>', out)
    assert re.search(r'<span class="k">def</span>(<span class="w">)? (</span>)?<span class="nf">tag</span>', out)
    assert '<figure class="azchat-mermaid"><figcaption>Mermaid diagram (source)</figcaption>' in out
    assert "A --&gt; B" in out
    assert 'class="azchat-callout azchat-callout-warning"' in out
    assert '<b class="azchat-callout-kind">Warning</b>' in out
    # images are never loaded; only http(s)/mailto links are links
    assert "<img" not in out and "[image: diagram]" in out and "tracker.example" not in out.split("[image")[0][-200:]
    assert '<a href="https://example.org/x" target="_blank"' in out and 'rel="noopener noreferrer"' in out
    assert '<span class="azchat-link" title="other.md">local</span>' in out
    assert tags_of(out) <= {"h2", "p", "span", "ul", "li", "strong", "table", "thead", "tbody", "tr", "th", "td",
                            "div", "pre", "code", "figure", "figcaption", "blockquote", "b", "a"}


class Elements(HTMLParser):
    """Every element and its attributes, as a browser's parser would see them."""

    def __init__(self, markup: str):
        super().__init__()
        self.found: list[tuple[str, dict]] = []
        self.feed(markup)

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))


@pytest.mark.parametrize("hostile", [
    "<script>window.__pwned=1</script>",
    '<img src=x onerror="window.__pwned=2">',
    "[click](javascript:window.__pwned=3)",
    '<a href="javascript:window.__pwned=4">a</a>',
    "![x](javascript:window.__pwned=5)",
    "[[Note <b onmouseover=window.__pwned=6>|<svg onload=window.__pwned=7>]]",
    "<iframe srcdoc='<script>parent.__pwned=8</script>'></iframe>",
    "${window.__pwned=9} {{window.__pwned}}",
    "```html\n<script>window.__pwned=10</script>\n```",
    '[x](https://ok.example/pwned "t\\" onmouseover=\\"window.__pwned=11")',
])
def test_note_html_stays_text(hostile):
    out = render_markdown(f"Before\n\n{hostile}\n\nafter", first_line=1)
    elements = Elements(out).found
    assert {tag for tag, _ in elements} <= {"p", "span", "div", "pre", "code", "a"}
    assert not [name for _, attrs in elements for name in attrs if name.startswith("on") or name == "srcdoc"]
    hrefs = [attrs["href"] for tag, attrs in elements if "href" in attrs]
    assert all(h.startswith("https://") for h in hrefs), hrefs
    assert "${" not in out and "{{" not in out
    assert "pwned" in out                                              # shown, as text


def test_the_sanitizer_itself_removes_what_markdown_should_never_produce():
    raw = ('<p onclick="x()">a<script>bad()</script><img src=x onerror=y()><a href="javascript:z()">l</a>'
           '<a href="https://ok.example">ok</a><iframe src="https://x"></iframe><style>*{}</style>'
           '<div class="azchat-quoted" style="color:red">d</div><mark class="azchat-match">m</mark></p>')
    out = sanitize(raw)
    assert "script" not in out and "bad()" not in out and "<img" not in out and "<iframe" not in out
    assert "onclick" not in out and "onerror" not in out and "javascript:" not in out and "<style" not in out
    assert '<a href="https://ok.example" rel="noopener noreferrer">ok</a>' in out
    assert '<div class="azchat-quoted">d</div>' in out and '<mark class="azchat-match">m</mark>' in out


def test_quoted_lines_are_marked_in_prose_lists_tables_and_code():
    # NOTE starts at file line 10: the release sentence is line 12, "Freeze" 14, the staging row 19, return 23
    quoted = {12, 14, 19, 23}
    needles = [plain_text("The release train leaves every second Thursday."), plain_text("- Freeze **main**")]
    out = render_markdown(NOTE, 10, quoted, needles)
    assert '<p class="azchat-quoted"><mark class="azchat-match">The release train leaves every second Thursday.' \
           "</mark> It stops at" in out
    assert '<li class="azchat-quoted"><mark class="azchat-match">Freeze </mark><strong><mark ' in out
    assert '<tr class="azchat-quoted">\n<td>staging</td>' in out
    assert re.search(r'<span class="hll">\s*<span class="k">return</span>', out)
    assert out.count('class="azchat-quoted"') == 3 and out.count('class="hll"') == 1


def test_a_passage_that_starts_inside_code_renders_as_code():
    out = render_markdown("kubectl get pods\nkubectl get nodes\n```\n\nAfter the block.", 30,
                          quoted={31}, open_fence="bash")
    assert out.count('class="azchat-code"') == 1 and "kubectl" in out.split("After the block")[0]
    assert re.search(r'<span class="hll">kubectl<span class="w"> </span>get<span class="w"> </span>nodes', out)
    assert "<p>After the block.</p>" in out


def test_frontmatter_shows_as_yaml_not_as_a_heading():
    out = render_markdown("---\ntitle: Release\ntags: [a]\n---\n# Body", 1)
    assert 'class="azchat-code-lang">yaml<' in out and "<h2>" not in out and "<h1>Body</h1>" in out


def _answer(path: str, text: str, start: int, end: int, cited: list[tuple[int, str]]) -> Answer:
    hit = Hit(1, path, "Export", "Export", start, end, 0.9, text)
    cits = [Citation(n, path, "Export", "Export", line, line, snippet) for n, (line, snippet) in
            enumerate(cited, start=1)]
    return Answer("q", "From your notes:\n\n- x [1]", True, cits, [hit])


class Section:
    def __init__(self, path, start, text):
        self.path, self.start_line, self.text, self.truncated = path, start, text, False
        self.end_line = start + text.count("\n")


def test_a_300kb_line_is_cut_around_the_quote_in_the_panel():
    fact = "The staging password rotates every 45 days."
    line = " ".join(f"record{i}" for i in range(30_000)) + f" {fact} " + " ".join(f"tail{i}" for i in range(20_000))
    piece = line[line.index(fact) - 400:line.index(fact) + 400]
    ans = _answer("export.md", piece, 4, 4, [(4, fact)])
    out = sources_html(ans, lambda p, n: Section("export.md", 1, "# Export\n\nintro\n" + line))
    assert len(out) < 30_000 and len(line) > 300_000
    assert out.count(f'<mark class="azchat-match">{fact}</mark>') == 2          # passage and whole section
    assert "… record" in out and "tail" in out and " …" in out


def test_sources_link_each_citation_and_the_note_to_the_editor(tmp_path):
    notes = tmp_path / "my notes"
    notes.mkdir()
    links = EditorLinks.for_notes(notes, "vscode://file/{path}:{line}")
    ans = _answer("sub/a b.md", "Line one.\nLine two.", 3, 4, [(4, "Line two.")])
    out = sources_html(ans, None, links)
    where = (notes / "sub/a b.md").as_posix().replace(" ", "%20")
    assert f'<a class="azchat-open" href="vscode://file{where}:4"' in out
    assert f'<a class="azchat-open-note" href="vscode://file{where}:1"' in out
    assert '<button type="button" class="azchat-copy" data-copy="sub/a b.md:4"' in out


def test_editor_links_obsidian_vault_template_and_refusals(tmp_path, monkeypatch):
    vault = tmp_path / "Vault"
    (vault / ".obsidian").mkdir(parents=True)
    (vault / "work").mkdir()
    assert EditorLinks.for_notes(vault).url("a b/c.md", 7) == "obsidian://open?vault=Vault&file=a%20b%2Fc.md"
    # notes in a folder of a vault: the file is named from the vault's root
    assert EditorLinks.for_notes(vault / "work").url("x.md", 2) == "obsidian://open?vault=Vault&file=work%2Fx.md"
    plain = tmp_path / "plain"
    plain.mkdir()
    monkeypatch.setenv("AZCHAT_EDITOR_URL", "idea://open?file={path}&line={line}")
    links = EditorLinks.for_notes(plain)
    assert links.url("n.md", 3) == f"idea://open?file={plain.as_posix()}/n.md&line=3"
    assert links.editor == "IntelliJ IDEA"
    monkeypatch.delenv("AZCHAT_EDITOR_URL")
    assert EditorLinks.for_notes(plain).url("n.md", 3) == f"vscode://file{plain.as_posix()}/n.md:3"
    for bad in ("javascript:alert('{path}')", "data:text/html,{path}", "vscode://file/nothing", "{path}:{line}"):
        with pytest.raises(AzchatError, match="AZCHAT_EDITOR_URL"):
            check_template(bad)


def _status(**over) -> dict:
    base = {"notes": 190, "chunks": 2400, "built_at": "2026-12-02T03:10:00+0000", "model": "all-MiniLM-L6-v2",
            "rebuilding": False, "phase": "", "progress": {"done": 0, "total": 0}, "last_build": None,
            "error": "", "pending": {"added": 0, "changed": 0, "removed": 0}}
    return {**base, **over}


def test_status_shows_rebuild_progress_and_notes_changed_since_the_build():
    out = status_html(_status(rebuilding=True, phase="embedding", progress={"done": 30, "total": 120},
                              pending=None))
    assert "Rebuilding…" in out and "30/120 chunks embedded" in out and '<progress max="120" value="30">' in out
    out = status_html(_status(pending={"added": 2, "changed": 1, "removed": 0}))
    assert "3 notes changed since the last build (2 new, 1 edited)" in out and "190 notes" in out
    assert "No notes changed since the last build." in status_html(_status())
    assert "<script" not in status_html(_status(error="<script>x</script> failed", model="<b>m</b>"))


def test_pending_changes_counts_new_edited_and_deleted_notes(tmp_path):
    from azchat import build_index
    from azchat.index.embedding import HashEmbedder
    from azchat.index.changes import is_stale, pending_changes

    notes = tmp_path / "notes"
    notes.mkdir()
    for name in ("a", "b", "c"):
        (notes / f"{name}.md").write_text(f"# {name}\n\ntext {name}\n")
    assert pending_changes(notes, tmp_path / "index") is None              # no index yet
    build_index(notes, tmp_path / "index", embedder=HashEmbedder())
    assert pending_changes(notes, tmp_path / "index") == {"added": 0, "changed": 0, "removed": 0}
    (notes / "d.md").write_text("# d\n")
    (notes / "a.md").write_text("# a\n\nedited text a\n")
    os.unlink(notes / "b.md")
    assert pending_changes(notes, tmp_path / "index") == {"added": 1, "changed": 1, "removed": 1}
    assert is_stale(notes, tmp_path / "index")


def test_a_quoted_command_shows_as_code_in_the_chat():
    from azchat.apps.render import chat_markdown

    from azchat.types import Part, answer_text

    parts = [Part("echo <b>hi</b> | grep `x`", 1, "code"), Part("A `sentence` with *stars*.", 2)]
    cits = [Citation(n, "a.md", "A", "A", n, n, "s") for n in (1, 2)]
    out = chat_markdown(Answer("q", answer_text("From your notes:", parts, cits), True, cits, [],
                               "From your notes:", parts))
    assert "- `` echo <b>hi</b> | grep `x` `` \\[1\\]" in out                 # a code span: literal
    assert r"- A \`sentence\` with \*stars\*. \[2\]" in out                 # prose stays escaped
