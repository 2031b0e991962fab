"""`azchat serve --workers N`: the REST API (/api) and MCP over HTTP (/mcp) answered by N processes that share
one memory-mapped index through the page cache.

Design:
- The supervisor (the `azchat serve` process) checks the configuration, brings the index up to date once (an
  `azchat index` child, so the build's memory goes away with it), binds the listening socket once (so a port in
  use is one clear error) and starts N worker processes that inherit that socket and accept from it in turn. A
  worker that dies does not lose the connections waiting in the queue; the others take them while it is
  restarted. On Linux the workers are forked from the supervisor after it imported their modules (measured on
  ms-azure-docs: 97 MB private per worker instead of 140 MB); elsewhere, or with AZCHAT_WORKERS_SPAWN=1, each is
  `python -m azchat.workers` with its settings as JSON in an environment variable (nothing pickled).
- Every worker serves the same ASGI app as `azchat serve` (rest.serve_kwargs: /api, /mcp) behind the Gate
  (gate.py): the Host/Origin check and AZCHAT_AUTH on every request. Sign-in sessions live in one process's
  memory, so the API port takes HTTP Basic only (a browser gets its own password prompt) and no cookie.
- The Gradio chat keeps its state (queue, events) in one process, so it cannot be spread over workers: it runs
  in one more process of its own on --chat-port (default --port + 1), the whole single-process app as before;
  `--no-chat` leaves it out.
- One builder: with --watch only worker 1 watches the notes and rebuilds. Every process follows the index's
  CURRENT pointer (a read of one small file every half second) and opens the new generation when another process
  wrote it. Without --watch each process indexes changed notes before answering, as `serve` does; the index lock
  makes a second builder wait and then find nothing left to do.
- The embedding model's weights are shared too: the supervisor writes (once, beside the index's ONNX export,
  in a hidden folder) a copy of the export whose weights sit in a file of their own at page-aligned offsets,
  which onnxruntime memory-maps instead of copying into each process (measured: 44 MB private per process
  instead of 119 MB, the same vectors). Where that copy cannot be made, each worker loads the export itself.
- Each worker takes the threads a single `azchat serve` takes (AZCHAT_API_CONCURRENCY, the embedder's): on the
  shared 2-core machine (load 12-13) dividing the cores among the workers measured slower (37.6 asks/s with 2
  workers, median of 3) than not dividing them (49.3; one worker: 39.4), interleaved in the same minutes.
- Ctrl-C or SIGTERM stops every worker (SIGKILL after a grace period); a worker that dies is reported and
  restarted, and one that keeps dying stops the server with exit code 1. A worker whose supervisor is gone
  stops by itself.
"""
from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys
import threading
import time
from pathlib import Path

from .errors import AzchatError

MAX_WORKERS = 64
CONFIG_ENV = "AZCHAT_WORKER_CONFIG"
FOLLOW_SECONDS = 0.5       # how often every process looks at CURRENT
STOP_GRACE = 20.0          # seconds the workers get to finish after SIGTERM before SIGKILL
START_TIMEOUT = 600.0      # seconds a worker may take to open the index
RESTARTS = 5               # a worker that dies this often ...
RESTART_WINDOW = 60.0      # ... within this many seconds stops the server
WORKER_HEADER = "x-azchat-worker"
MAPPED = ".mapped-"        # the shared-weights copy of export folder F is F.parent / (MAPPED + F.name)
BACKLOG = 2048             # connections the kernel queues for the workers
ALIGN = 65536              # weights offsets: a multiple of every page size onnxruntime maps with


