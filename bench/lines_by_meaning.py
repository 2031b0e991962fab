"""Lines by meaning at question time (issue 18 item 4, answer/meaning.py): the variants on the question sets,
and the cost of a warm ask with and without the option.

    AZQ_CACHE=/tmp/azq-lines python bench/lines_by_meaning.py [--src DIR] sets [--sets shared,dev,fresh] VARIANT ...
    AZQ_CACHE=/tmp/azq-lines python bench/lines_by_meaning.py [--src DIR] cost [--rounds 5] [--questions 50] VARIANT

The option was measured and not kept (bench/QUALITY.md, round 11): it lives in commit ceb63c7 (branch
lines-by-meaning, src/azchat/answer/meaning.py). To rerun, check that commit out beside this one
(`git worktree add /tmp/lbm ceb63c7`) and pass --src /tmp/lbm/src; without --src this checkout's src is used.

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


def sets(src: Path, variants: list[str], names: str) -> None:
    for v in variants:
        env = dict(os.environ, AZCHAT_LINES_BY_MEANING=v, PYTHONPATH=str(src))
        out = subprocess.run([sys.executable, str(REPO / "bench" / "gate.py"), "--src", str(src), "--sets", names],
                             env=env, capture_output=True, text=True, check=True).stdout
        print(f"\n### {v}\n{out}", flush=True)


def cost(src: Path, variant: str, rounds: int, n: int) -> None:
    sys.path.insert(0, str(src))
    import hashlib

    from azchat import Retriever
    try:
        from azchat.answer.meaning import from_env
    except ImportError:
        sys.exit(f"{src} has no azchat.answer.meaning: pass --src with a checkout of commit ceb63c7")

    cache = Path(os.environ.get("AZQ_CACHE", "/tmp/azq")) / ("gate-" + hashlib.sha1(str(src).encode()).hexdigest()[:8])
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
    r.lines_by_meaning = on
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
    if texts:   # a question the embedder reads poorly (trust 0: most German ones) embeds nothing
        print(f"asks that embedded: {len(texts)} of {len(times['on']) + len(qs)} (warm-up included); units per "
              f"such ask: mean {statistics.fmean(texts):.1f}, max {max(texts)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", default=str(REPO / "src"), help="the source tree whose azchat runs (see above)")
    ap.add_argument("what", choices=["sets", "cost"])
    ap.add_argument("variants", nargs="+")
    ap.add_argument("--sets", default="shared,dev,fresh")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--questions", type=int, default=50)
    a = ap.parse_args()
    src = Path(a.src).resolve()
    if a.what == "sets":
        sets(src, a.variants, a.sets)
    else:
        for v in a.variants:
            print(f"### {v}", flush=True)
            cost(src, v, a.rounds, a.questions)


if __name__ == "__main__":
    main()
