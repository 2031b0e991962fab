"""Lines by meaning at question time (issue 18 item 4, answer/meaning.py): the variants on the question sets,
and the cost of a warm ask with and without the option.

    AZQ_CACHE=/tmp/azq-lines python bench/lines_by_meaning.py sets [--sets shared,dev,fresh] VARIANT ...
    AZQ_CACHE=/tmp/azq-lines python bench/lines_by_meaning.py cost [--rounds 5] [--questions 50] VARIANT

A VARIANT is what $AZCHAT_LINES_BY_MEANING takes ("w=.7,heading=1", "off"; meaning.from_env). `sets` runs
bench/gate.py once per variant on the same index (gate.py caches it per source tree under $AZQ_CACHE) and prints
its rows plus the gold-term count per set; never run it with the gate while choosing (`--sets gate` is for the
one run of the chosen variant, with "off" beside it). `cost` opens the index once and times `ask` per question,
the option off and on in turn for each question (interleaved, so machine load falls on both alike), over
--rounds passes of the first --questions questions of dev; prints p50 / p90 / mean per ask, and the embedder's
share (units embedded per ask).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def sets(variants: list[str], names: str) -> None:
    for v in variants:
        env = dict(os.environ, AZCHAT_LINES_BY_MEANING=v, PYTHONPATH=str(REPO / "src"))
        out = subprocess.run([sys.executable, str(REPO / "bench" / "gate.py"), "--sets", names],
                             env=env, capture_output=True, text=True, check=True).stdout
        print(f"\n### {v}\n{out}", flush=True)


def cost(variant: str, rounds: int, n: int) -> None:
    sys.path.insert(0, str(REPO / "src"))
    import hashlib

    from azchat import Retriever
    from azchat.answer.meaning import from_env

    cache = Path(os.environ.get("AZQ_CACHE", "/tmp/azq")) / ("gate-" + hashlib.sha1(str(REPO / "src").encode()).hexdigest()[:8])
    r = Retriever(cache / "notes-idx")
    on = from_env(variant)
    qs = [json.loads(line)["question"] for line in (REPO / "bench" / "dev_questions.jsonl").read_text().splitlines()
          if line.strip()][:n]
    texts: list[int] = []
    plain_similarity = r.similarity

    def counting(question, batch):
        texts.append(len(batch))
        return plain_similarity(question, batch)

    r.similarity = counting
    for q in qs:   # warm: the model, the notes' views, every code path once
        r.ask(q)
    times: dict[str, list[float]] = {"off": [], "on": []}
    for k in range(rounds):
        for i, q in enumerate(qs):
            order = ("off", "on") if (i + k) % 2 == 0 else ("on", "off")
            for which in order:
                r.lines_by_meaning = on if which == "on" else None
                t0 = time.perf_counter()
                r.ask(q)
                times[which].append((time.perf_counter() - t0) * 1000)
    for which, ts in times.items():
        ts.sort()
        print(f"{which:4} n={len(ts)} p50 {statistics.median(ts):.2f} ms  p90 {ts[int(0.9 * len(ts))]:.2f} ms  "
              f"mean {statistics.fmean(ts):.2f} ms")
    if texts:
        print(f"units embedded per ask: mean {statistics.fmean(texts):.1f}, max {max(texts)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["sets", "cost"])
    ap.add_argument("variants", nargs="+")
    ap.add_argument("--sets", default="shared,dev,fresh")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--questions", type=int, default=50)
    a = ap.parse_args()
    if a.what == "sets":
        sets(a.variants, a.sets)
    else:
        for v in a.variants:
            print(f"### {v}")
            cost(v, a.rounds, a.questions)


if __name__ == "__main__":
    main()