def worker_count(value: str) -> int:
    """argparse type of --workers: a whole number from 1 to MAX_WORKERS."""
    try:
        n = int(str(value).strip())
    except ValueError:
        n = 0
    if not 1 <= n <= MAX_WORKERS:
        import argparse

        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_WORKERS}, not {value!r}")
    return n


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# == the supervisor ===========================================================================================
def listen(host: str, port: int) -> socket.socket:
    """The one listening socket every worker inherits."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise AzchatError(f"Cannot listen on {host}:{port}: the port is in use or not allowed; "
                          "choose another --port.") from None
    sock.set_inheritable(True)
    return sock


def _url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("", "0.0.0.0") else ("[::1]" if host == "::" else host)
    return f"http://[{shown}]:{port}/" if ":" in shown and not shown.startswith("[") else f"http://{shown}:{port}/"


class _Child:
    def __init__(self, role: str, number: int):
        self.role, self.number = role, number
        self.proc: _Process | None = None
        self.ready = False
        self.deaths: list[float] = []

    @property
    def name(self) -> str:
        return "the chat process" if self.role == "chat" else f"worker {self.number}"


class _Process:
    """A child process (forked, or started with posix_spawn: no shell, no subprocess module): poll, wait, signal."""

    def __init__(self, pid: int):
        self.pid, self.returncode = pid, None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)      # -N: killed by signal N, as Popen
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"process {self.pid} still runs after {timeout:.0f} s")
            time.sleep(0.05)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def spawn_python(args: list[str], env: dict) -> _Process:
    """This Python with these arguments, started afresh (posix_spawn, no shell): stdin from /dev/null, stdout to
    our stderr (our stdout carries --json lines); inheritable descriptors (the socket, the ready pipe) pass."""
    actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0), (os.POSIX_SPAWN_DUP2, 2, 1)]
    return _Process(os.posix_spawn(sys.executable, [sys.executable, *args], env, file_actions=actions))


def preload() -> None:
    """Import what every worker imports, before forking them (not onnxruntime: it starts a thread when imported,
    and a forked child would lack it); gc.freeze keeps the collector from writing to those objects' pages."""
    import gc
    import importlib

    for name in ("fastapi", "uvicorn", "numpy", "faiss", "tokenizers"):
        importlib.import_module(name)
    for name in ("gate", "mcp_server", "rest", "retrieval", "service", "tools", "onnx_embedding"):
        importlib.import_module(f"{__package__}.{name}")
    gc.collect()
    gc.freeze()


