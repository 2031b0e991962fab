"""A scripted OpenAI-compatible chat endpoint on 127.0.0.1 for the tests: real HTTP, `/chat/completions` with
and without `stream: true` (server-sent events), an optional required key, delays and stalls for timeouts.
It records every request (path, headers, JSON body) so tests can check what the model was sent."""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    content: str = ""
    status: int = 200
    delay: float = 0.0             # seconds before any byte of the answer
    stall_after: int | None = None  # streaming: stop sending after this many characters, then wait `stall`
    stall: float = 0.0
    refusal: str | None = None
    finish_reason: str = "stop"
    piece: int = 5                 # characters per streamed chunk


@dataclass
class Request:
    path: str
    headers: dict
    body: dict


class ScriptedLLM:
    def __init__(self, key: str | None = None, default: str = "No script for this request.", responder=None):
        self.key = key
        self.default = default
        self.responder = responder     # body -> reply text, when no scripted reply is queued
        self.replies: list[Reply] = []
        self.requests: list[Request] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def script(self, *replies) -> None:
        self.replies.extend(r if isinstance(r, Reply) else Reply(r) for r in replies)

    def start(self) -> "ScriptedLLM":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _next(self, body: dict) -> Reply:
        if self.replies:
            return self.replies.pop(0)
        return Reply(self.responder(body) if self.responder else self.default)

    def _handler(self):
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):      # keep the test output quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                owner.requests.append(Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                if not self.path.split("?")[0].endswith("/chat/completions"):
                    return self._json(404, {"error": {"message": f"no route {self.path}"}})
                if owner.key is not None:
                    given = self.headers.get("Authorization", "").removeprefix("Bearer ") \
                        or self.headers.get("api-key", "")
                    if given != owner.key:       # like the real service, the error echoes the key it got
                        return self._json(401, {"error": {"message": f"Incorrect API key provided: {given}.",
                                                          "type": "invalid_request_error",
                                                          "code": "invalid_api_key"}})
                reply = owner._next(body)
                time.sleep(reply.delay)
                if reply.status != 200:
                    return self._json(reply.status, {"error": {"message": reply.content, "type": "server_error"}})
                try:
                    if body.get("stream"):
                        self._stream(body, reply)
                    else:
                        self._json(200, _completion(body, reply))
                except (BrokenPipeError, ConnectionResetError):
                    pass                         # the client gave up (a timeout test)

            def _json(self, status: int, obj: dict) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, body: dict, reply: Reply) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                text = reply.content
                limit = len(text) if reply.stall_after is None else reply.stall_after
                deltas = [{"role": "assistant", "content": ""}]
                deltas += [{"content": text[i:min(i + reply.piece, limit)]} for i in range(0, limit, reply.piece)]
                if reply.refusal is not None:
                    deltas.append({"refusal": reply.refusal})
                for delta in deltas:
                    self._event(_chunk(body, delta, None))
                if reply.stall_after is not None:
                    time.sleep(reply.stall)
                self._event(_chunk(body, {}, reply.finish_reason))
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True

            def _event(self, obj: dict) -> None:
                self.wfile.write(b"data: " + json.dumps(obj).encode() + b"\n\n")
                self.wfile.flush()

        return Handler


def _completion(body: dict, reply: Reply) -> dict:
    return {"id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", ""),
            "choices": [{"index": 0, "finish_reason": reply.finish_reason, "logprobs": None,
                         "message": {"role": "assistant", "content": reply.content if reply.refusal is None else None,
                                     "refusal": reply.refusal}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


def _chunk(body: dict, delta: dict, finish: str | None) -> dict:
    return {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": body.get("model", ""),
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
