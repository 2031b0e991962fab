"""`azchat serve` for real: one server (subprocess, real model) over fixture notes, driven by
gradio_client (the API) and by Playwright with Debian's Chromium (the browser)."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from conftest import (REPO, ask_in_browser, assert_span, open_chat, start_serve, stop_serve, write,
                      write_fixture_vault)

pytestmark = pytest.mark.slow

EVIL_NOTE = """---
title: Quarantine <img src=x onerror="window.__pwned=1">
tags: [security]
---
## Payloads <script>window.__pwned=2</script>

The quarantine sentinel phrase is <script>window.__pwned=3;document.title='pwned'</script> kept here.
An image <img src=x onerror="window.__pwned=4;document.title='pwned'"> and a [quarantine link](javascript:window.__pwned=5) sit in the quarantine note.
<svg onload="window.__pwned=6"></svg> <iframe srcdoc="<script>parent.__pwned=7</script>"></iframe>
Template ${window.__pwned=8} and {{window.__pwned=9}} stay text too.
"""

NEW_NOTE = """## Aquarium

The axolotl tank is cleaned every second Tuesday with a siphon.
"""

NOT_IN_NOTES = "What is the best recipe for banana bread with walnuts?"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    notes = root / "notes"
    write_fixture_vault(notes)
    write(notes, "security/evil.md", EVIL_NOTE)
    write(root, "secret.md", "# Secret\n\nTOP SECRET outside the notes folder\n")
    os.symlink(root / "secret.md", notes / "link-out.md")
    proc, info, err = start_serve(root, notes)
    yield {"url": info["url"], "info": info, "notes": notes, "root": root, "proc": proc}
    stop_serve(proc)


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server["url"], download_files=False, verbose=False)


# -- the API (gradio_client) -------------------------------------------------------------------
def test_serve_listens_on_localhost_and_reports_the_index(server):
    info = server["info"]
    assert info["url"].startswith("http://127.0.0.1:") and info["host"] == "127.0.0.1"
    assert (info["notes"], info["auth"], info["share"]) == (5, False, False)


def test_api_search_and_ask_return_the_cli_json_shapes(server, client):
    out = client.predict("how do I connect two vnets to each other", 3, api_name="/search")
    assert set(out) == {"query", "hits"} and len(out["hits"]) == 3
    top = out["hits"][0]
    assert set(top) == {"rank", "path", "title", "heading", "start_line", "end_line", "score", "text"}
    assert (top["path"], top["start_line"], top["end_line"]) == ("networking.md", 17, 19)

    out = client.predict("What does Azure Machine Learning's workspace do?", api_name="/ask")
    assert set(out) == {"question", "answer", "found", "citations"} and out["found"] is True
    c = out["citations"][0]
    assert set(c) == {"n", "path", "title", "heading", "start_line", "end_line", "snippet"}
    assert (c["path"], c["start_line"]) == ("ml/machine learning.md", 6)
    assert_span(server["notes"], c["path"], c["start_line"], c["end_line"], c["snippet"])

    out = client.predict(NOT_IN_NOTES, api_name="/ask")
    assert out["found"] is False and out["citations"] == []


def test_api_filters_apply_inside_the_search(client):
    out = client.predict("redundancy copies", 5, ["storage"], None, api_name="/search")
    assert out["hits"] and {h["path"] for h in out["hits"]} == {"storage/storage.md"}
    out = client.predict("network", 5, None, "ml", api_name="/search")
    assert out["hits"] and {h["path"] for h in out["hits"]} == {"ml/machine learning.md"}
    # a question the storage note answers unfiltered is answered from the networking note with its tag
    question = "Which paired region do networks and storage use?"
    out = client.predict(question, None, None, api_name="/ask")
    assert out["found"] and {c["path"] for c in out["citations"]} == {"storage/storage.md"}
    out = client.predict(question, ["networking"], None, api_name="/ask")
    assert out["found"] and {c["path"] for c in out["citations"]} == {"networking.md"}
    # and a question only the networking note answers finds nothing under the storage tag
    out = client.predict("How do I peer two virtual networks?", ["storage"], None, api_name="/ask")
    assert (out["found"], out["citations"]) == (False, [])


@pytest.mark.parametrize("path, why", [
    ("../secret.md", "is outside the notes folder or hidden"),
    ("storage/../../secret.md", "is outside the notes folder or hidden"),
    ("link-out.md", "is not a note in the index"),      # never indexed: the disk is not asked
    ("/etc/passwd", "only paths relative to it are allowed"),
    (str(Path("/etc/hostname")), "only paths relative to it are allowed"),
    ("..\\secret.md", "is not a valid note path"),
    ("storage/../networking.md", "is outside the notes folder or hidden"),
])
def test_api_section_refuses_paths_outside_the_notes(client, path, why):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=re.escape(why)) as exc:      # the app's own refusal, shown to the caller
        client.predict(path, 1, api_name="/section")
    assert "TOP SECRET" not in str(exc.value) and "root:" not in str(exc.value)


def test_server_does_not_serve_note_or_outside_files_by_url(server):
    import urllib.error
    import urllib.request

    for target in (server["root"] / "secret.md", server["notes"] / "networking.md"):
        for route in ("gradio_api/file=", "file="):
            try:
                with urllib.request.urlopen(server["url"] + route + str(target), timeout=30) as resp:
                    body = resp.read().decode("utf-8", "replace")
            except urllib.error.HTTPError as exc:
                assert exc.code in (403, 404, 405), (route, exc.code)
                continue
            assert "TOP SECRET" not in body and "peering link" not in body, route


def test_api_section_reads_a_cited_section(client):
    sec = client.predict("networking.md", 18, api_name="/section")
    assert (sec["path"], sec["heading"], sec["start_line"]) == ("networking.md", "Peering", 17)
    assert "peering link in each direction" in sec["text"]


# -- the browser -------------------------------------------------------------------------------
@pytest.fixture
def page(chromium, server):
    pg = open_chat(chromium, server["url"])
    yield pg
    pg.context.close()


def test_browser_answers_with_sources_and_follow_ups(page):
    assert page.locator("#azchat-chat button", has_text="What do my notes say about").count() >= 1
    text = ask_in_browser(page, "how do I connect two vnets to each other")
    assert "From your notes" in text and "peering link in each direction" in text and "[1]" in text
    sources = page.locator("#azchat-sources")
    sources.locator(".azchat-source").first.wait_for()
    assert "networking.md:17" in sources.inner_text()
    assert "Peering" in sources.inner_text()
    assert "peering link in each direction" in sources.locator("mark").first.inner_text()
    # expand the whole section
    section = sources.locator("details.azchat-section").first
    assert not section.locator(".azchat-section-text").is_visible()
    section.locator("summary").click()
    assert "Microsoft backbone" in section.locator(".azchat-section-text").inner_text()
    # follow-ups in the same conversation
    assert "Microsoft backbone" in ask_in_browser(page, "and which backbone do they use?")
    text = ask_in_browser(page, "how many copies does locally redundant storage keep?")
    assert "three copies" in text
    assert page.locator('#azchat-chat [data-testid="user"]').count() == 3
    assert "storage/storage.md:8" in page.locator("#azchat-sources").inner_text()


def test_browser_says_plainly_when_the_notes_do_not_answer(page):
    text = ask_in_browser(page, NOT_IN_NOTES)
    assert "could not find anything about this in your notes" in text
    assert "Sources:" not in text and "[1]" not in text
    assert "nothing in your notes matches" in page.locator("#azchat-sources").inner_text()


def test_browser_example_question_answers(page):
    example = page.locator("#azchat-chat button", has_text="What do my notes say about").first
    topic = example.inner_text().strip().removeprefix("What do my notes say about").strip(" ?")
    example.click()
    page.wait_for_selector('#azchat-chat [data-testid="bot"]')
    assert page.locator('#azchat-chat [data-testid="user"]').first.inner_text().startswith("What do my notes")
    answer = page.locator('#azchat-chat [data-testid="bot"]').first.inner_text()
    assert "From your notes" in answer and "[1]" in answer          # the example is answered, with a citation
    sources = page.locator("#azchat-sources")
    sources.locator(".azchat-source").first.wait_for()
    assert topic and topic in sources.inner_text()                 # from the section the example was drawn from


def test_browser_shows_hostile_note_text_as_text(page):
    title = page.title()
    text = ask_in_browser(page, "What is the quarantine sentinel phrase?")
    assert "quarantine sentinel phrase" in text
    sources = page.locator("#azchat-sources")
    sources.locator(".azchat-source").first.wait_for()
    for summary in sources.locator("summary").all():
        summary.click()
    shown = sources.inner_text()
    assert "security/evil.md:" in shown
    assert "<script>window.__pwned=3" in shown and 'onerror="window.__pwned=4' in shown   # visible as text
    assert "javascript:window.__pwned=5" in shown
    page.wait_for_timeout(500)        # give any injected handler a chance to run
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.title() == title and not page.dialogs
    assert page.locator("#azchat-sources script, #azchat-sources img, #azchat-sources iframe, "
                        "#azchat-sources svg[onload], #azchat-chat script, #azchat-chat iframe").count() == 0
    assert page.locator('a[href^="javascript:"]').count() == 0


def test_browser_rebuild_index_picks_up_a_new_note(page, server):
    assert "could not find" in ask_in_browser(page, "How often is the axolotl tank cleaned?")
    write(server["notes"], "pets/aquarium.md", NEW_NOTE)
    page.click("#azchat-rebuild")
    page.wait_for_function(
        "() => document.querySelector('#azchat-status').innerText.includes('1 added')", timeout=120_000)
    assert "6 notes" in page.locator("#azchat-status").inner_text()
    text = ask_in_browser(page, "How often is the axolotl tank cleaned?")
    assert "every second Tuesday" in text
    assert "pets/aquarium.md:3" in page.locator("#azchat-sources").inner_text()
    # the new folder is offered as a filter, and the filter applies to the search
    page.get_by_text("Filters (applied inside the search)").click()
    page.locator("#azchat-folder input").click()
    page.get_by_role("option", name="pets", exact=True).click()
    # answered from networking.md without a filter (test above); under the pets folder there is nothing
    assert "could not find anything about this in your notes" in ask_in_browser(page, "How do I peer two virtual networks?")
    assert "networking.md" not in page.locator("#azchat-sources").inner_text()
    assert "every second Tuesday" in ask_in_browser(page, "How often is the axolotl tank cleaned?")   # the filter answers


def test_screenshot_of_an_answer(page, server):
    """Keeps a current picture of the UI for humans (bench/out is ignored), of an answer checked first."""
    text = ask_in_browser(page, "What does Azure Machine Learning's workspace do?")
    assert "Centralized place to manage ML lifecycle" in text and "[1]" in text
    page.locator("#azchat-sources .azchat-source").first.wait_for()
    assert "ml/machine learning.md:6" in page.locator("#azchat-sources").inner_text()
    out = REPO / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out / "ui-answer.png"))
    assert (out / "ui-answer.png").stat().st_size > 10_000


def test_azchat_auth_guards_the_page_and_the_api_of_a_real_serve(tmp_path_factory, chromium):
    """`AZCHAT_AUTH=alice:s3cret azchat serve`, from the outside: without the password the page shows only
    the sign-in form and the config and API answer 401; with it (sign-in, or the API client's auth) they work."""
    import http.cookiejar
    import json
    import urllib.error
    import urllib.parse
    import urllib.request

    from gradio_client import Client

    root = tmp_path_factory.mktemp("auth")
    notes = root / "notes"
    write_fixture_vault(notes)
    proc, info, _ = start_serve(root, notes, auth="alice:s3cret")
    try:
        assert info["auth"] is True
        url = info["url"]

        def get(path, opener, data=None):
            try:
                with opener.open(url + path, data=data, timeout=30) as resp:
                    return resp.status, resp.read().decode("utf-8", "replace")
            except urllib.error.HTTPError as exc:
                return exc.code, exc.read().decode("utf-8", "replace")

        anonymous = urllib.request.build_opener()
        assert get("config", anonymous)[0] == 401
        assert get("gradio_api/info", anonymous)[0] == 401
        call = json.dumps({"data": ["peering", 1]}).encode()
        assert get("gradio_api/call/search", anonymous, call)[0] == 401
        with pytest.raises(ValueError, match="(?i)login|auth|401"):
            Client(url, download_files=False, verbose=False)
        jar = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        wrong = urllib.parse.urlencode({"username": "alice", "password": "guess"}).encode()
        assert get("login", jar, wrong)[0] == 400 and get("config", jar)[0] == 401
        right = urllib.parse.urlencode({"username": "alice", "password": "s3cret"}).encode()
        assert get("login", jar, right)[0] == 200
        status, config = get("config", jar)
        assert status == 200 and "azchat-question" in config
        client = Client(url, auth=("alice", "s3cret"), download_files=False, verbose=False)
        assert client.predict("peer virtual networks", 1, api_name="/search")["hits"][0]["path"] == "networking.md"

        ctx = chromium.new_context()
        page = ctx.new_page()
        page.set_default_timeout(60_000)
        page.goto(url)
        page.get_by_role("button", name="Login").wait_for()
        assert page.locator("#azchat-question").count() == 0         # the chat is not there before sign-in
        page.get_by_label("username").fill("alice")
        page.get_by_label("password").fill("s3cret")
        page.get_by_role("button", name="Login").click()
        page.wait_for_selector("#azchat-question textarea")
        assert "peering link in each direction" in ask_in_browser(page, "how do I connect two vnets to each other")
        ctx.close()
    finally:
        stop_serve(proc)
