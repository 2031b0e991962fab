#!/usr/bin/env python3
"""The REST API and `azchat mcp` against their targets, each beside its baseline in the same run.

1. REST vs Gradio API: one `azchat serve` (bench/load.py's Server); C clients x N asks through the Gradio API
   (load.py's Load, gradio_client) and then through POST /api/ask (httpx, one keep-alive client each); one
   warm client asking sequentially on each, and Retriever.ask in this process, as floors.
   Targets: REST 0 errors, p95 <= 250 ms, throughput >= 4x the Gradio API's.
2. `azchat mcp` start-up on the shipped notes (notes/, index built once before): the time from process start
   to the `initialize` reply and to the first `search` reply, over raw pipes, R runs; beside it
   `azchat search --json` (a whole CLI query) and the bare `import mcp.server.mcpserver`.
   Targets: initialize <= 1 s, first search <= 2 s.

    python bench/api.py [--notes ../shared/corpus/niclasedge-notes] [--index /tmp/azload-idx]
                        [--clients 20] [--per-client 10] [--runs 5]

Prints Markdown tables and exits 1 when a target is missed.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import REPO, Load, Server, client, pct, row  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1"}


def rest_connect(url: str):
    import httpx

    return httpx.Client(base_url=url.rstrip("/"), timeout=60)


def rest_ask(cl, question: str):
    r = cl.post("/api/ask", json={"question": question})
    r.raise_for_status()
    return r.json()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rps(load: Load, wall: float) -> float:
    return len(load.latencies) / wall


def phase_rest(args, notes: Path, index: Path, questions: list[str], work: Path) -> tuple[list[str], list[str]]:
    from azchat import Retriever

    r = Retriever(index)
    r.ask("warm up")
    t, ct = time.perf_counter(), time.process_time()
    lat = []
    for q in questions[:50]:
        t1 = time.perf_counter()
        r.ask(q)
        lat.append(time.perf_counter() - t1)
    inproc = row("floor: Retriever.ask in process, sequential", lat, 0, time.perf_counter() - t)
    floor_cpu = f"| floor: Retriever.ask in process | {1000 * (time.process_time() - ct) / len(lat):.1f} | - | - |"

    srv = Server(notes, index, watch=False, log=work / "serve.log")
    rows, failures = [inproc], []
    cpu = ["", "| under load: CPU per ask | server ms | client ms | cores busy (server + client) |",
           "|---|---|---|---|", floor_cpu]
    try:
        warm = client(srv.url)
        warm.predict("warm up", api_name="/ask")
        rest_ask(rest_connect(srv.url), "warm up")
        results = {}
        for name, connect, ask in [("Gradio API (gradio_client, /ask)", None, None),
                                   ("REST (httpx, POST /api/ask)", rest_connect, rest_ask)]:
            seq = Load(srv.url, questions, 1, 2 * args.per_client, connect=connect, ask=ask)
            seq_wall = seq.run()
            load = Load(srv.url, questions, args.clients, args.per_client, connect=connect, ask=ask)
            server_cpu, client_cpu = cpu_seconds(srv.proc.pid), time.process_time()
            wall = load.run()
            server_cpu, client_cpu = cpu_seconds(srv.proc.pid) - server_cpu, time.process_time() - client_cpu
            n = max(1, len(load.latencies))
            cpu.append(f"| {name} | {1000 * server_cpu / n:.1f} | {1000 * client_cpu / n:.1f} | "
                       f"{(server_cpu + client_cpu) / wall:.2f} |")
            results[name] = (load, wall)
            rows.append(row(f"{name}: 1 client, sequential", seq.latencies, len(seq.errors), seq_wall))
            rows.append(row(f"{name}: {args.clients} clients x {args.per_client}", load.latencies,
                            len(load.errors), wall))
            for e in (seq.errors + load.errors)[:5]:
                print("error:", name, e)
    finally:
        srv.stop()
    (g, g_wall), (rest, r_wall) = results.values()
    ratio = rps(rest, r_wall) / rps(g, g_wall)
    p95 = pct(rest.latencies, 0.95) * 1000
    rows += cpu
    rows.append(f"\nREST vs Gradio API under load: {rps(rest, r_wall):.1f} vs {rps(g, g_wall):.1f} asks/s "
                f"= {ratio:.1f}x; REST p95 {p95:.0f} ms; REST errors {len(rest.errors)}")
    if rest.errors or g.errors:
        failures.append(f"{len(rest.errors)} REST / {len(g.errors)} Gradio errors")
    if p95 > 250:
        failures.append(f"REST p95 {p95:.0f} ms > 250 ms")
    if ratio < 4:
        failures.append(f"REST throughput only {ratio:.1f}x the Gradio API's")
    return rows, failures


def mcp_start(notes: Path, index: Path) -> tuple[float, float, float]:
    """(initialize reply, first search reply, process exit after stdin closed), seconds from Popen."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "azchat", "mcp", "--notes", str(notes), "--index", str(index)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=ENV)

    def send(msg: dict) -> None:
        proc.stdin.write((json.dumps(msg) + "\n").encode())
        proc.stdin.flush()

    send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}})
    assert json.loads(proc.stdout.readline())["id"] == 1
    t_init = time.perf_counter() - t0
    send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    send({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
          "params": {"name": "search", "arguments": {"query": "how do I peer two vnets", "k": 5}}})
    reply = json.loads(proc.stdout.readline())
    assert reply["id"] == 2 and not reply["result"].get("isError"), reply
    assert reply["result"]["structuredContent"]["hits"], reply
    t_search = time.perf_counter() - t0
    t = time.perf_counter()
    proc.stdin.close()
    proc.wait(30)
    return t_init, t_search, time.perf_counter() - t


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t


