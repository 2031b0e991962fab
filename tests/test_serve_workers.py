"""`azchat serve --workers N` for real (subprocesses, real model): every worker answers, each keeps the Gate
(AZCHAT_AUTH, Host, Origin), the chat runs in its own process, a dead worker is reported and restarted, with
--watch one worker rebuilds and every worker answers from the new index, Ctrl-C / SIGTERM / a killed supervisor
leave no process behind, and bad worker counts are refused with one sentence.

To talk to one worker in particular, the others are paused (SIGSTOP): the workers accept from one shared
socket, so a paused worker takes no connections and the running one takes them all."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import httpx
import pytest

from conftest import (CTRL_C_REACHES_CHILD, REPO, copy_real_index, eventually, free_port, start_serve, stop_serve,
                      write)

pytestmark = pytest.mark.slow

AUTH = ("ann", "s3cret: pass")
HEADER = "x-azchat-worker"
MCP_CALL = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "search", "arguments": {"query": "peering", "k": 1}}}
MCP_HEADERS = {"accept": "application/json, text/event-stream"}
QUOKKA_NOTE = """---
title: Balcony animals
---
## Quokka feeding

The quokka colony on the balcony gets three slices of cucumber every morning at seven.
"""


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[1])


def gone_within(pids, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while any(alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


@contextlib.contextmanager
def only(ready: dict, worker: int):
    """Pause every worker but `worker` (1-based) while the block runs."""
    others = [p for i, p in enumerate(ready["pids"], 1) if i != worker]
    for p in others:
        os.kill(p, signal.SIGSTOP)
    try:
        yield
    finally:
        for p in others:
            os.kill(p, signal.SIGCONT)


def lines(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


@pytest.fixture(scope="module")
def two_workers(real_index, tmp_path_factory):
    """`azchat serve --workers 2` with AZCHAT_AUTH and the chat on its own port."""
    root = tmp_path_factory.mktemp("workers")
    notes = copy_real_index(real_index, root)
    proc, ready, err = start_serve(root, notes, "--workers", "2", "--chat-port", str(free_port()),
                                   env={"AZCHAT_AUTH": ":".join(AUTH), "AZCHAT_ALLOWED_HOSTS": "notes.lan"})
    try:
        yield proc, ready, err
    finally:
        stop_serve(proc, 40)


def test_both_workers_answer_and_each_keeps_the_password_and_the_host_checks(two_workers):
    proc, ready, err = two_workers
    base = ready["url"].rstrip("/")
    assert ready["workers"] == 2 and ready["auth"] is True and ready["host"] == "127.0.0.1"
    pids = ready["pids"]
    assert len(set(pids)) == 2 and proc.pid not in pids
    assert all(parent_of(p) == proc.pid for p in pids + [ready["chat_pid"]])
    port = base.rsplit(":", 1)[1]
    for worker in (1, 2):
        with only(ready, worker):
            r = httpx.get(base + "/api/search", params={"q": "peer two virtual networks", "k": 1}, auth=AUTH,
                          timeout=60)
            assert r.status_code == 200 and r.headers[HEADER] == str(worker), (worker, r.status_code)
            assert r.json()["hits"][0]["path"] == "networking.md"
            r = httpx.post(base + "/mcp", json=MCP_CALL, headers=MCP_HEADERS, auth=AUTH, timeout=60)
            assert r.status_code == 200 and r.headers[HEADER] == str(worker)
            assert r.json()["result"]["structuredContent"]["hits"][0]["path"] == "networking.md"
            # the password: on every route, HTTP Basic only (no sign-in cookie that one worker alone would know)
            for method, path in [("GET", "/api/status"), ("GET", "/api/search?q=vnet"), ("POST", "/api/ask"),
                                 ("POST", "/mcp"), ("GET", "/api/docs"), ("GET", "/api/openapi.json"),
                                 ("GET", "/"), ("GET", "/docs"), ("GET", "/gradio_api/startup-events")]:
                r = httpx.request(method, base + path, json={"question": "vnet"} if method == "POST" else None,
                                  timeout=60)
                assert r.status_code == 401, (worker, method, path, r.status_code)
                assert r.headers["www-authenticate"].startswith("Basic") and HEADER not in r.headers
                assert "peering" not in r.text.lower()
            page = httpx.get(base + "/", headers={"accept": "text/html"}, timeout=60)
            assert page.status_code == 401 and page.headers["www-authenticate"].startswith("Basic")
            for wrong in [("ann", "wrong"), ("bob", AUTH[1])]:
                assert httpx.get(base + "/api/status", auth=wrong, timeout=60).status_code == 401
            login = httpx.post(base + "/login", data={"username": AUTH[0], "password": AUTH[1]}, timeout=60)
            assert login.status_code == 404 and "set-cookie" not in login.headers
            # DNS rebinding and foreign pages, with the right password
            r = httpx.get(base + "/api/status", auth=AUTH, headers={"host": "evil.example"}, timeout=60)
            assert r.status_code == 421 and HEADER not in r.headers
            r = httpx.get(base + "/api/status", auth=AUTH, headers={"origin": "http://evil.example"}, timeout=60)
            assert r.status_code == 403 and HEADER not in r.headers
            r = httpx.get(base + "/api/status", auth=AUTH, timeout=60,
                          headers={"host": f"notes.lan:{port}", "origin": f"http://notes.lan:{port}"})
            assert r.status_code == 200 and r.headers[HEADER] == str(worker)
    assert proc.poll() is None, err.read_text()[-2000:]


def test_the_chat_runs_in_its_own_process_behind_the_same_password(two_workers):
    from gradio_client import Client

    _, ready, _ = two_workers
    chat = ready["chat_url"].rstrip("/")
    assert chat != ready["url"].rstrip("/")
    assert httpx.get(chat + "/gradio_api/info", timeout=60).status_code == 401
    assert httpx.get(chat + "/api/status", timeout=60).status_code == 401
    client = Client(chat, auth=AUTH, download_files=False, verbose=False)
    answer = client.predict("how do I peer two virtual networks", api_name="/ask")
    assert answer["found"] and "networking.md" in {c["path"] for c in answer["citations"]}
    root = httpx.get(ready["url"], auth=AUTH, timeout=60)
    assert root.status_code == 200 and ready["chat_url"] in root.json()["detail"]   # the API port says where


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_a_dead_worker_is_reported_and_restarted(real_index, tmp_path, start):
    """Workers forked from the supervisor (Linux), or started afresh (AZCHAT_WORKERS_SPAWN=1, elsewhere)."""
    notes = copy_real_index(real_index, tmp_path)
    proc, ready, err = start_serve(tmp_path, notes, "--workers", "2", "--no-chat",
                                   env={"AZCHAT_WORKERS_SPAWN": "1" if start == "spawn" else ""})
    cmdline = open(f"/proc/{ready['pids'][1]}/cmdline").read()
    assert ("azchat.apps.worker" in cmdline) == (start == "spawn"), cmdline
    base = ready["url"].rstrip("/")
    try:
        assert ready["chat_url"] is None and ready["chat_pid"] is None
        first = ready["pids"][0]
        os.kill(first, signal.SIGKILL)
        events = eventually(lambda: [e for e in lines(tmp_path / "stdout.txt")[1:] if e.get("worker") == 1
                                     and e["event"] == "restarted"] and lines(tmp_path / "stdout.txt")[1:], 40)
        assert events, err.read_text()[-2000:]
        assert events[0] == {"event": "exited", "role": "api", "worker": 1, "pid": first, "code": -9,
                             "restarting": True}
        back = events[1]["pid"]
        assert back != first and parent_of(back) == proc.pid
        assert "worker 1 (pid %d) was killed by signal 9; restarting it." % first in err.read_text()
        with only({"pids": [back, ready["pids"][1]]}, 1):                  # the new worker 1 answers
            r = httpx.get(base + "/api/search", params={"q": "peering", "k": 1}, timeout=60)
            assert r.status_code == 200 and r.headers[HEADER] == "1"
        assert proc.poll() is None
    finally:
        stop_serve(proc, 40)


def start_in_own_group(root, notes, *extra):
    """start_serve's `azchat serve --json`, in a process group of its own (as a shell runs a command), so that a
    terminal's Ctrl-C can be played: SIGINT to the whole group at once."""
    out, err = root / "stdout.txt", root / "stderr.txt"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1"}
    env.pop("AZCHAT_AUTH", None)
    with open(out, "w") as fo, open(err, "w") as fe:
        proc = subprocess.Popen([sys.executable, "-m", "azchat", "serve", "--notes", str(notes), "--index",
                                 str(root / "index"), "--port", str(free_port()), "--json", *extra],
                                stdout=fo, stderr=fe, env=env, cwd=root, start_new_session=True,
                                **CTRL_C_REACHES_CHILD)
    ready = eventually(lambda: out.read_text().splitlines()[:1], 300)
    if not ready:
        proc.kill()
        pytest.fail(f"azchat serve did not start:\n{err.read_text()[-3000:]}")
    return proc, json.loads(ready[0]), err


