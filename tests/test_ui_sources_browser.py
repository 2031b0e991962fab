"""The sources panel and chat layout in a real browser: `azchat serve` (subprocess, real model) over a vault
with lists, tables, code, a mermaid block, a hostile note and a long note, driven by Playwright in Chromium."""
from __future__ import annotations

import urllib.parse

import pytest

from conftest import ask_in_browser, open_chat, start_serve, stop_serve, write, write_fixture_vault

pytestmark = pytest.mark.slow

RELEASE_NOTE = """---
title: Release Checklist
tags: [release]
---
# Release Checklist

## Steps

The release train leaves every second Thursday from the staging branch.

- Freeze the **main** branch and tag the release candidate
- Run the [[Smoke Tests|smoke suite]] against staging
- Announce the window in the release channel

| Environment | Approver | Window |
|---|---|---:|
| staging | QA lead | 30 min |
| production | Release manager | 2 h |

```python
def tag(version: str) -> str:
    return f"v{version}"
```

```mermaid
graph TD
  Freeze --> Test --> Ship
```
"""

EVIL_NOTE = """---
title: Quarantine <img src=x onerror="window.__pwned=1">
---
## Payloads <script>window.__pwned=2</script>

The quarantine sentinel phrase is <script>window.__pwned=3</script> kept here.
An image <img src=x onerror="window.__pwned=4"> and a [quarantine link](javascript:window.__pwned=5) sit here.
<svg onload="window.__pwned=6"></svg> <iframe srcdoc="<script>parent.__pwned=7</script>"></iframe>
A [[Quarantine <b onmouseover=window.__pwned=8>|<img src=x onerror=window.__pwned=9>]] wikilink and
![x](javascript:window.__pwned=10) and <a href="javascript:window.__pwned=11">an anchor</a> in the quarantine.
"""

_CLAUSE = ("while the vault keeps a second copy in the paired region, the retrieval request is queued behind "
           "earlier requests, the rehydrated blob is written to the hot tier of the same storage account, "
           "and the operator receives a notification on the archive channel when the copy is readable again")
GLACIER_NOTE = "# Glacier Archive\n\n## Retrieval\n\n" + "\n\n".join(
    f"Glacier archive retrieval step {n} for the cold vault takes {n + 2} hours {_CLAUSE}." for n in range(1, 6)
) + "\n"

QUESTION = "When does the release train leave?"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("sources")
    notes = root / "notes"
    write_fixture_vault(notes)
    write(notes, "guides/release checklist.md", RELEASE_NOTE)
    write(notes, "security/evil.md", EVIL_NOTE)
    write(notes, "archive/glacier.md", GLACIER_NOTE)
    proc, info, _ = start_serve(root, notes)
    yield {"url": info["url"], "notes": notes, "root": root}
    stop_serve(proc)


@pytest.fixture
def page(chromium, server):
    pg = open_chat(chromium, server["url"])
    yield pg
    pg.context.close()


def _sources(page):
    sources = page.locator("#azchat-sources")
    sources.locator(".azchat-source").first.wait_for()
    return sources


def test_sources_render_headings_lists_tables_and_highlighted_code(page):
    assert "second Thursday" in ask_in_browser(page, QUESTION)
    source = _sources(page).locator(".azchat-source").first
    passage = source.locator(".azchat-passage")
    # the quoted sentence is marked, on a block marked as quoted
    assert "release train leaves every second Thursday" in passage.locator("mark.azchat-match").first.inner_text()
    assert passage.locator(".azchat-quoted mark").count() >= 1
    # a list with its items, bold kept as bold, the wikilink as its text
    items = passage.locator("ul > li")
    assert items.count() == 3
    assert items.nth(0).locator("strong").inner_text() == "main"
    assert items.nth(1).inner_text() == "Run the smoke suite against staging"
    assert "[[" not in passage.inner_text() and "**" not in passage.inner_text()
    # a table with header cells and rows
    assert passage.locator("table th").all_inner_texts() == ["Environment", "Approver", "Window"]
    assert passage.locator("table tbody tr").nth(1).locator("td").all_inner_texts() == [
        "production", "Release manager", "2 h"]
    # code highlighted by token (Pygments classes), not one plain block
    code = passage.locator(".azchat-code-body code")
    assert "def tag(version: str)" in code.inner_text()
    assert code.locator("span.k, span.kd").first.inner_text() in ("def", "return")
    assert code.locator("span.nf").first.inner_text() == "tag"
    # mermaid: shown as a labelled block of its source (the panel cannot draw it)
    mermaid = passage.locator("figure.azchat-mermaid")
    assert mermaid.locator("figcaption").inner_text() == "Mermaid diagram (source)"
    assert "Freeze --> Test --> Ship" in mermaid.locator("pre").inner_text()
    # the whole section renders the same way behind its toggle
    details = source.locator("details.azchat-section")
    details.locator("summary").click()
    section = details.locator(".azchat-section-text")
    assert section.locator("ul > li").count() == 3 and section.locator("table").count() == 1


