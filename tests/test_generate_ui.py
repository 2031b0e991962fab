"""The chat's "written answer" toggle: streamed turns from a local OpenAI-compatible server (in process), and the
toggle in a real browser against `azchat serve`."""
from __future__ import annotations

import os
import signal

import pytest

from azchat.index.embedding import HashEmbedder
from azchat.apps.render import md_text
from azchat.apps.service import NotesService

from conftest import start_serve, write_fixture_vault
from llm_server import Reply, ScriptedLLM
from test_generate import PEERING, _no_llm_env  # noqa: F401 (the autouse fixture applies here too)

import gradio as gr  # noqa: E402  (a dependency of azchat: missing, this module fails instead of skipping)
from azchat.apps import ui  # noqa: E402


@pytest.fixture
def endpoint(monkeypatch):
    server = ScriptedLLM().start()
    monkeypatch.setenv("AZCHAT_LLM_BASE_URL", server.url)
    monkeypatch.setenv("AZCHAT_LLM_MODEL", "scripted-model")
    yield server
    server.stop()


def test_written_turn_streams_then_shows_sources_and_notice(vault, tmp_path, endpoint):
    service = NotesService(vault, tmp_path / "index", embedder=HashEmbedder())
    service.open()
    endpoint.script(Reply("You create a peering link in each direction [1]. Peered networks use the Microsoft "
                          "backbone [1]. Made up [5]."))
    turns = list(ui.written_turn(service, PEERING, [], [], [], None))
    assert len(turns) >= 4             # the question at once, at least two partial updates, then the final one
    assert turns[0][0][-1]["content"] == "…" and turns[0][0][0]["content"] == md_text(PEERING)
    partial_history, partial_sources, partial_asked = turns[1]
    assert partial_sources is None and partial_asked == []
    assert partial_history[-1]["content"].endswith(" …") and "each direction \\[1\\]" in partial_history[-1]["content"]
    history, sources, asked = turns[-1]
    final = history[-1]["content"]
    assert final.startswith("_Checked the model's answer: left out 1 part that cited no passage and removed 1 "
                            "citation of passages that do not exist._")
    assert "Written by scripted-model from your notes:" in final and "Made up" not in final
    assert "networking.md:19" in sources and asked == [PEERING]
    assert [m["role"] for m in history] == ["user", "assistant"]


def test_the_toggle_appears_only_when_an_endpoint_is_configured(vault, tmp_path, monkeypatch):
    service = NotesService(vault, tmp_path / "index", embedder=HashEmbedder())
    service.open()

    def ids(app) -> set:
        return {c.get("props", {}).get("elem_id") for c in app.config["components"]}

    assert "azchat-written" not in ids(ui.build_app(service))
    monkeypatch.setenv("AZCHAT_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("AZCHAT_LLM_MODEL", "llama3.2")
    app = ui.build_app(service)
    toggle = [c for c in app.config["components"] if c.get("props", {}).get("elem_id") == "azchat-written"]
    assert len(toggle) == 1 and toggle[0]["props"]["value"] is False
    assert "llama3.2" in toggle[0]["props"]["label"]


@pytest.mark.slow
def test_browser_toggle_streams_a_written_answer(tmp_path, endpoint, chromium):
    notes = write_fixture_vault(tmp_path / "notes")
    endpoint.script(Reply("You create a peering link in each direction [1].", piece=3))
    proc, info, err = start_serve(tmp_path, notes)
    try:
        page = chromium.new_page()
        try:
            page.goto(info["url"])
            page.locator("#azchat-written input").check()
            page.fill("#azchat-question textarea", PEERING)
            page.click("#azchat-ask")
            bot = page.locator('#azchat-chat [data-testid="bot"]').first
            page.wait_for_function("() => document.querySelector('#azchat-sources') && "
                                   "document.querySelector('#azchat-sources').innerText.includes('networking.md:19')")
            text = bot.inner_text()
            assert "Written by scripted-model from your notes" in text
            assert "peering link in each direction [1]" in text
            assert endpoint.requests[-1].body["stream"] is True
        finally:
            page.context.close()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
