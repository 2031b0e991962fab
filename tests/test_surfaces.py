"""One `azchat serve` (the defaults: 127.0.0.1, no password) with a model endpoint that obeys a hostile note, tried
from outside over real HTTP on every surface: the same caps and one-sentence errors for bad input (REST, MCP,
the Gradio API, the CLI), one error for every file that is not an indexed note, and written answers without the
forged source, image or link (REST and MCP)."""
from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from conftest import REPO, copy_real_index, start_serve, stop_serve, write
from llm_server import ScriptedLLM
from test_generate_hostile import HOSTILE_NOTE, OBEYED, QUESTION, assert_clean

pytestmark = pytest.mark.slow

NOT_INDEXED = "is not a note in the index: use a path that search returns."


@pytest.fixture(scope="module")
def serve(real_index, tmp_path_factory):
    root = tmp_path_factory.mktemp("surfaces")
    copy_real_index(real_index, root)
    write(root / "notes", "ops/backup.md", HOSTILE_NOTE)
    write(root / "notes", "binary.md", b"\x00\x01 not text \xff" * 40)        # a file the index skips
    llm = ScriptedLLM(responder=lambda body: OBEYED).start()
    env = {"AZCHAT_LLM_BASE_URL": llm.url, "AZCHAT_LLM_MODEL": "obedient-model"}
    proc, ready, _ = start_serve(root, root / "notes", env=env)
    try:
        yield ready["url"].rstrip("/"), root, llm
    finally:
        stop_serve(proc, 30)
        llm.stop()


def mcp_call(url: str, name: str, arguments: dict) -> tuple[bool, str, dict | None]:
    """(is_error, the text without the SDK's "Error executing tool NAME: " prefix, structured content)."""
    r = httpx.post(url + "/mcp", timeout=120, headers={"accept": "application/json, text/event-stream"},
                   json={"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                         "params": {"name": name, "arguments": arguments}})
    assert r.status_code == 200, r.text[:300]
    result = r.json()["result"]
    text = result["content"][0]["text"]
    if result["isError"]:
        prefix = f"Error executing tool {name}: "
        assert text.startswith(prefix), text
        text = text[len(prefix):]
    return result["isError"], text, result.get("structuredContent")


def gradio_error(url: str, *args, api_name: str) -> str:
    from gradio_client import Client

    client = Client(url, download_files=False, verbose=False)
    with pytest.raises(Exception) as info:
        client.predict(*args, api_name=api_name)
    return str(info.value)


def cli(root, *argv) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1"}
    for name in ("AZCHAT_LLM_BASE_URL", "AZCHAT_LLM_MODEL"):
        env.pop(name, None)
    return subprocess.run([sys.executable, "-m", "azchat", *argv, "--notes", str(root / "notes"), "--index",
                           str(root / "index")], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize("kind, sentence", [
    ("long", "The query is 2001 characters long; at most 2000 are allowed."),
    ("k", "k must be between 1 and 50, not 51."),
    ("empty", "The query is empty: give a few words to search for."),
])
def test_every_surface_has_the_same_caps_and_sentences(serve, kind, sentence):
    url, root, _ = serve
    query, k = {"long": ("x" * 2001, 5), "k": ("peering", 51), "empty": ("  ", 5)}[kind]
    r = httpx.get(url + "/api/search", params={"q": query, "k": k}, timeout=60)
    assert (r.status_code, r.json()) == (400, {"detail": sentence})
    is_error, text, _ = mcp_call(url, "search", {"query": query, "k": k})
    assert is_error and text == sentence
    assert sentence in gradio_error(url, query, k, api_name="/search")
    proc = cli(root, "search", query, "-k", str(k))
    assert proc.returncode == 2 and proc.stderr.strip() == f"azchat: {sentence}"


def test_a_long_question_is_refused_by_the_chat_api_and_the_cli_too(serve):
    url, root, _ = serve
    sentence = "The question is 2001 characters long; at most 2000 are allowed."
    assert sentence in gradio_error(url, "y" * 2001, api_name="/ask")
    r = httpx.post(url + "/api/ask", json={"question": "y" * 2001}, timeout=60)
    assert (r.status_code, r.json()) == (400, {"detail": sentence})
    assert mcp_call(url, "ask", {"question": "y" * 2001})[:2] == (True, sentence)
    proc = cli(root, "ask", "y" * 2001)
    assert proc.returncode == 2 and proc.stderr.strip() == f"azchat: {sentence}"


@pytest.mark.parametrize("path", ["binary.md", "nope.md", "later.md"])
def test_files_that_are_not_indexed_notes_get_one_error_on_every_surface(serve, path):
    url, root, _ = serve
    if path == "later.md":
        write(root / "notes", "later.md", b"\x00" * 30_000_000)       # new, and too big to index
    sentence = f"{path!r} {NOT_INDEXED}"
    r = httpx.get(f"{url}/api/notes/{path}", timeout=60)
    assert (r.status_code, r.json()) == (404, {"detail": sentence})
    assert mcp_call(url, "get", {"path": path})[:2] == (True, sentence)
    assert sentence in gradio_error(url, path, 1, api_name="/section")


def test_a_written_answer_over_rest_and_mcp_carries_no_forged_source_or_image(serve):
    url, _, llm = serve
    r = httpx.post(url + "/api/ask", json={"question": QUESTION, "mode": "generative"}, timeout=120)
    assert r.status_code == 200
    out = r.json()
    assert out["mode"] == "generative" and out["model"] == "obedient-model"
    assert_clean(out["answer"])
    assert "ALL_PASSAGES" in llm.requests[-1].body["messages"][1]["content"]      # the model saw the note
    is_error, _, data = mcp_call(url, "ask", {"question": QUESTION, "mode": "generative"})
    assert not is_error and data["mode"] == "generative"
    assert_clean(data["answer"])
