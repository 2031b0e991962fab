#!/usr/bin/env python3
"""Load test of `azchat serve` through its Gradio API (gradio_client), in two phases, each on its own server:

1. steady load: C concurrent clients (one gradio_client.Client each) ask N questions each from
   bench/dev_questions.jsonl via /ask; the baseline is one client asking sequentially on the same server.
2. rebuilds under load: `serve --watch` on a temp copy of the vault while the same load runs; meanwhile a note
   is created, an existing note edited (once for the watcher, once followed by the chat's "Rebuild index"
   button through its /rebuild event) and the new note deleted, each waited for until the server answers from
   the new index (seen through /search, /status). Clients keep asking (at least N each) until the edits are done.

Every request that raises, or returns something other than an answer dict, is an error; the script exits 1 on
any error or when an edit never reached the server. Prints a Markdown table.

    python bench/load.py [--notes ../shared/corpus/niclasedge-notes] [--index /tmp/azload-idx]
                         [--clients 20] [--per-client 10]

The index is built (or updated) once into --index and reused; phase 2 works on copies of vault and index.

`--workers-bench` instead compares `azchat serve --workers N --no-chat` for each N of --workers-list (default
1,2), interleaved over --rounds rounds (1, 2, 1, 2, ...), each on its own server over an existing --index (not
built here; e.g. ms-azure-docs from bench/scale.py --source-only): C clients x N asks through POST /api/ask
(httpx, one keep-alive client each, as bench/api.py), after a warm-up; then the memory of every process from
/proc/PID/smaps_rollup (USS = Private_Clean + Private_Dirty, PSS, RSS). Targets: asks/s with 2 workers >= 1.3x
one worker, p95 <= 250 ms, each extra worker <= 150 MB of private memory. `--json-out FILE` keeps every run.

    python bench/load.py --workers-bench --notes /tmp/azscale/msdocs-notes --index /tmp/azscale/msdocs \
                         [--workers-list 1,2] [--rounds 2] [--json-out bench/results/serve-workers.json]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

CANARY = "load-canary.md"
CANARY_TEXT = """---
title: Load canary
tags: [bench]
---
## Quokka feeding

The quokka colony on the balcony gets three slices of cucumber every morning at seven.
"""
CANARY_QUERY = "quokka colony cucumber balcony"


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m azchat serve --json` in a subprocess; .url once it listens."""

    def __init__(self, notes: Path, index: Path, watch: bool, log: Path, extra: tuple[str, ...] = ()):
        env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1"}
        env.pop("AZCHAT_AUTH", None)
        self.out = tempfile.TemporaryFile("w+")
        self.err = open(log, "w")
        cmd = [sys.executable, "-m", "azchat", "serve", "--notes", str(notes), "--index", str(index),
               "--port", str(free_port()), "--json"] + (["--watch"] if watch else []) + list(extra)
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdout=self.out, stderr=self.err, env=env)
        while True:
            self.out.seek(0)
            line = self.out.readline()
            if line:
                self.ready = json.loads(line)
                self.url = self.ready["url"]
                break
            if self.proc.poll() is not None:
                raise SystemExit(f"serve did not start; see {log}")
            time.sleep(0.2)
        self.startup = time.perf_counter() - t0

    def stop(self) -> float:
        t = time.perf_counter()
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return float("inf")
        finally:
            self.out.close()
            self.err.close()
        return time.perf_counter() - t


def client(url):
    from gradio_client import Client

    return Client(url, download_files=False, verbose=False)


def gradio_ask(cl, question: str):
    return cl.predict(question, api_name="/ask")


class Load:
    """C clients, each asking its questions in turn; latencies and errors are collected. `connect(url)` makes
    one client, `ask(client, question)` returns the answer dict (default: the Gradio API's /ask)."""

    def __init__(self, url, questions, clients: int, per_client: int, connect=None, ask=None):
        self.url, self.questions, self.n, self.per = url, questions, clients, per_client
        self.connect, self.ask = connect or client, ask or gradio_ask
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.keep_going = threading.Event()     # set: ask beyond per_client until cleared

    def _one(self, c: int) -> None:
        try:
            cl = self.connect(self.url)
        except Exception as exc:                # a client that cannot connect is an error too
            with self.lock:
                self.errors.append(f"client {c}: connect: {exc!r}")
            return
        i = 0
        while i < self.per or self.keep_going.is_set():
            q = self.questions[(c * self.per + i) % len(self.questions)]
            t = time.perf_counter()
            try:
                out = self.ask(cl, q)
                ok = isinstance(out, dict) and {"answer", "found", "citations"} <= set(out)
                err = None if ok else f"client {c}: unexpected answer {str(out)[:200]}"
            except Exception as exc:
                err = f"client {c}: {exc!r}"[:300]
            dt = time.perf_counter() - t
            with self.lock:
                self.latencies.append(dt)
                if err:
                    self.errors.append(err)
            i += 1

    def run(self) -> float:
        t = time.perf_counter()
        with ThreadPoolExecutor(self.n) as pool:
            list(pool.map(self._one, range(self.n)))
        return time.perf_counter() - t


