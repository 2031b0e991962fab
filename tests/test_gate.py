"""The Gate (gate.py) in front of every route of `azchat serve`, over real HTTP: AZCHAT_AUTH on every route of
the app's route table (the chat's pages, Gradio's API and file routes, /api with its docs, /mcp), so a route
added later cannot be forgotten; the sign-in cookie; and DNS rebinding (Host, Origin) on every surface of a
real `azchat serve` started with the defaults (127.0.0.1, no password)."""
from __future__ import annotations

import json
import re

import httpx
import pytest

from azchat.apps import gate
from azchat.index.embedding import HashEmbedder
from azchat.apps.gate import AUTH_HINT, HostCheck, allowed_hosts_from_env
from azchat.apps.service import NotesService
from azchat.apps.tools import NotesTools
from conftest import copy_real_index, free_port, start_serve, stop_serve, write_fixture_vault

AUTH = ("ann", "s3cret: pass")
SIGN_IN = {"/login", "/login/"}       # the one route that takes the password itself (POST)


def route_table(routes, prefix=""):
    """(kind, path, methods) of every route, through mounts and included routers."""
    from starlette.routing import Mount

    for r in routes:
        if hasattr(r, "effective_route_contexts"):          # FastAPI's included routers (Gradio's /gradio_api)
            for c in r.effective_route_contexts():
                route = c.original_route
                yield type(route).__name__, prefix + c.path, sorted(getattr(route, "methods", None) or [])
        elif isinstance(r, Mount):
            yield from route_table(r.routes, prefix + r.path)
        else:
            yield type(r).__name__, prefix + r.path, sorted(getattr(r, "methods", None) or [])


def concrete(path: str) -> str:
    """A request path for a route path: each {parameter} filled in."""
    return re.sub(r"\{[^}]+\}", "x", path)


@pytest.fixture(scope="module")
def app_with_auth(tmp_path_factory):
    """The real serve app (chat, Gradio API, /api, /mcp, the Gate) on a free port, in this process so that
    its route table can be walked; the fake embedder keeps it fast."""
    from azchat.apps import ui
    from azchat.apps.server import serve_kwargs

    root = tmp_path_factory.mktemp("gate")
    write_fixture_vault(root / "notes")
    svc = NotesService(root / "notes", root / "index", embedder=HashEmbedder())
    svc.open()
    tools = NotesTools(svc, refresh_every=None).opened()
    app, url = ui.start(svc, port=free_port(), app_kwargs=serve_kwargs(tools, AUTH, "127.0.0.1"))
    try:
        yield app, url.rstrip("/")
    finally:
        app.close()


def _json_or_text(r):
    try:
        return json.loads(r.body)
    except ValueError:
        return r.body[:200].decode("utf-8", "replace")


class Answer:
    """Status, headers and the first bytes of a response: an open door may be an endless event stream."""

    def __init__(self, status_code, headers, body):
        self.status_code, self.headers, self.body = status_code, headers, body


def send(client, method, path, **kwargs) -> Answer:
    with client.stream(method, path, **kwargs) as r:
        body = b""
        if r.status_code in (401, 403, 421):         # the Gate's answers are small and whole
            body = r.read()
        return Answer(r.status_code, r.headers, body)


def requests_for(app):
    out = []
    for kind, path, methods in route_table(app.server_app.routes):
        for method in methods or ["GET", "POST"]:        # a mounted ASGI app (/mcp) takes any method
            out.append((kind, method, path))
    return out


def test_every_route_of_the_route_table_needs_the_password(app_with_auth):
    app, url = app_with_auth
    calls = requests_for(app)
    paths = {p for _, _, p in calls}
    # the walk sees every surface: the chat, Gradio's API and files, the REST API with its docs, MCP
    assert {"/", "/config", "/gradio_api/info", "/gradio_api/file={path_or_url:path}", "/api/search",
            "/api/openapi.json", "/api/docs", "/api/redoc", "/api/docs/oauth2-redirect", "/mcp"} <= paths
    assert len(calls) > 60
    open_doors = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for kind, method, path in calls:
            if path in SIGN_IN:
                continue
            if "WebSocket" in kind:
                r = send(client, "GET", concrete(path), headers={"connection": "upgrade", "upgrade": "websocket",
                                                        "sec-websocket-version": "13",
                                                        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ=="})
                if r.status_code != 403:
                    open_doors.append((method, path, r.status_code))
                continue
            r = send(client, method, concrete(path), headers={"accept": "application/json"})
            said = {"detail": AUTH_HINT} if method == "HEAD" else _json_or_text(r)      # HEAD: no body
            if r.status_code != 401 or said != {"detail": AUTH_HINT} or \
                    not r.headers.get("www-authenticate", "").startswith("Basic"):
                open_doors.append((method, path, r.status_code))
    assert open_doors == []


def test_every_route_refuses_a_foreign_host_even_with_the_password(app_with_auth):
    app, url = app_with_auth
    wrong = []
    with httpx.Client(base_url=url, timeout=30, auth=AUTH) as client:
        for kind, method, path in requests_for(app):
            r = send(client, method, concrete(path), headers={"host": "evil.example"})
            if r.status_code != 421 or method != "HEAD" and "evil.example" not in str(_json_or_text(r)):
                wrong.append((method, path, r.status_code))
    assert wrong == []


def test_the_sign_in_route_only_checks_the_password(app_with_auth):
    _, url = app_with_auth
    r = httpx.post(url + "/login", data={"username": "ann", "password": "guess"})
    assert r.status_code == 400 and r.json() == {"detail": "Incorrect credentials."} and "set-cookie" not in r.headers
    assert httpx.post(url + "/login", data={"username": "bob", "password": AUTH[1]}).status_code == 400
    assert httpx.post(url + "/login").status_code == 400


def test_with_the_password_the_surfaces_answer(app_with_auth):
    _, url = app_with_auth
    with httpx.Client(base_url=url, timeout=60, auth=AUTH) as client:
        for path in ["/", "/config", "/gradio_api/info", "/api/status", "/api/openapi.json", "/api/docs",
                     "/api/redoc", "/api/search?q=peering&k=1"]:
            assert client.get(path).status_code == 200, path
        ping = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "status", "arguments": {}}}
        r = client.post("/mcp", json=ping, headers={"accept": "application/json, text/event-stream"})
        assert r.status_code == 200 and r.json()["result"]["structuredContent"]["ready"] is True