def phase_mcp(args) -> tuple[list[str], list[str]]:
    notes, index = REPO / "notes", Path(args.mcp_index)
    from azchat import build_index

    build_index(notes, index)
    runs = [mcp_start(notes, index) for _ in range(args.runs)]
    cli = [timed([sys.executable, "-m", "azchat", "search", "how do I peer two vnets", "--notes", str(notes),
                  "--index", str(index), "--json"]) for _ in range(args.runs)]
    imp = [timed([sys.executable, "-c", "import mcp.server.mcpserver"]) for _ in range(args.runs)]
    bare = [timed([sys.executable, "-c", "pass"]) for _ in range(args.runs)]

    def line(name, values, target=None):
        med, worst = statistics.median(values), max(values)
        return f"| {name} | {med:.2f} | {min(values):.2f} | {worst:.2f} | {target or ''} |"

    rows = [f"| `azchat mcp` on notes/ ({args.runs} runs) | median s | min s | max s | target |", "|---|---|---|---|---|",
            line("process start -> `initialize` reply", [r[0] for r in runs], "<= 1 s"),
            line("process start -> first `search` reply", [r[1] for r in runs], "<= 2 s"),
            line("stdin closed -> process exited", [r[2] for r in runs]),
            line("baseline: `azchat search --json` (whole CLI query)", cli),
            line("baseline: python -c 'import mcp.server.mcpserver'", imp),
            line("baseline: python -c pass", bare)]
    failures = []
    if statistics.median(r[0] for r in runs) > 1.0:
        failures.append("MCP initialize median > 1 s")
    if statistics.median(r[1] for r in runs) > 2.0:
        failures.append("MCP first search median > 2 s")
    return rows, failures


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--notes", default=str(REPO.parent / "shared" / "corpus" / "niclasedge-notes"))
    ap.add_argument("--index", default="/tmp/azload-idx")
    ap.add_argument("--mcp-index", default="/tmp/azbench-mcp-idx")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--per-client", type=int, default=10)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--skip-rest", action="store_true")
    ap.add_argument("--skip-mcp", action="store_true")
    args = ap.parse_args()
    notes, index = Path(args.notes), Path(args.index)
    if not notes.is_dir():
        notes = REPO / "notes"
    questions = [json.loads(line)["question"] for line in open(REPO / "bench" / "dev_questions.jsonl")]
    from azchat import build_index

    stats = build_index(notes, index)
    print(f"index: {notes.name}: {stats.notes} notes, {stats.chunks} chunks; cores: {os.cpu_count()}; "
          f"load average before: {os.getloadavg()[0]:.1f}\n")
    failures: list[str] = []
    if not args.skip_rest:
        with tempfile.TemporaryDirectory(prefix="azapi-") as work:
            rows, f = phase_rest(args, notes, index, questions, Path(work))
        failures += f
        print("| asks | requests | errors | mean ms | p50 ms | p95 ms | max ms | requests/s |")
        print("|---|---|---|---|---|---|---|---|")
        print("\n".join(rows) + "\n")
    if not args.skip_mcp:
        rows, f = phase_mcp(args)
        failures += f
        print("\n".join(rows))
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")
    print("\nRESULT:", "PASS" if not failures else "FAIL: " + "; ".join(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
