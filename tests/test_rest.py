"""The REST API and MCP over HTTP on `azchat serve` for real (subprocess, real model, AZCHAT_AUTH set), driven
with an HTTP client: the CLI's JSON shapes, line numbers, HTTP errors with one sentence, auth, traversal, the
OpenAPI docs, the MCP tools over streamable HTTP once, and the Gradio API still there."""
from __future__ import annotations


import anyio
import httpx
import pytest

from conftest import assert_span, copy_real_index, file_lines, start_serve, stop_serve

pytestmark = pytest.mark.slow

AUTH = ("ann", "s3cret: pass")        # a password with a colon and a space


@pytest.fixture(scope="module")
def server(real_index, tmp_path_factory):
    root = tmp_path_factory.mktemp("rest")
    copy_real_index(real_index, root)
    (root / "outside.md").write_text("# Outside\n\nsecret text\n")
    proc, ready, err = start_serve(root, root / "notes", env={"AZCHAT_AUTH": ":".join(AUTH)})
    try:
        assert ready["auth"] is True
        with httpx.Client(base_url=ready["url"].rstrip("/"), auth=AUTH, timeout=60) as client:
            yield client, root / "notes"
    finally:
        stop_serve(proc, 30)


def detail(r) -> str:
    message = r.json()["detail"]
    assert isinstance(message, str) and message.endswith(".") and "\n" not in message
    return message


def test_auth_is_required_when_azchat_auth_is_set(server):
    client, _ = server
    base = str(client.base_url)
    for method, path in [("GET", "/api/status"), ("GET", "/api/search?q=vnet"), ("POST", "/api/ask"),
                         ("GET", "/api/notes/networking.md"), ("POST", "/mcp"), ("GET", "/api/openapi.json"),
                         ("GET", "/api/docs"), ("GET", "/api/redoc"), ("GET", "/api/docs/oauth2-redirect"),
                         ("GET", "/openapi.json"), ("GET", "/"), ("GET", "/config"), ("GET", "/gradio_api/info"),
                         ("GET", "/gradio_api/file=notes/networking.md"), ("GET", "/theme.css"),
                         ("POST", "/gradio_api/call/search")]:
        r = httpx.request(method, base + path, json={"question": "vnet"} if method == "POST" else None)
        assert r.status_code == 401, (method, path, r.status_code)
        assert r.headers["www-authenticate"].startswith("Basic")
        assert "AZCHAT_AUTH" in detail(r)
    assert httpx.get(base + "/api/status", auth=("ann", "wrong")).status_code == 401
    assert httpx.get(base + "/api/status", auth=("bob", AUTH[1])).status_code == 401
    assert httpx.get(base + "/api/status", headers={"Authorization": "Basic !!notbase64"}).status_code == 401
    assert client.get("/api/status").status_code == 200


def test_search_has_the_cli_shape_and_real_line_numbers(server):
    client, notes = server
    r = client.get("/api/search", params={"q": "how do I peer two virtual networks", "k": 3})
    assert r.status_code == 200
    out = r.json()
    assert set(out) == {"query", "hits", "truncated", "omitted_hits"} and len(out["hits"]) == 3
    assert out["hits"][0]["path"] == "networking.md"
    for h in out["hits"]:
        assert set(h) == {"rank", "path", "title", "heading", "start_line", "end_line", "score", "text"}
        assert_span(notes, h["path"], h["start_line"], h["end_line"], h["text"].splitlines()[0])
    only = client.get("/api/search", params={"q": "redundancy copies", "k": 10, "tag": "storage"}).json()
    assert {h["path"] for h in only["hits"]} == {"storage/storage.md"}
    folder = client.get("/api/search", params={"q": "network", "folder": "ml"}).json()
    assert {h["path"] for h in folder["hits"]} == {"ml/machine learning.md"}


def test_ask_by_get_and_post(server):
    client, notes = server
    q = "how do I peer two virtual networks"
    by_get = client.get("/api/ask", params={"q": q})
    by_post = client.post("/api/ask", json={"question": q, "tag": ["azure"]})
    assert by_get.status_code == by_post.status_code == 200
    a = by_get.json()
    assert set(a) == {"question", "answer", "found", "citations", "truncated"} and a["found"] is True
    assert by_post.json()["citations"] == a["citations"]
    for c in a["citations"]:
        assert 1 <= c["start_line"] <= c["end_line"] <= len(file_lines(notes, c["path"]))


