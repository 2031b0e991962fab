"""The one door of `azchat serve`: an ASGI middleware in front of every route (the chat's pages, Gradio's API
and file routes, /api with its docs, /mcp), so that no route can be added without it.

1. DNS rebinding: the Host header must name an address azchat listens on (or a loopback name, or a name in
   AZCHAT_ALLOWED_HOSTS), else 421; an Origin header, where sent, must name one of those too, else 403.
2. AZCHAT_AUTH: with a password set, every request needs it, as HTTP Basic credentials (API clients, curl,
   MCP clients) or as the session cookie that signing in on the sign-in page (POST /login, the form Gradio's
   own client posts too) gives; else 401 with one sentence, and a browser asking for a page gets the sign-in
   form (status 401).
"""
from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import json
import os
import secrets
import socket
from urllib.parse import parse_qsl, urlsplit

AUTH_HINT = "Sign in with the AZCHAT_AUTH user and password (HTTP Basic, e.g. curl -u user:password)."
CHALLENGE = 'Basic realm="azchat", charset="UTF-8"'
COOKIE = "azchat-session"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
WILDCARDS = ("", "0.0.0.0", "::")
MAX_FORM_BYTES = 16_384
MAX_SESSIONS = 1000


def credentials_ok(authorization: str | None, auth: tuple[str, str] | None) -> bool:
    """Whether an Authorization header carries the AZCHAT_AUTH user and password (always true without auth)."""
    if auth is None:
        return True
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return bool(sep) & _same(user, auth[0]) & _same(password, auth[1])


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def allowed_hosts_from_env(value: str | None = None) -> list[str]:
    """AZCHAT_ALLOWED_HOSTS: comma-separated host names (or addresses) the server may be reached by."""
    value = os.environ.get("AZCHAT_ALLOWED_HOSTS", "") if value is None else value
    return [_bare(h) for h in value.split(",") if _bare(h)]


def _bare(host: str) -> str:
    """A host without port, brackets, trailing dot or case: "[::1]:7860" -> "::1", "Box.lan.:80" -> "box.lan"."""
    host = host.strip().lower()
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class HostCheck:
    """Which Host / Origin names a server listening on `listen` answers to."""

    def __init__(self, listen: str, extra: list[str] | tuple[str, ...] = ()):
        self.listen = _bare(listen)
        self.names = set(LOOPBACK_NAMES) | {_bare(h) for h in extra if _bare(h)}
        self.any_address = self.listen in WILDCARDS
        if self.any_address:
            self.names.add(socket.gethostname().lower())
        else:
            self.names.add(self.listen)

    def allow(self, host: str) -> None:
        """Also answer to this name (the public share link's host)."""
        if _bare(host):
            self.names.add(_bare(host))

    def host_ok(self, host: str) -> bool:
        """A name rebinding cannot forge: one of ours, or (listening on every address) any IP address: a page
        can only rebind a name, and an address in the Host header is the address the browser connected to."""
        name = _bare(host)
        return bool(name) and (name in self.names or (self.any_address and _is_ip(name)))

    def origin_ok(self, origin: str) -> bool:
        parts = urlsplit(origin.strip())
        return parts.scheme in ("http", "https") and self.host_ok(parts.netloc.rpartition("@")[2])

    def describe(self) -> str:
        names = sorted(self.names) + (["any IP address"] if self.any_address else [])
        return ", ".join(names)