def test_citations_open_the_note_in_the_editor_and_copy_path_and_line(page, server):
    notes = server["notes"]
    ask_in_browser(page, QUESTION)
    source = _sources(page).locator(".azchat-source").first
    path = (notes / "guides/release checklist.md").absolute().as_posix()
    link = source.locator("a.azchat-open").first
    assert link.inner_text() == "guides/release checklist.md:9"
    assert link.get_attribute("href") == "vscode://file" + urllib.parse.quote(path, safe="/:") + ":9"
    assert source.locator("a.azchat-open-note").get_attribute("href") == (
        "vscode://file" + urllib.parse.quote(path, safe="/:") + ":1")
    # the copy button puts path:line on the clipboard
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    button = source.locator("button.azchat-copy").first
    button.click()
    page.wait_for_function("() => document.querySelector('button.azchat-copy').textContent === 'Copied'")
    assert page.evaluate("navigator.clipboard.readText()") == "guides/release checklist.md:9"
    # the same notes folder as an Obsidian vault: links open the note in Obsidian
    (notes / ".obsidian").mkdir()
    try:
        ask_in_browser(page, QUESTION)
        page.wait_for_function("() => document.querySelector('#azchat-sources a.azchat-open')"
                               ".href.startsWith('obsidian:')")
        href = _sources(page).locator("a.azchat-open").first.get_attribute("href")
        assert href == ("obsidian://open?vault=" + urllib.parse.quote(notes.name, safe="")
                        + "&file=" + urllib.parse.quote("guides/release checklist.md", safe=""))
    finally:
        (notes / ".obsidian").rmdir()


def test_the_question_stays_visible_above_a_long_answer(page):
    ask_in_browser(page, "How do I peer two virtual networks?")
    ask_in_browser(page, "How many copies does locally redundant storage keep?")
    text = ask_in_browser(page, "How long does glacier archive retrieval from the cold vault take?")
    assert "hours" in text
    page.wait_for_timeout(800)         # the page's script scrolls after the answer is drawn
    chat = page.locator("#azchat-chat")
    question = chat.locator('[data-testid="user"]').last
    answer = chat.locator('[data-testid="bot"]').last
    box, q, a = chat.bounding_box(), question.bounding_box(), answer.bounding_box()
    assert a["height"] > box["height"] * 0.6          # the answer alone fills most of the chat
    label = chat.locator('[data-testid="block-label"]')
    top = label.bounding_box()["y"] + label.bounding_box()["height"] if label.count() else box["y"]
    assert q["y"] >= top - 1, "the question's first line is under the chat's label"
    assert q["y"] + min(q["height"], 24) <= box["y"] + box["height"], "the question is scrolled out of the chat"
    assert 0 <= q["y"] and q["y"] + 24 <= page.viewport_size["height"]


def test_hostile_note_html_stays_inert_in_the_rendered_sources(page):
    title = page.title()
    assert "quarantine sentinel phrase" in ask_in_browser(page, "What is the quarantine sentinel phrase?")
    sources = _sources(page)
    for summary in sources.locator("summary").all():
        summary.click()
    shown = sources.inner_text()
    assert "<script>window.__pwned=3</script>" in shown and 'onerror="window.__pwned=4"' in shown
    assert "javascript:window.__pwned=5" in shown
    page.wait_for_timeout(500)
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.title() == title and not page.dialogs
    assert sources.locator("script, img, iframe, svg, b[onmouseover], [onerror], [onload], [onmouseover], "
                           "[srcdoc]").count() == 0
    hrefs = sources.locator("a").evaluate_all("els => els.map(e => e.getAttribute('href'))")
    assert hrefs and all(h.startswith(("vscode://", "obsidian://", "https://", "http://", "mailto:"))
                         for h in hrefs), hrefs


def test_enter_sends_and_shift_enter_starts_a_new_line(page):
    box = page.locator("#azchat-question textarea")
    box.fill("When does the release")
    box.press("Shift+Enter")
    box.type("train leave?")
    assert box.input_value() == "When does the release\ntrain leave?"
    assert page.locator('#azchat-chat [data-testid="user"]').count() == 0
    box.press("Enter")
    page.wait_for_selector('#azchat-chat [data-testid="bot"]')
    assert "second Thursday" in page.locator('#azchat-chat [data-testid="bot"]').first.inner_text()


def test_status_says_how_many_notes_changed_and_rebuild_clears_it(page, server):
    status = page.locator("#azchat-status")
    page.wait_for_function("() => (document.querySelector('#azchat-status')?.innerText || '').includes("
                           "'No notes changed since the last build')")
    write(server["notes"], "pets/aquarium.md", "## Aquarium\n\nThe axolotl tank is cleaned every Tuesday.\n")
    page.reload()
    page.wait_for_function("() => (document.querySelector('#azchat-status')?.innerText || '').includes("
                           "'1 note changed since the last build (1 new)')")
    page.click("#azchat-rebuild")
    page.wait_for_function("() => (document.querySelector('#azchat-status')?.innerText || '').includes('1 added')",
                           timeout=120_000)
    assert "No notes changed since the last build" in status.inner_text()


def test_dark_mode_follows_the_system(chromium, server):
    pg = open_chat(chromium, server["url"], color_scheme="dark")
    try:
        ask_in_browser(pg, QUESTION)
        _sources(pg)
        assert pg.evaluate("document.body.classList.contains('dark')")
        mark = pg.locator("#azchat-sources mark.azchat-match").first
        bg = mark.evaluate("e => getComputedStyle(e).backgroundColor")
        assert bg == "rgb(161, 98, 7)"                   # the dark-mode highlight, not the light one
    finally:
        pg.context.close()