@pytest.mark.parametrize("how", ["Ctrl-C in a terminal", "SIGINT", "SIGTERM"])
def test_ctrl_c_or_sigterm_stops_every_process(real_index, tmp_path, how):
    notes = copy_real_index(real_index, tmp_path)
    proc, ready, err = start_in_own_group(tmp_path, notes, "--workers", "2", "--chat-port", str(free_port()))
    children = ready["pids"] + [ready["chat_pid"]]
    assert all(alive(p) for p in children) and all(os.getpgid(p) == proc.pid for p in children)
    sig = signal.SIGTERM if how == "SIGTERM" else signal.SIGINT
    if how == "Ctrl-C in a terminal":
        os.killpg(proc.pid, sig)               # the terminal signals the whole foreground group at once
    else:
        proc.send_signal(sig)                  # to the supervisor alone (`kill`); it stops its children
    try:
        code = proc.wait(40)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"azchat serve --workers 2 did not stop within 40 s of {sig.name}")
    assert code == 0, err.read_text()[-2000:]
    assert gone_within(children, 5), [p for p in children if alive(p)]
    assert "Traceback" not in err.read_text()
    with pytest.raises(httpx.TransportError):
        httpx.get(ready["url"], timeout=5)


def test_workers_stop_by_themselves_when_the_supervisor_is_killed(real_index, tmp_path):
    notes = copy_real_index(real_index, tmp_path)
    proc, ready, _ = start_serve(tmp_path, notes, "--workers", "2", "--no-chat")
    proc.kill()                                     # SIGKILL: no chance to stop its workers
    proc.wait(10)
    assert gone_within(ready["pids"], 15), [p for p in ready["pids"] if alive(p)]


