"""One process of `azchat serve --workers N` (apps/workers.py starts them): a REST/MCP worker on the shared
socket, or the Gradio chat on its own port. Every one follows the index's CURRENT and opens the new generation
another process wrote; worker 1 runs the watcher with --watch. Started afresh as `python -m azchat.apps.worker`
(settings as JSON in AZCHAT_WORKER_CONFIG) or forked from the supervisor (run_child)."""
from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

from ..errors import AzchatError

CONFIG_ENV = "AZCHAT_WORKER_CONFIG"
FOLLOW_SECONDS = 0.5       # how often every process looks at CURRENT
STOP_GRACE = 20.0          # seconds the workers get to finish after SIGTERM before SIGKILL
WORKER_HEADER = "x-azchat-worker"
BACKLOG = 2048             # connections the kernel queues for the workers


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Follower:
    """Opens the index's new generation when another process wrote it: reads CURRENT every `every` seconds."""

    def __init__(self, service, every: float = FOLLOW_SECONDS, log=_say):
        self.service, self.every, self.log = service, every, log
        self._stop = threading.Event()
        self._seen = self._current()
        self.reloads = 0

    def _current(self) -> bytes | None:
        try:
            return (self.service.index_dir / "CURRENT").read_bytes()
        except OSError:
            return None

    def _open_already(self, current: bytes) -> bool:
        """Whether this process has that generation open (its own rebuild or watcher swapped it in)."""
        name = current.decode("utf-8", "replace").split()[:1]
        gen = getattr(self.service.retriever, "_gen", None)
        return bool(name) and getattr(getattr(gen, "folder", None), "name", None) == name[0]

    def check(self) -> None:
        current = self._current()
        if current is None or current == self._seen or self.service.rebuilding:
            return                   # unchanged, or this process's own rebuild is about to swap it in
        try:
            if not self._open_already(current):
                self.service.reload()
                self.reloads += 1
            self._seen = current
        except Exception as exc:     # a half-pruned or damaged generation: keep answering, try again later
            self.log(f"azchat: could not open the index's new generation yet: {exc}")

    def start(self) -> "Follower":
        def run():
            while not self._stop.wait(self.every):
                self.check()

        threading.Thread(target=run, name="azchat-follow", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()


def _orphan_guard(parent: int) -> None:
    """Stop this worker (as on SIGTERM) when its supervisor is gone, e.g. killed with SIGKILL."""
    def run():
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=run, name="azchat-orphan-guard", daemon=True).start()


class _WorkerTag:
    """Adds the worker's number to every response that passed the Gate (so a client can tell workers apart)."""

    def __init__(self, app, number: int):
        self.app, self.value = app, str(number).encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def tagged(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (WORKER_HEADER.encode(),
                                                                                  self.value)]}
            await send(message)

        await self.app(scope, receive, tagged)


def build_worker_app(tools, auth, host: str, hosts, number: int, chat_url: str | None):
    """The ASGI app of one worker: /api and /mcp (rest.serve_kwargs) behind the Gate, / says where things are."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse
    from starlette.middleware import Middleware
    from starlette.routing import Route

    from .gate import Gate
    from .server import serve_kwargs

    kwargs = serve_kwargs(tools, auth, host, hosts)

    def root(request):
        where = f"; the chat is at {chat_url}" if chat_url else ""
        return JSONResponse({"detail": f"This port serves the REST API at /api (docs at /api/docs) and MCP at "
                                       f"/mcp{where}."})

    kwargs["routes"] = [*kwargs["routes"], Route("/", root)]
    kwargs["middleware"] = [Middleware(Gate, auth=auth, hosts=hosts, basic_only=True),
                            Middleware(_WorkerTag, number=number)]
    return FastAPI(docs_url=None, redoc_url=None, openapi_url=None, **kwargs)


def _open_service(cfg: dict):
    from .service import NotesService

    embedder = None
    if cfg.get("export"):
        from ..index.onnx_embedding import OnnxEmbedder

        embedder = OnnxEmbedder(Path(cfg["export"])).prefetch()      # the weights mapped, not copied
    service = NotesService(cfg["notes"], cfg["index"], model=cfg["model"], reranker=cfg["reranker"],
                           embedder=embedder)
    service.open(log=_say)
    return service


def _tell_ready(cfg: dict) -> None:
    os.write(cfg["ready_fd"], f"{cfg['role']} {cfg['worker']} {os.getpid()}\n".encode())


def run_api(cfg: dict) -> int:
    import uvicorn

    from .. import config
    from .gate import HostCheck, allowed_hosts_from_env
    from .tools import NotesTools

    auth = config.auth_from_env()
    sock = socket.socket(fileno=cfg["fd"])
    service = _open_service(cfg)
    follower = Follower(service).start()
    watcher = None
    if cfg["watch"]:
        from ..index.watch import Watcher

        watcher = Watcher(cfg["notes"], cfg["index"], model=cfg["model"], log=_say,
                          embedder=service.retriever.embedder, on_update=lambda stats: service.reload())
        watcher.start(initial_build=False)
        _say(f"Worker {cfg['worker']} is watching {watcher.notes_dir} for changes.")
    tools = NotesTools(service, refresh_every=cfg["refresh"], log=_say).opened()
    hosts = HostCheck(cfg["host"], allowed_hosts_from_env())
    app = build_worker_app(tools, auth, cfg["host"], hosts, cfg["worker"], cfg["chat_url"])
    # backlog=1: asyncio then accepts one connection per wake-up instead of every one waiting, so a burst of
    # new connections is spread over the workers (an idle worker wakes first) instead of going to one of them
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False, loop="asyncio",
                                           backlog=1, timeout_graceful_shutdown=STOP_GRACE / 2))

    def announce():
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started:
            sock.listen(BACKLOG)     # asyncio set the shared socket's queue to `backlog`: give it its length back
            _tell_ready(cfg)

    threading.Thread(target=announce, name="azchat-ready", daemon=True).start()
    try:
        server.run(sockets=[sock])      # SIGINT/SIGTERM: finish the requests in flight, then return
    finally:
        follower.stop()
        if watcher is not None:
            watcher.stop()
    return 0


def run_chat(cfg: dict) -> int:
    """The Gradio chat (with /api and /mcp beside it, as a plain `azchat serve`) in one process of its own."""
    from .. import config
    from .gate import HostCheck, allowed_hosts_from_env
    from .server import serve_kwargs
    from .tools import NotesTools

    auth = config.auth_from_env()
    service = _open_service(cfg)
    follower = Follower(service).start()
    from .ui import launch

    tools = NotesTools(service, refresh_every=cfg["refresh"], log=_say).opened()
    hosts = HostCheck(cfg["host"], allowed_hosts_from_env())
    try:
        launch(service, host=cfg["host"], port=cfg["chat_port"], on_ready=lambda url: _tell_ready(cfg),
               app_kwargs=serve_kwargs(tools, auth, cfg["host"], hosts), hosts=hosts)
    finally:
        follower.stop()
    return 0


def main() -> int:
    return run_child(json.loads(os.environ.pop(CONFIG_ENV)))


def run_child(cfg: dict) -> int:
    """A child of the supervisor, started afresh (`python -m azchat.apps.worker`) or forked from it."""
    _orphan_guard(cfg["parent"])
    # the signals stop uvicorn or the chat; until then (the index opening) they end the process quietly
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    try:
        return (run_api if cfg["role"] == "api" else run_chat)(cfg)
    except KeyboardInterrupt:
        return 0
    except AzchatError as exc:
        _say(f"azchat: {exc}")
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