def row(name, secs, errors, wall=None):
    ms = [s * 1000 for s in secs]
    qps = len(secs) / wall if wall else 1000 / statistics.mean(ms)
    return (f"| {name} | {len(secs)} | {errors} | {statistics.mean(ms):.0f} | {pct(ms, .5):.0f} | "
            f"{pct(ms, .95):.0f} | {max(ms):.0f} | {qps:.1f} |")


def wait_until(cond, timeout: float) -> float | None:
    t = time.perf_counter()
    while time.perf_counter() - t < timeout:
        if cond():
            return time.perf_counter() - t
        time.sleep(0.25)
    return None


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--notes", default=str(REPO.parent / "shared" / "corpus" / "niclasedge-notes"))
    ap.add_argument("--index", default="/tmp/azload-idx")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--per-client", type=int, default=10)
    ap.add_argument("--edit-timeout", type=float, default=120.0)
    ap.add_argument("--workers-bench", action="store_true", help="compare serve --workers N (see above)")
    ap.add_argument("--workers-list", default="1,2")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json-out")
    args = ap.parse_args()
    notes, index = Path(args.notes), Path(args.index)
    questions = [json.loads(line)["question"] for line in open(REPO / "bench" / "dev_questions.jsonl")]
    if args.workers_bench:
        return workers_bench(args, notes, index, questions)

    from azchat import build_index

    stats = build_index(notes, index)          # once; later runs only check that nothing changed
    print(f"index: {stats.notes} notes, {stats.chunks} chunks, {stats.embedded} embedded in {stats.seconds:.1f}s")
    work = Path(tempfile.mkdtemp(prefix="azload-"))
    failures: list[str] = []
    rows = []
    try:
        # -- phase 1: steady load ------------------------------------------------------------------
        srv = Server(notes, index, watch=False, log=work / "serve1.log")
        try:
            base = Load(srv.url, questions, 1, 2 * args.per_client)
            warm = client(srv.url)
            warm.predict("warm up", api_name="/ask")
            base_wall = base.run()
            load = Load(srv.url, questions, args.clients, args.per_client)
            wall = load.run()
        finally:
            stop1, start1 = srv.stop(), srv.startup
        rows.append(row("baseline: 1 client, sequential", base.latencies, len(base.errors), base_wall))
        rows.append(row(f"{args.clients} clients x {args.per_client}", load.latencies, len(load.errors), wall))
        errors = base.errors + load.errors

        # -- phase 2: rebuilds (serve --watch) under load ---------------------------------------------
        notes2, index2 = work / "notes", work / "index"
        shutil.copytree(notes, notes2)        # copy2 keeps mtimes: the copied index is not stale
        shutil.copytree(index, index2)
        srv = Server(notes2, index2, watch=True, log=work / "serve2.log")
        edits = []
        try:
            probe = client(srv.url)
            probe.predict("warm up", api_name="/ask")

            def paths(query: str) -> set[str]:
                return {h["path"] for h in probe.predict(query, 5, api_name="/search")["hits"]}

            def built_at() -> str:
                return probe.predict(api_name="/status")["built_at"]

            assert CANARY not in paths(CANARY_QUERY)
            load2 = Load(srv.url, questions, args.clients, args.per_client)
            load2.keep_going.set()

            def edit():
                try:
                    time.sleep(2.0)                    # the load is running
                    (notes2 / CANARY).write_text(CANARY_TEXT, encoding="utf-8")
                    edits.append(("create a note", wait_until(lambda: CANARY in paths(CANARY_QUERY),
                                                               args.edit_timeout)))
                    victim = sorted(notes2.rglob("*.md"))[0]
                    before = built_at()
                    with open(victim, "a", encoding="utf-8") as fh:
                        fh.write("\n\nAppended by the load test: the pangolin ledger is reconciled monthly.\n")
                    edits.append(("edit a note", wait_until(lambda: built_at() != before, args.edit_timeout)))
                    victim = sorted(notes2.rglob("*.md"))[1]       # the chat's "Rebuild index" button
                    before = built_at()
                    with open(victim, "a", encoding="utf-8") as fh:
                        fh.write("\n\nAppended by the load test: the heron count is taken at noon.\n")
                    t = time.perf_counter()
                    shown = probe.predict(api_name="/rebuild")[0]          # returns when the rebuild is done
                    secs = time.perf_counter() - t
                    ok = "Last update:" in shown and "fail" not in shown.lower() and built_at() != before
                    edits.append(("edit + Rebuild button (/rebuild)", secs if ok else None))
                    (notes2 / CANARY).unlink()
                    edits.append(("delete a note", wait_until(lambda: CANARY not in paths(CANARY_QUERY),
                                                               args.edit_timeout)))
                except Exception as exc:
                    failures.append(f"editor: {exc!r}")
                finally:
                    load2.keep_going.clear()

            editor = threading.Thread(target=edit)
            editor.start()
            wall2 = load2.run()
            editor.join()
        finally:
            stop2 = srv.stop()
        rows.append(row(f"{args.clients} clients during 4 rebuilds (serve --watch)", load2.latencies,
                        len(load2.errors), wall2))
        errors += load2.errors
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nserve start-up: {start1:.1f} s (plain), {srv.startup:.1f} s (--watch); "
          f"SIGTERM to exit: {stop1:.1f} s (plain), {stop2:.1f} s (--watch)\n")
    print("| phase | requests | errors | mean ms | p50 ms | p95 ms | max ms | requests/s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(r)
    print("\n| edit during load | reached the server after (s) |")
    print("|---|---|")
    for name, secs in edits:
        print(f"| {name} | {'never' if secs is None else f'{secs:.1f}'} |")
        if secs is None:
            failures.append(f"{name}: not visible within {args.edit_timeout:.0f}s")
    for e in errors[:10]:
        print("error:", e)
    failures += [f"{len(errors)} request errors"] if errors else []
    if len(edits) != 4:
        failures.append("not every edit ran")
    print("\nRESULT:", "PASS (0 errors)" if not failures else "FAIL: " + "; ".join(failures))
    return 1 if failures else 0


def memory(pid: int) -> dict:
    """MB of one process from /proc/PID/smaps_rollup: rss, pss, uss (private clean + dirty), private_dirty (its
    heap and other anonymous memory: what no other process can share), shared."""
    kb = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, rest = line.partition(":")
        kb[name.strip()] = int(rest.split()[0])
    uss = kb["Private_Clean"] + kb["Private_Dirty"]
    return {"rss": kb["Rss"] / 1024, "pss": kb["Pss"] / 1024, "uss": uss / 1024,
            "private_dirty": kb["Private_Dirty"] / 1024,
            "shared": (kb["Shared_Clean"] + kb["Shared_Dirty"]) / 1024}


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def workers_one(args, notes: Path, index: Path, questions, n: int, work: Path) -> dict:
    """One server with n workers: warm-up, the load, then every process's memory."""
    import httpx

    from api import cpu_seconds, rest_connect

    seen: dict[str, int] = {}

    def ask(cl, question: str):
        r = cl.post("/api/ask", json={"question": question})
        r.raise_for_status()
        worker = r.headers.get("x-azchat-worker", "?")
        seen[worker] = seen.get(worker, 0) + 1
        return r.json()

    load_before = os.getloadavg()
    srv = Server(notes, index, watch=False, log=work / f"serve-w{n}.log", extra=("--workers", str(n), "--no-chat"))
    try:
        warm = Load(srv.url, questions[::-1], args.clients, 2, connect=rest_connect, ask=ask)
        warm.run()                          # every worker has asked a few (embedder, pages in the cache)
        seen.clear()
        load = Load(srv.url, questions, args.clients, args.per_client, connect=rest_connect, ask=ask)
        pids = srv.ready["pids"]
        cpu0, client0 = sum(cpu_seconds(p) for p in pids), time.process_time()
        wall = load.run()
        server_cpu, client_cpu = sum(cpu_seconds(p) for p in pids) - cpu0, time.process_time() - client0
        mem = {"supervisor": memory(srv.proc.pid), "workers": [memory(p) for p in pids]}
        assert sorted(children(srv.proc.pid)) == sorted(pids), "a process other than the workers is running"
        with httpx.Client(timeout=30) as c:       # the server still answers after the load
            assert c.get(srv.url + "api/status").status_code == 200
    finally:
        stop = srv.stop()
    ms = [x * 1000 for x in load.latencies]
    return {"workers": n, "requests": len(ms), "errors": len(load.errors), "error_samples": load.errors[:5],
            "wall_s": wall, "asks_per_s": len(ms) / wall, "mean_ms": statistics.mean(ms), "p50_ms": pct(ms, .5),
            "p95_ms": pct(ms, .95), "max_ms": max(ms), "per_worker": dict(sorted(seen.items())),
            "startup_s": srv.startup, "stop_s": stop, "memory_mb": mem,
            "server_cpu_ms_per_ask": 1000 * server_cpu / len(ms), "client_cpu_ms_per_ask": 1000 * client_cpu / len(ms),
            "server_cores_busy": server_cpu / wall, "client_cores_busy": client_cpu / wall,
            "loadavg_before": load_before, "loadavg_after": os.getloadavg()}


def workers_bench(args, notes: Path, index: Path, questions) -> int:
    counts = [int(x) for x in args.workers_list.split(",")]
    work = Path(tempfile.mkdtemp(prefix="azworkers-"))
    runs = []
    try:
        for r in range(args.rounds):
            for n in counts:
                res = workers_one(args, notes, index, questions, n, work)
                res["round"] = r + 1
                runs.append(res)
                print(f"round {r + 1}, {n} worker(s): {res['asks_per_s']:.1f} asks/s, p95 {res['p95_ms']:.0f} ms, "
                      f"{res['errors']} errors, split {res['per_worker']}, load {res['loadavg_before'][0]:.1f}, server "
                      f"{res['server_cpu_ms_per_ask']:.1f} ms CPU/ask on {res['server_cores_busy']:.2f} cores, client "
                      f"{res['client_cpu_ms_per_ask']:.1f} ms/ask on {res['client_cores_busy']:.2f}",
                      flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def median(n, key):
        return statistics.median(x[key] for x in runs if x["workers"] == n)

    def each(ws, key):
        return ", ".join(f"{w[key]:.0f}" for w in ws)

    def total(run, key):        # over every process of the server: the supervisor and its workers
        m = run["memory_mb"]
        return m["supervisor"][key] + sum(w[key] for w in m["workers"])

    for x in runs:
        x["total_pss_mb"], x["total_uss_mb"] = total(x, "pss"), total(x, "uss")
        x["total_private_dirty_mb"] = total(x, "private_dirty")

    print("\n| workers | round | asks/s | mean ms | p50 ms | p95 ms | max ms | errors | requests per worker | "
          "private dirty per worker MB | USS per worker MB | PSS per worker MB | RSS per worker MB | "
          "PSS, all processes MB | load avg (1 min) before |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for x in runs:
        ws = x["memory_mb"]["workers"]
        print(f"| {x['workers']} | {x['round']} | {x['asks_per_s']:.1f} | {x['mean_ms']:.0f} | {x['p50_ms']:.0f} | "
              f"{x['p95_ms']:.0f} | {x['max_ms']:.0f} | {x['errors']} | "
              f"{', '.join(f'{k}: {v}' for k, v in x['per_worker'].items())} | "
              f"{each(ws, 'private_dirty')} | {each(ws, 'uss')} | {each(ws, 'pss')} | {each(ws, 'rss')} | "
              f"{x['total_pss_mb']:.0f} | {x['loadavg_before'][0]:.1f} |")
    failures = []
    summary = {}
    if 1 in counts and 2 in counts:
        speedup = median(2, "asks_per_s") / median(1, "asks_per_s")
        extra = {key: median(2, f"total_{key}_mb") - median(1, f"total_{key}_mb")
                 for key in ("pss", "uss", "private_dirty")}
        p95 = max(x["p95_ms"] for x in runs if x["workers"] == 2)
        summary = {"speedup_2_vs_1": speedup, "p95_ms_2_workers_worst": p95,
                   **{f"extra_worker_{k}_mb": v for k, v in extra.items()}}
        print(f"\n2 workers vs 1 (medians over {args.rounds} rounds): {speedup:.2f}x asks/s (target >= 1.3x); "
              f"p95 with 2 workers, worst round: {p95:.0f} ms (target <= 250 ms); the second worker adds "
              f"{extra['private_dirty']:.0f} MB private dirty (its own heap; target <= 150 MB), "
              f"{extra['pss']:.0f} MB PSS and {extra['uss']:.0f} MB USS summed over all processes")
        extra = extra["private_dirty"]
        failures += [f"speed-up {speedup:.2f}x < 1.3x"] if speedup < 1.3 else []
        failures += [f"p95 {p95:.0f} ms > 250 ms"] if p95 > 250 else []
        failures += [f"extra worker {extra:.0f} MB > 150 MB"] if extra > 150 else []
    errors = sum(x["errors"] for x in runs)
    failures += [f"{errors} request errors"] if errors else []
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({
            "machine": {"cpus": os.cpu_count(), "loadavg_end": os.getloadavg()}, "index": str(index),
            "clients": args.clients, "per_client": args.per_client, "runs": runs, "summary": summary,
            "failures": failures}, indent=1) + "\n")
    print("\nRESULT:", "PASS" if not failures else "FAIL: " + "; ".join(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