def test_notes_returns_numbered_lines(server):
    client, notes = server
    r = client.get("/api/notes/storage/storage.md", params={"start": 6, "end": 8})
    assert r.status_code == 200
    out = r.json()
    assert [x["line"] for x in out["lines"]] == [6, 7, 8]
    assert [x["text"] for x in out["lines"]] == file_lines(notes, "storage/storage.md")[5:8]
    spaced = client.get("/api/notes/ml/machine%20learning.md")
    assert spaced.status_code == 200 and spaced.json()["total_lines"] == len(file_lines(notes, "ml/machine learning.md"))


@pytest.mark.parametrize("path, status, message", [
    ("/api/search?q=", 400, "empty"),
    ("/api/search?q=%20%20", 400, "empty"),
    ("/api/search?q=vnet&k=0", 400, "between 1 and 50"),
    ("/api/search?q=vnet&k=1000000", 400, "between 1 and 50"),
    ("/api/search?q=vnet&k=many", 400, "k:"),
    ("/api/ask", 400, "empty"),
    ("/api/notes/networking.md?start=9999", 400, "past the end"),
    ("/api/notes/networking.md?start=5&end=2", 400, "before start_line"),
    ("/api/notes/%2E%2E/outside.md", 404, "outside the notes folder"),
    ("/api/notes/storage/..%2F..%2Foutside.md", 404, "outside the notes folder"),
    ("/api/notes//etc/passwd", 404, "outside the notes folder"),
    ("/api/notes/nope.md", 404, "is not a note in the index"),
    ("/api/notes/networking.txt", 404, "not a markdown note"),
])
def test_errors_are_status_codes_with_one_sentence(server, path, status, message):
    client, _ = server
    r = client.get(path)
    assert r.status_code == status, (path, r.status_code, r.text[:300])
    assert message in detail(r)


def test_bad_post_bodies_are_400(server):
    client, _ = server
    assert "empty" in detail(client.post("/api/ask", json={"question": ""}))
    r = client.post("/api/ask", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and detail(r)
    r = client.post("/api/ask", json={"tag": "x"})
    assert r.status_code == 400 and "question" in detail(r)


def test_status_and_openapi_docs(server):
    client, _ = server
    st = client.get("/api/status").json()
    assert st["ready"] is True and st["notes"] == 4 and st["chunks"] > 0
    assert st["changed_since_build"]["count"] == 0
    spec = client.get("/api/openapi.json").json()
    assert set(spec["paths"]) == {"/search", "/ask", "/notes/{path}", "/status"}
    assert set(spec["paths"]["/ask"]) == {"get", "post"}
    assert client.get("/api/docs").status_code == 200


def test_mcp_over_streamable_http(server):
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    client, notes = server
    url = str(client.base_url).rstrip("/") + "/mcp"

    async def session():
        async with httpx2.AsyncClient(auth=AUTH, timeout=60) as http:
            async with Client(streamable_http_client(url, http_client=http)) as mcp:
                assert {t.name for t in (await mcp.list_tools()).tools} == {"search", "ask", "get", "status"}
                r = await mcp.call_tool("search", {"query": "how do I peer two virtual networks", "k": 2})
                assert r.is_error is False
                assert r.structured_content["hits"] == client.get(
                    "/api/search", params={"q": "how do I peer two virtual networks", "k": 2}).json()["hits"]
                r = await mcp.call_tool("get", {"path": "../outside.md"})
                assert r.is_error is True and "outside the notes folder" in r.content[0].text

    anyio.run(session)


def test_the_gradio_api_stays(server):
    from gradio_client import Client

    client, _ = server
    gr = Client(str(client.base_url), auth=AUTH, download_files=False, verbose=False)
    out = gr.predict("how do I peer two virtual networks", 2, api_name="/search")
    assert out["hits"][0]["path"] == "networking.md"


def test_mcp_over_http_refuses_a_foreign_host_or_origin(server):
    """DNS rebinding: a page on another site that resolves to 127.0.0.1 must not reach /mcp (the Gate; every
    surface: test_gate.py)."""
    client, _ = server
    ping = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "status", "arguments": {}}}
    accept = {"accept": "application/json, text/event-stream"}
    assert client.post("/mcp", json=ping, headers={**accept, "host": "evil.example"}).status_code == 421
    assert client.post("/mcp", json=ping, headers={**accept, "origin": "http://evil.example"}).status_code == 403
    ok = client.post("/mcp", json=ping, headers=accept)
    assert ok.status_code == 200 and ok.json()["result"]["structuredContent"]["ready"] is True