SIGN_IN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>azchat: sign in</title>
<style>
body { font-family: system-ui, sans-serif; display: flex; justify-content: center; margin-top: 12vh; }
form { display: flex; flex-direction: column; gap: 10px; width: 280px; }
input, button { font-size: 1rem; padding: 6px 8px; }
#azchat-signin-error { color: #b91c1c; min-height: 1.2em; }
</style></head>
<body><form id="azchat-signin" method="post" action="login">
<h2>azchat: sign in</h2>
<label for="azchat-user">Username</label><input id="azchat-user" name="username" autocomplete="username" required>
<label for="azchat-password">Password</label>
<input id="azchat-password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Login</button><div id="azchat-signin-error" role="alert"></div>
</form>
<script>
document.getElementById("azchat-signin").addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = new URLSearchParams(new FormData(event.target));
  const r = await fetch("login", {method: "POST", body, credentials: "same-origin"});
  if (r.ok) { location.reload(); return; }
  document.getElementById("azchat-signin-error").textContent = "Wrong user name or password.";
});
</script></body></html>
"""


class Gate:
    """ASGI middleware: the Host/Origin check, then AZCHAT_AUTH, for every HTTP and websocket request."""

    def __init__(self, app, auth: tuple[str, str] | None = None, hosts: HostCheck | None = None,
                 basic_only: bool = False):
        self.app = app
        self.auth = auth
        self.hosts = hosts or HostCheck("127.0.0.1")
        self.sessions: dict[str, None] = {}          # session cookie values handed out (oldest first)
        # basic_only: HTTP Basic and nothing else (serve --workers' API port: a sign-in cookie would be known to
        # one worker only, so no sign-in page, no /login, and no Gradio whose first call comes unauthenticated)
        self.basic_only = basic_only
        self.startup_call = not basic_only   # Gradio's launch() calls startup-events once without credentials

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)     # lifespan
            return
        headers = {}
        for key, value in scope.get("headers") or []:
            headers.setdefault(key.decode("latin-1").lower(), value.decode("latin-1"))
        host = headers.get("host", "")
        if not self.hosts.host_ok(host):
            await self._refuse(scope, send, 421, f"This server answers only to {self.hosts.describe()}, "
                               f"not to the host {_bare(host)[:100]!r}; set AZCHAT_ALLOWED_HOSTS to add a name.")
            return
        origin = headers.get("origin")
        if origin is not None and not self.hosts.origin_ok(origin):
            await self._refuse(scope, send, 403, f"Requests from pages of other sites are refused "
                               f"(origin {origin[:100]!r}).")
            return
        if self.auth is None:
            await self.app(scope, receive, send)
            return
        path, method = scope.get("path", "").rstrip("/"), scope.get("method", "GET")
        if self.startup_call and scope["type"] == "http" and path == "/gradio_api/startup-events":
            self.startup_call = False      # its own first call (it answers a bool); the door closes after it
            await self.app(scope, receive, send)
            return
        if scope["type"] == "http" and method == "POST" and path == "/login":
            if self.basic_only:
                await self._refuse(scope, send, 404, "This port takes HTTP Basic credentials; sign in to the chat "
                                                     "on its own port.")
            else:
                await self._sign_in(scope, receive, send)   # the one route that takes the password itself
            return
        if credentials_ok(headers.get("authorization"), self.auth) or self._session(headers.get("cookie", "")):
            if scope["type"] == "http" and path == "/logout":
                await self._sign_out(send, headers)
                return
            scope["azchat.signed_in"] = True              # rest.py's own check trusts it
            await self.app(scope, receive, send)
            return
        page = method in ("GET", "HEAD") and "text/html" in headers.get("accept", "") and not self.basic_only
        await self._refuse(scope, send, 401, AUTH_HINT, page=page)

    # -- sessions ---------------------------------------------------------------------------------
    def _session(self, cookie_header: str) -> bool:
        for part in cookie_header.split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE and value:
                return any(_same(value, known) for known in list(self.sessions))
        return False

    async def _sign_in(self, scope, receive, send) -> None:
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > MAX_FORM_BYTES:
                await self._refuse(scope, send, 413, "The sign-in form is too large.")
                return
        form = _form(scope, body)
        user, password = form.get("username", "").strip(), form.get("password", "")
        if not (_same(user, self.auth[0]) & _same(password, self.auth[1])):
            await _json(send, 400, {"detail": "Incorrect credentials."})
            return
        token = secrets.token_urlsafe(32)
        self.sessions[token] = None
        while len(self.sessions) > MAX_SESSIONS:
            self.sessions.pop(next(iter(self.sessions)))
        cookie = f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
        await _json(send, 200, {"success": True}, [(b"set-cookie", cookie.encode())])

    async def _sign_out(self, send, headers) -> None:
        for part in headers.get("cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE:
                self.sessions.pop(value, None)
        cookie = f"{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"
        await send({"type": "http.response.start", "status": 303,
                    "headers": [(b"location", b"/"), (b"set-cookie", cookie.encode()), (b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})

    # -- answers ----------------------------------------------------------------------------------
    async def _refuse(self, scope, send, status: int, sentence: str, page: bool = False) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": sentence[:120]})
            return
        extra = [(b"www-authenticate", CHALLENGE.encode())] if status == 401 and not page else []
        if page:
            data = SIGN_IN_PAGE.encode()
            await send({"type": "http.response.start", "status": status, "headers": [
                (b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(data)).encode()),
                (b"cache-control", b"no-store")]})
            await send({"type": "http.response.body", "body": data if scope.get("method") != "HEAD" else b""})
            return
        await _json(send, status, {"detail": sentence}, extra)


def _form(scope, body: bytes) -> dict[str, str]:
    """The sign-in form's fields, url-encoded (our page, gradio_client) or multipart (a browser's FormData)."""
    ctype = dict(scope.get("headers") or []).get(b"content-type", b"").decode("latin-1")
    if ctype.startswith("multipart/form-data"):
        from email.parser import BytesParser
        from email.policy import default

        msg = BytesParser(policy=default).parsebytes(f"Content-Type: {ctype}\r\n\r\n".encode() + body)
        out = {}
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name:
                out[name] = part.get_content() if isinstance(part.get_content(), str) else ""
        return out
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        return {}


async def _json(send, status: int, obj: dict, headers: list | None = None) -> None:
    data = json.dumps(obj).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": data})
