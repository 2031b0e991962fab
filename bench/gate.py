"""Every question set through the shipped `ask` path, side by side, with a row per class (kind x language).

    python bench/gate.py [--src DIR] [--sets gate,shared,dev,fresh,off-topic] [--rows OUT.json]

`gate` (bench/gate_questions.jsonl) is the held-out set: written from randomly chosen notes before anything was
measured on it, and never tuned on (nothing in bench/quality.py's calibration reads it). --src runs another
checkout's code (a baseline) on the same sets; each source tree gets its own index cache under $AZQ_CACHE.
--rows writes every question's ranking, refusal and answer text, to diff two runs answer by answer.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", default=str(REPO / "src"))
    ap.add_argument("--sets", default="gate,shared,dev,fresh,off-topic")
    ap.add_argument("--rows", help="write every question's result to this JSON file")
    ap.add_argument("--no-classes", action="store_true")
    a = ap.parse_args()
    src = Path(a.src).resolve()
    sys.path.insert(0, str(src))
    from azchat import Retriever, build_index
    try:
        from azchat.apps.evaluation import run as ev
    except ImportError:             # the layout before the code moved into folders (a --src baseline)
        from azchat.apps import evaluation as ev

    shared = next(p for p in (REPO.parent / "shared", REPO.parent.parent / "shared") if p.is_dir())
    files = {"gate": REPO / "bench" / "gate_questions.jsonl",
             "shared": shared / "bench" / "notes-questions" / "questions-shared.jsonl",
             "dev": REPO / "bench" / "dev_questions.jsonl", "fresh": REPO / "bench" / "fresh_questions.jsonl",
             "off-topic": REPO / "bench" / "offtopic_questions.jsonl"}
    cache = Path(os.environ.get("AZQ_CACHE", "/tmp/azq")) / ("gate-" + hashlib.sha1(str(src).encode()).hexdigest()[:8])
    index = cache / "notes-idx"
    build_index(shared / "corpus" / "niclasedge-notes", index, log=lambda *x: print(*x, file=sys.stderr))
    r = Retriever(index)
    f = lambda v: "-" if v is None else f"{v:.3f}"   # noqa: E731
    print("| set | n | hit@1 | hit@5 | MRR@10 | gold term | answerable refused | unanswerable refused |")
    print("|---|---|---|---|---|---|---|---|")
    dump = {}

    def row(name, s):
        refused = round((s["answerable_refused"] or 0) * s["answerable"]) if s["answerable"] else 0
        print(f"| {name} | {s['answerable']} | {f(s['hit@1'])} | {f(s['hit@5'])} | {f(s['mrr@10'])} | "
              f"{f(s.get('answer_term_rate'))} | {refused}/{s['answerable']} | "
              f"{s['unanswerable_refused']}/{s['unanswerable']} |", flush=True)

    for name in a.sets.split(","):
        path = files[name]
        if not path.is_file():
            continue
        qs = ev.load_questions(path)
        res = ev.evaluate_questions(r, qs)
        row(name, res["summary"])
        if not a.no_classes:
            groups: dict = {}
            for rw in res["rows"]:
                if rw["gold_files"]:
                    groups.setdefault(f"{rw.get('kind', '-')} / {rw.get('lang', '-')}", []).append(rw)
            for cls in sorted(groups):
                row(f"  {name} {cls}", ev.summarize(groups[cls]))
        dump[name] = res["rows"]
        if a.rows:
            for rw, q in zip(res["rows"], qs):
                ans = r.ask(q.question)
                rw["answer"], rw["citations"] = ans.answer, [c.to_dict() for c in ans.citations]
    if a.rows:
        Path(a.rows).write_text(json.dumps(dump, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