def test_a_browser_gets_the_sign_in_form_then_a_cookie_that_opens_every_surface(app_with_auth):
    _, url = app_with_auth
    page = httpx.get(url + "/", headers={"accept": "text/html"})
    assert page.status_code == 401 and "<form" in page.text and 'name="password"' in page.text
    assert "azchat-question" not in page.text and "www-authenticate" not in page.headers   # no native dialog
    with httpx.Client(base_url=url, timeout=60) as client:
        r = client.post("/login", data={"username": AUTH[0], "password": AUTH[1]})
        assert r.status_code == 200 and "HttpOnly" in r.headers["set-cookie"]
        assert "SameSite=Strict" in r.headers["set-cookie"]
        for path in ["/config", "/api/status", "/api/docs", "/api/openapi.json"]:
            assert client.get(path).status_code == 200, path
        token = client.cookies[gate.COOKIE]
        assert client.get("/logout", follow_redirects=False).status_code == 303
    with httpx.Client(base_url=url, timeout=60, cookies={gate.COOKIE: token}) as client:
        assert client.get("/api/status").status_code == 401             # signed out: the old cookie is void
    with httpx.Client(base_url=url, timeout=60, cookies={gate.COOKIE: "made-up"}) as client:
        assert client.get("/api/status").status_code == 401


def test_host_check_names():
    local = HostCheck("127.0.0.1")
    assert local.host_ok("127.0.0.1:7860") and local.host_ok("localhost:7860") and local.host_ok("[::1]:7860")
    assert local.host_ok("LOCALHOST.") and not local.host_ok("") and not local.host_ok("evil.example:7860")
    assert not local.host_ok("10.0.0.5:7860")            # not an address it listens on
    assert local.origin_ok("http://localhost:3000") and not local.origin_ok("null")
    assert not local.origin_ok("http://evil.example") and not local.origin_ok("file://")
    assert not local.origin_ok("http://127.0.0.1.evil.example")
    everywhere = HostCheck("0.0.0.0", ["notes.lan"])
    assert everywhere.host_ok("10.0.0.5:7860") and everywhere.host_ok("[fe80::1]:80")
    assert everywhere.host_ok("notes.lan:7860") and not everywhere.host_ok("evil.example")
    assert HostCheck("192.168.1.5").host_ok("192.168.1.5:7860")
    assert allowed_hosts_from_env(" Notes.lan:7860, ,[::2] ") == ["notes.lan", "::2"]


# -- DNS rebinding against a real `azchat serve` with the defaults -------------------------------------------
@pytest.fixture(scope="module")
def default_server(real_index, tmp_path_factory):
    root = tmp_path_factory.mktemp("rebind")
    copy_real_index(real_index, root)
    proc, ready, _ = start_serve(root, root / "notes", env={"AZCHAT_ALLOWED_HOSTS": "notes.lan"})
    try:
        assert ready["auth"] is False and ready["host"] == "127.0.0.1"
        yield ready["url"].rstrip("/")
    finally:
        stop_serve(proc, 30)


MCP_CALL = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "search", "arguments": {"query": "peering", "k": 1}}}
SURFACES = [  # (method, path, json body): REST, MCP, the Gradio app and its API
    ("GET", "/api/search?q=peering&k=1", None),
    ("GET", "/api/notes/networking.md", None),
    ("POST", "/api/ask", {"question": "how do I peer two virtual networks"}),
    ("POST", "/mcp", MCP_CALL),
    ("GET", "/", None),
    ("GET", "/config", None),
    ("GET", "/gradio_api/info", None),
    ("POST", "/gradio_api/call/search", {"data": ["peering", 1]}),
]


@pytest.mark.slow
@pytest.mark.parametrize("method, path, body", SURFACES)
def test_a_rebound_name_or_a_foreign_page_cannot_read_the_notes(default_server, method, path, body):
    """A page on evil.example that rebinds its name to 127.0.0.1 sends Host: evil.example (421); a page that
    posts across sites sends its Origin (403). The same request from here, or by an allowed name, works."""
    headers = {"accept": "application/json, text/event-stream"}

    def send(**extra):
        return httpx.request(method, default_server + path, json=body, headers={**headers, **extra}, timeout=120)

    r = send(host="evil.example")
    assert r.status_code == 421 and "AZCHAT_ALLOWED_HOSTS" in r.json()["detail"], (path, r.status_code)
    assert "peering" not in r.text.lower()
    r = send(host="evil.example:7860", origin="http://evil.example:7860")
    assert r.status_code == 421, path
    for origin in ["http://evil.example", "null", "http://127.0.0.1.evil.example"]:
        r = send(origin=origin)
        assert r.status_code == 403 and r.json()["detail"].startswith("Requests from pages of other sites"), \
            (path, origin, r.status_code)
    port = default_server.rsplit(":", 1)[1]
    assert send().status_code == 200, path
    assert send(origin=default_server).status_code == 200, path                # the chat's own page
    assert send(host=f"notes.lan:{port}", origin=f"http://notes.lan:{port}").status_code == 200, path
