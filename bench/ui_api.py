#!/usr/bin/env python3
"""What the chat server adds: `azchat serve` start-up, and /ask through the Gradio API (gradio_client)
against the same questions answered in-process by Retriever.ask (the baseline), sequentially and with
several concurrent clients. Prints a Markdown table.

    python bench/ui_api.py [--notes notes] [--index bench/out/ui-index] [-n 40] [--clients 4]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def row(name, secs, wall=None):
    ms = [s * 1000 for s in secs]
    qps = len(secs) / wall if wall else 1000 / statistics.mean(ms)
    return f"| {name} | {len(secs)} | {statistics.mean(ms):.0f} | {pct(ms, .5):.0f} | {pct(ms, .95):.0f} | {qps:.1f} |"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--notes", default=str(REPO / "notes"))
    ap.add_argument("--index", default=str(REPO / "bench" / "out" / "ui-index"))
    ap.add_argument("-n", type=int, default=40)
    ap.add_argument("--clients", type=int, default=4)
    args = ap.parse_args()
    questions = [json.loads(line)["question"] for line in open(REPO / "bench" / "dev_questions.jsonl")][:args.n]

    from azchat import build_index, Retriever

    build_index(args.notes, args.index)                       # so serve starts on a fresh index
    r = Retriever(args.index)
    r.ask("warm up")
    base = []
    for q in questions:
        t = time.perf_counter()
        r.ask(q)
        base.append(time.perf_counter() - t)

    from gradio_client import Client
    from load import Server      # bench/load.py: `azchat serve --json` in a subprocess, ready when it listens

    server = Server(Path(args.notes), Path(args.index), watch=False, log=Path(os.devnull))
    startup, url = server.startup, server.url
    try:
        client = Client(url, download_files=False, verbose=False)
        client.predict("warm up", api_name="/ask")
        seq = []
        for q in questions:
            t = time.perf_counter()
            client.predict(q, api_name="/ask")
            seq.append(time.perf_counter() - t)

        clients = [Client(url, download_files=False, verbose=False) for _ in range(args.clients)]

        def one(i):
            t = time.perf_counter()
            clients[i % args.clients].predict(questions[i], api_name="/ask")
            return time.perf_counter() - t

        t = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            conc = list(pool.map(one, range(len(questions))))
        conc_wall = time.perf_counter() - t
    finally:
        server.stop()

    print(f"`azchat serve` start-up to ready (index up to date, model + gradio import): {startup:.1f} s\n")
    print("| /ask | questions | mean ms | p50 ms | p95 ms | questions/s |")
    print("|---|---|---|---|---|---|")
    print(row("in-process Retriever.ask (baseline)", base))
    print(row("Gradio API, 1 client", seq))
    print(row(f"Gradio API, {args.clients} concurrent clients", conc, conc_wall))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