def test_with_watch_one_worker_rebuilds_and_every_worker_answers_from_the_new_index(real_index, tmp_path):
    notes = copy_real_index(real_index, tmp_path)
    proc, ready, err = start_serve(tmp_path, notes, "--workers", "2", "--no-chat", "--watch")
    base = ready["url"].rstrip("/")

    def cited_by(worker: int) -> bool:
        with only(ready, worker):
            r = httpx.get(base + "/api/search", params={"q": "quokka cucumber balcony", "k": 3}, timeout=60)
            assert r.headers[HEADER] == str(worker)
            return "pets/balcony.md" in {h["path"] for h in r.json()["hits"]}

    try:
        assert not cited_by(1) and not cited_by(2)
        write(notes, "pets/balcony.md", QUOKKA_NOTE)
        assert eventually(lambda: cited_by(1), 40), err.read_text()[-2000:]
        assert eventually(lambda: cited_by(2), 10), "worker 2 never opened the new generation"
        assert err.read_text().count("is watching") == 1 and "Worker 1 is watching" in err.read_text()
    finally:
        stop_serve(proc, 40)


def run_cli(tmp_path, *args, env=None):
    environ = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1"}
    environ.pop("AZCHAT_AUTH", None)
    environ.update(env or {})
    return subprocess.run([sys.executable, "-m", "azchat", "serve", *args], capture_output=True, text=True,
                          env=environ, cwd=tmp_path, timeout=120, **CTRL_C_REACHES_CHILD)


@pytest.mark.parametrize("n", ["0", "-1", "65", "two", "1.5", ""])
def test_a_bad_worker_count_is_refused_in_one_sentence(tmp_path, n):
    r = run_cli(tmp_path, "--workers", n)
    assert r.returncode == 2 and r.stdout == ""
    assert f"argument --workers: must be a whole number from 1 to 64, not {n!r}" in r.stderr


def test_options_that_do_not_go_with_workers_are_refused(real_index, tmp_path):
    notes = copy_real_index(real_index, tmp_path)
    where = ["--notes", str(notes), "--index", str(tmp_path / "index")]
    r = run_cli(tmp_path, *where, "--workers", "2", "--share", env={"AZCHAT_AUTH": "a:b"})
    assert r.returncode == 1 and "--share cannot be used with --workers" in r.stderr
    r = run_cli(tmp_path, *where, "--chat-port", "7999")
    assert r.returncode != 0 and "--chat-port and --no-chat go with --workers." in r.stderr
    r = run_cli(tmp_path, *where, "--workers", "2", "--no-chat", "--chat-port", "7999")
    assert r.returncode != 0 and "contradict" in r.stderr
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        r = run_cli(tmp_path, *where, "--workers", "2", "--port", str(taken.getsockname()[1]))
    assert r.returncode == 1 and "the port is in use or not allowed; choose another --port." in r.stderr
    assert "Traceback" not in r.stderr


def test_the_shared_weights_copy_of_the_model_gives_the_same_vectors(real_index, tmp_path):
    """The workers' embedder: the index's ONNX export with its weights in a file of their own at aligned
    offsets (memory-mapped by onnxruntime, so shared by every worker); the same vectors as the export."""
    import numpy as np
    import onnx

    from azchat.index.onnx_embedding import OnnxEmbedder
    from azchat.index.shared_model import ALIGN, MAPPED, mapped_export

    _, _, export = real_index
    shutil.copytree(real_index[1], tmp_path / "index")
    mapped = mapped_export(tmp_path / "index", None)
    assert mapped is not None and mapped.name == MAPPED + export.name and mapped.parent == tmp_path / "index" / "models"
    assert mapped_export(tmp_path / "index", None) == mapped                        # made once, then reused
    assert (mapped / "model.onnx").stat().st_size < 1_000_000 < (mapped / "model.onnx.data").stat().st_size
    offsets = [int(e.value) for t in onnx.load(str(mapped / "model.onnx"), load_external_data=False).graph.initializer
               for e in t.external_data if e.key == "offset"]
    assert offsets and all(o % ALIGN == 0 for o in offsets)
    texts = ["how do I peer two virtual networks", "Geo redundant storage copies data to a paired region."]
    same = OnnxEmbedder(export).embed(texts), OnnxEmbedder(mapped).embed(texts)
    assert np.allclose(*same, atol=1e-5)
