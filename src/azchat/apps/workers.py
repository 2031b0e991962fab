"""`azchat serve --workers N`: the REST API (/api) and MCP over HTTP (/mcp) answered by N processes that share
one memory-mapped index through the page cache.

Design:
- The supervisor (the `azchat serve` process) checks the configuration, brings the index up to date once (an
  `azchat index` child, so the build's memory goes away with it), binds the listening socket once (so a port in
  use is one clear error) and starts N worker processes that inherit that socket and accept from it in turn. A
  worker that dies does not lose the connections waiting in the queue; the others take them while it is
  restarted. On Linux the workers are forked from the supervisor after it imported their modules (97 MB private
  per worker instead of 140 MB); elsewhere, or with AZCHAT_WORKERS_SPAWN=1, each is `python -m azchat.apps.worker`
  with its settings as JSON in an environment variable (nothing pickled).
- Every worker (apps/worker.py) serves the same ASGI app as `azchat serve` (server.serve_kwargs) behind the Gate
  (gate.py): the Host/Origin check and AZCHAT_AUTH on every request. Sign-in sessions live in one process's
  memory, so the API port takes HTTP Basic only (a browser gets its own password prompt) and no cookie.
- The Gradio chat keeps its state (queue, events) in one process, so it cannot be spread over workers: it runs
  in a process of its own on --chat-port (default --port + 1), the single-process app as before (--no-chat: none).
- One builder: with --watch only worker 1 watches the notes and rebuilds. Every process follows the index's
  CURRENT pointer (a read of one small file every half second) and opens the new generation when another process
  wrote it. Without --watch each process indexes changed notes before answering, as `serve` does; the index lock
  makes a second builder wait and then find nothing left to do.
- The embedding model's weights are shared too: the supervisor writes (once, beside the index's ONNX export,
  in a hidden folder; index/shared_model.py) a copy whose weights onnxruntime memory-maps instead of copying
  into each process (44 MB private per process instead of 119 MB). Without it each worker loads the export.
- Each worker takes the threads a single `serve` takes: dividing the cores among workers measured slower
  (bench/RESULTS-scale.md, "serve --workers").
- Ctrl-C or SIGTERM stops every worker (SIGKILL after a grace period); a worker that dies is reported and
  restarted (one that keeps dying stops the server, exit 1); a worker whose supervisor is gone stops itself.
"""
from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys
import time
from pathlib import Path

from ..errors import AzchatError
from ..index.shared_model import mapped_export
from .worker import BACKLOG, CONFIG_ENV, STOP_GRACE, _say, run_child

MAX_WORKERS = 64
START_TIMEOUT = 600.0      # seconds a worker may take to open the index
RESTARTS = 5               # a worker that dies this often ...
RESTART_WINDOW = 60.0      # ... within this many seconds stops the server


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

    top = __package__.rpartition(".")[0]          # azchat
    for name in ("fastapi", "uvicorn", "numpy", "faiss", "tokenizers"):
        importlib.import_module(name)
    for name in ("apps.gate", "apps.mcp", "apps.rest", "apps.server", "apps.service", "apps.tools",
                 "search.retrieval", "index.onnx_embedding"):
        importlib.import_module(f"{top}.{name}")
    gc.collect()
    gc.freeze()


class Supervisor:
    def __init__(self, args, auth):
        from .. import config
        from ..index.changes import notes_dir

        self.args, self.auth = args, auth
        self.notes = notes_dir(args.notes, args.index)
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
        child.proc = spawn_python(["-m", "azchat.apps.worker"], env)

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
        from ..index.changes import check_notes_or_index, is_stale

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
        self.export = mapped_export(self.index, a.model, log=_say)
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
            from ..index.store import read_manifest

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