class Supervisor:
    def __init__(self, args, auth):
        from . import config

        self.args, self.auth = args, auth
        self.notes = config.notes_dir(args.notes, args.index)
        self.index = config.index_dir(args.index)
        self.stopping = False
        self.signal_name = ""
        self.sock: socket.socket | None = None
        self.ready_r, self.ready_w = -1, -1
        self.children: list[_Child] = []
        self.buffer = b""
        self.export: Path | None = None
        # fork the workers from here where that is safe (Linux; AZCHAT_WORKERS_SPAWN=1: start each afresh)
        self.fork = sys.platform.startswith("linux") and os.environ.get("AZCHAT_WORKERS_SPAWN", "") in ("", "0")

    # -- the parts ------------------------------------------------------------------------------
    def _settings(self, child: _Child) -> dict:
        a = self.args
        return {"role": child.role, "worker": child.number, "notes": str(self.notes), "index": str(self.index),
                "model": a.model, "reranker": a.reranker, "host": a.host, "port": self.port,
                "chat_port": self.chat_port, "chat_url": self.chat_url,
                "watch": bool(a.watch) and child.role == "api" and child.number == 1,
                "refresh": None if a.watch else 2.0, "parent": os.getpid(), "ready_fd": self.ready_w,
                "fd": self.sock.fileno() if child.role == "api" else None,
                "export": str(self.export) if self.export else None}

    def _spawn(self, child: _Child) -> None:
        child.ready = False
        if self.fork and child.role == "api":
            child.proc = self._fork(child)
            return
        env = {**os.environ, CONFIG_ENV: json.dumps(self._settings(child))}
        child.proc = spawn_python(["-m", "azchat.workers"], env)

    def _fork(self, child: _Child) -> _Process:
        """A worker forked from this process, which imported the worker's modules once (preload): their memory
        stays shared, copy-on-write, instead of every worker importing its own. No thread of ours runs here."""
        cfg = self._settings(child)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid:
            return _Process(pid)
        code = 1
        try:                                     # the child: never returns into the supervisor
            os.close(self.ready_r)
            os.dup2(sys.stderr.fileno(), sys.stdout.fileno())     # stdout is the supervisor's (--json lines)
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.close(devnull)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            code = run_child(cfg)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def _event(self, kind: str, child: _Child, **extra) -> None:
        """A worker started, died or was restarted: a JSON line on stdout with --json, a sentence on stderr."""
        if self.args.json:
            print(json.dumps({"event": kind, "role": child.role, "worker": child.number, **extra}), flush=True)
        if kind == "exited":
            how = (f"was killed by signal {-extra['code']}" if extra["code"] < 0
                   else f"exited with code {extra['code']}")
            _say(f"azchat: {child.name} (pid {extra['pid']}) {how}"
                 + ("; restarting it." if extra.get("restarting") else "."))
        elif kind == "restarted":
            _say(f"azchat: {child.name} is back (pid {extra['pid']}).")

    def _read_ready(self, timeout: float) -> None:
        """Lines "<role> <number> <pid>" from children that listen now."""
        r, _, _ = select.select([self.ready_r], [], [], timeout)
        if not r:
            return
        self.buffer += os.read(self.ready_r, 4096)
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            try:
                role, number, pid = line.decode().split()
            except ValueError:
                continue
            for c in self.children:
                if c.role == role and c.number == int(number) and c.proc is not None and c.proc.pid == int(pid):
                    if not c.ready and c.deaths:
                        self._event("restarted", c, pid=c.proc.pid)
                    c.ready = True

    def _update_index(self) -> None:
        """Build or update the index once, before any worker opens it (in a child: its memory goes with it)."""
        from .indexing import check_notes_or_index, is_stale

        check_notes_or_index(self.notes, self.index)
        if not (self.notes.is_dir() and is_stale(self.notes, self.index)):
            return
        _say(f"Updating the index in {self.index} from {self.notes} ...")
        cmd = ["-m", "azchat", "index", "--notes", str(self.notes), "--index", str(self.index)]
        if self.args.model:
            cmd += ["--model", self.args.model]
        code = spawn_python(cmd, dict(os.environ)).wait()
        if code != 0 and not (self.index / "CURRENT").exists():
            raise AzchatError(f"Could not build the index (azchat index exited with code {code}).")

    # -- running --------------------------------------------------------------------------------
    def _on_signal(self, signum, frame) -> None:
        self.stopping = True
        self.signal_name = signal.Signals(signum).name

    def run(self) -> int:
        a = self.args
        self._update_index()
        self.export = mapped_export(self.index, a.model)
        self.sock = listen(a.host, a.port)
        self.port = self.sock.getsockname()[1]
        self.chat_port = None if a.no_chat else (a.chat_port if a.chat_port is not None else self.port + 1)
        self.chat_url = None if self.chat_port is None else _url(a.host, self.chat_port)
        self.ready_r, self.ready_w = os.pipe()
        os.set_inheritable(self.ready_w, True)
        self.children = [_Child("api", i) for i in range(1, a.workers + 1)]
        if self.chat_port is not None:
            self.children.append(_Child("chat", 0))
        if self.fork:
            preload()
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        code = 0
        try:
            for c in self.children:
                self._spawn(c)
            code = self._wait_until_ready()
            if code == 0 and not self.stopping:
                self._announce()
                code = self._supervise()
        finally:
            self._stop_all()
            for s, h in previous.items():
                signal.signal(s, h)
            for fd in (self.ready_r, self.ready_w):
                os.close(fd)
            self.sock.close()
        if self.signal_name and code == 0:
            _say("Stopped.")
        return code

    def _wait_until_ready(self) -> int:
        deadline = time.monotonic() + START_TIMEOUT
        while not self.stopping and not all(c.ready for c in self.children):
            self._read_ready(0.2)
            for c in self.children:
                rc = c.proc.poll()
                if rc is not None and not self.stopping:
                    _say(f"azchat: {c.name} exited with code {rc} while starting; stopping the server.")
                    return 1
            if time.monotonic() > deadline:
                _say(f"azchat: the workers did not open the index within {START_TIMEOUT:.0f} s; stopping.")
                return 1
        return 0

    def _announce(self) -> None:
        a = self.args
        url = _url(a.host, self.port)
        if a.json:
            from .store import read_manifest

            manifest = {}
            try:
                manifest = read_manifest(self.index) or {}
            except AzchatError:
                pass
            print(json.dumps({
                "url": url, "host": a.host, "port": self.port, "auth": self.auth is not None, "share": False,
                "workers": a.workers, "pids": [c.proc.pid for c in self.children if c.role == "api"],
                "chat_url": self.chat_url,
                "chat_pid": next((c.proc.pid for c in self.children if c.role == "chat"), None),
                "watch": bool(a.watch), "notes_dir": str(self.notes), "index_dir": str(self.index),
                "notes": len(manifest.get("notes", {})), "chunks": manifest.get("chunk_count", 0),
                "built_at": manifest.get("built_at", ""), "model": manifest.get("model", "")},
                ensure_ascii=False), flush=True)
            return
        chat = f"; the chat at {self.chat_url}" if self.chat_url else ""
        print(f"azchat is ready at {url}: REST (/api) and MCP (/mcp) from {a.workers} worker"
              f"{'s' if a.workers != 1 else ''}{chat} (Ctrl+C to stop)", flush=True)

    def _supervise(self) -> int:
        while not self.stopping:
            self._read_ready(0.5)
            for c in self.children:
                rc = c.proc.poll()
                if rc is None or self.stopping:
                    continue
                now = time.monotonic()
                c.deaths = [t for t in c.deaths if now - t < RESTART_WINDOW] + [now]
                again = len(c.deaths) < RESTARTS
                self._event("exited", c, pid=c.proc.pid, code=rc, restarting=again)
                if not again:
                    _say(f"azchat: {c.name} died {RESTARTS} times within {RESTART_WINDOW:.0f} s; "
                         "stopping the server.")
                    return 1
                self._spawn(c)
        return 0

    def _stop_all(self) -> None:
        """SIGTERM to every child still running, SIGKILL to those still there after STOP_GRACE seconds."""
        live = [c for c in self.children if c.proc is not None and c.proc.poll() is None]
        for c in live:
            try:
                c.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + STOP_GRACE
        for c in live:
            try:
                c.proc.wait(max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                _say(f"azchat: {c.name} (pid {c.proc.pid}) did not stop within {STOP_GRACE:.0f} s; killing it.")
                c.proc.kill()
                c.proc.wait()


def _source_export(index: Path, model: str | None) -> Path | None:
    """The folder of the index's ONNX export that `azchat serve` would load (embedding.load_embedder's choice),
    or None (no export, or ONNX turned off)."""
    from .config import model_name
    from .embedding import light_enabled
    from .models import resolve_model
    from .onnx_embedding import find_export
    from .store import read_manifest

    if not light_enabled():
        return None
    try:
        manifest = read_manifest(index) or {}
        return find_export(Path(index), resolve_model(model_name(model or manifest.get("model"))))
    except AzchatError:
        return None


def mapped_export(index: Path, model: str | None) -> Path | None:
    """The shared-weights copy of the index's ONNX export (made now when missing or out of date, in a child
    process: reading the model takes memory); None when there is no export or the copy cannot be made."""
    source = _source_export(index, model)
    if source is None:
        return None
    target = source.parent / (MAPPED + source.name)
    try:
        if (target / "export.json").read_bytes() == (source / "export.json").read_bytes():
            return target
    except OSError:
        pass
    cfg = {"role": "map", "source": str(source), "target": str(target)}
    code = spawn_python(["-m", "azchat.workers"], {**os.environ, CONFIG_ENV: json.dumps(cfg)}).wait()
    if code != 0:
        _say("azchat: could not write the shared copy of the embedding model; every worker loads its own.")
        return None
    return target


def write_mapped_export(source: Path, target: Path) -> None:
    """Copy an ONNX export with every weight of 1 KiB or more moved to model.onnx.data, each at an offset that
    is a multiple of ALIGN, so that onnxruntime maps the file instead of reading it (its pages are then shared
    by every process). Written beside, then renamed into place."""
    import shutil
    import uuid

    import onnx
    from onnx import TensorProto

    from .store import fsync_file

    tmp = target.parent / f".tmp-{target.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        model = onnx.load(str(source / "model.onnx"))
        with open(tmp / "model.onnx.data", "wb") as fh:
            for t in model.graph.initializer:
                if not t.HasField("raw_data") or len(t.raw_data) < 1024:
                    continue
                fh.write(b"\0" * (-fh.tell() % ALIGN))
                offset = fh.tell()
                fh.write(t.raw_data)
                t.ClearField("raw_data")
                del t.external_data[:]
                for key, value in (("location", "model.onnx.data"), ("offset", str(offset)),
                                   ("length", str(fh.tell() - offset))):
                    entry = t.external_data.add()
                    entry.key, entry.value = key, value
                t.data_location = TensorProto.EXTERNAL
        onnx.save(model, str(tmp / "model.onnx"))
        shutil.copyfile(source / "tokenizer.json", tmp / "tokenizer.json")
        shutil.copyfile(source / "export.json", tmp / "export.json")      # last: it marks the copy complete
        for name in ("model.onnx.data", "model.onnx", "tokenizer.json", "export.json"):
            fsync_file(tmp / name)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def serve(args, auth) -> int:
    """`azchat serve --workers N` (cli.cmd_serve hands over once the common checks passed)."""
    if args.share:
        raise AzchatError("--share cannot be used with --workers: share the chat of a plain `azchat serve`.")
    if args.no_chat and args.chat_port is not None:
        raise AzchatError("--chat-port and --no-chat contradict each other: give one of them.")
    if sys.platform == "win32":
        raise AzchatError("--workers needs a POSIX system (Linux, macOS); run `azchat serve` without it.")
    if args.host not in ("127.0.0.1", "localhost", "::1") and auth is None:
        _say(f"Warning: listening on {args.host} without a password; set AZCHAT_AUTH=user:password.")
    return Supervisor(args, auth).run()


# == a worker =================================================================================================
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


def _api_gate():
    """The Gate for the workers' port: HTTP Basic only. A sign-in cookie would be known to one worker only."""
    from .gate import Gate

    class ApiGate(Gate):
        def __init__(self, app, **kw):
            super().__init__(app, **kw)
            self.startup_call = False            # no Gradio here: no unauthenticated first call

        async def _sign_in(self, scope, receive, send):
            await self._refuse(scope, send, 404, "This port takes HTTP Basic credentials; sign in to the chat "
                                                 "on its own port.")

        async def _refuse(self, scope, send, status, sentence, page=False):
            await super()._refuse(scope, send, status, sentence, page=False)   # the browser's own prompt

    return ApiGate


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

    from .rest import serve_kwargs

    kwargs = serve_kwargs(tools, auth, host, hosts)

    def root(request):
        where = f"; the chat is at {chat_url}" if chat_url else ""
        return JSONResponse({"detail": f"This port serves the REST API at /api (docs at /api/docs) and MCP at "
                                       f"/mcp{where}."})

    kwargs["routes"] = [*kwargs["routes"], Route("/", root)]
    kwargs["middleware"] = [Middleware(_api_gate(), auth=auth, hosts=hosts),
                            Middleware(_WorkerTag, number=number)]
    return FastAPI(docs_url=None, redoc_url=None, openapi_url=None, **kwargs)


def _open_service(cfg: dict):
    from .service import NotesService

    embedder = None
    if cfg.get("export"):
        from .onnx_embedding import OnnxEmbedder

        embedder = OnnxEmbedder(Path(cfg["export"])).prefetch()      # the weights mapped, not copied
    service = NotesService(cfg["notes"], cfg["index"], model=cfg["model"], reranker=cfg["reranker"],
                           embedder=embedder)
    service.open(log=_say)
    return service


def _tell_ready(cfg: dict) -> None:
    os.write(cfg["ready_fd"], f"{cfg['role']} {cfg['worker']} {os.getpid()}\n".encode())


def run_api(cfg: dict) -> int:
    import uvicorn

    from . import config
    from .gate import HostCheck, allowed_hosts_from_env
    from .tools import NotesTools

    auth = config.auth_from_env()
    sock = socket.socket(fileno=cfg["fd"])
    service = _open_service(cfg)
    follower = Follower(service).start()
    watcher = None
    if cfg["watch"]:
        from .watch import Watcher

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
    from . import config
    from .gate import HostCheck, allowed_hosts_from_env
    from .rest import serve_kwargs
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
    """A child of the supervisor, started afresh (`python -m azchat.workers`) or forked from it."""
    if cfg["role"] == "map":
        try:
            write_mapped_export(Path(cfg["source"]), Path(cfg["target"]))
        except Exception as exc:            # e.g. a read-only index folder: the workers load the export itself
            _say(f"azchat: {type(exc).__name__}: {exc}")
            return 1
        return 0
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
