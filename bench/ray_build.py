"""The Ray build against the local build, in the same run: wall time, scaling 1 -> 2 workers, same answers.

    python bench/ray_build.py [--corpora vault,scifact] [--workers 2,1] [--repeat N] [--work DIR] [--json OUT.json]
    python bench/ray_build.py --compare-only ...     # compare the indexes a run left in --work

Each build is a fresh `azchat index --json` in its own process and its own new index folder (a first build:
every chunk embedded, the ONNX export made), timed from the outside (imports, the cluster's start and stop
included): the local build, then `--ray --ray-workers N` for each N (a private local Ray cluster on this
machine's CPUs, as `azchat index --ray` starts it). Then every index is compared with the local one:
  - the chunks (ids, spans, texts) and the vectors (largest absolute difference);
  - vault: every question of bench/gate_questions.jsonl and bench/dev_questions.jsonl asked with
    `Retriever.ask` (the shipped path, each index with its own ONNX export): same top-10 hits, same answer
    text, same refusal; and the question sets' hit@1/hit@5/MRR@10;
  - SciFact (BEIR test queries): nDCG@10 and recall@100 of lexical, dense and hybrid, as `azchat eval --beir`
    computes them, on each index.
The load average is recorded before and after each build (the machine is shared).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = next((p for p in (REPO.parent / "shared", REPO.parent.parent / "shared") if p.is_dir()), REPO.parent / "shared")
VAULT = SHARED / "corpus" / "niclasedge-notes"
SCIFACT = SHARED / "bench" / "scifact"
SETS = [REPO / "bench" / "gate_questions.jsonl", REPO / "bench" / "dev_questions.jsonl"]


def say(*a):
    print(*a, file=sys.stderr, flush=True)


def build(notes: Path, index: Path, ray_workers: int | None) -> dict:
    """One first build in a fresh process; returns its --json, wall seconds and the load around it."""
    shutil.rmtree(index, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "azchat", "index", "--notes", str(notes), "--index", str(index), "--json"]
    if ray_workers:
        cmd += ["--ray", "--ray-workers", str(ray_workers)]
    load0 = os.getloadavg()
    t = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"build failed: {' '.join(cmd)}\n{done.stderr[-3000:]}")
    out = json.loads(done.stdout)
    row = {"build": f"ray x{ray_workers}" if ray_workers else "local", "wall_s": round(wall, 2),
           "build_s": out["seconds"], "chunks": out["chunks"], "embedded": out["embedded"],
           "ray": out.get("ray"), "load_before": [round(x, 2) for x in load0],
           "load_after": [round(x, 2) for x in os.getloadavg()]}
    say(json.dumps(row))
    return row


def same_chunks(a: Path, b: Path) -> dict:
    import numpy as np

    from azchat.index.store import load_generation

    ga, gb = load_generation(a), load_generation(b)

    def rows(g):
        t = g.chunks
        return [(c.id, c.path, c.start_line, c.end_line, c.text, c.embed_text, c.search_text)
                for c in (t[i] for i in range(len(t)))]

    va, vb = np.asarray(ga.vectors, dtype=np.float32), np.asarray(gb.vectors, dtype=np.float32)
    diff = float(np.abs(va - vb).max()) if va.shape == vb.shape else None
    cos = float((va * vb).sum(axis=1).min()) if va.shape == vb.shape else None
    return {"same_chunks": rows(ga) == rows(gb), "rows": len(ga.chunks), "max_abs_diff": diff, "min_cosine": cos}


def vault_answers(index: Path) -> tuple[dict, dict]:
    """Per question: top-10 hits, answer text, refused; per set: the eval summary."""
    from azchat.apps import evaluation as ev
    from azchat import Retriever

    r = Retriever(index)
    per, sums = {}, {}
    for path in SETS:
        qs = ev.load_questions(path)
        for q in qs:
            hits = [(h.path, h.start_line, h.end_line) for h in r.search(q.question, k=10)]
            a = r.ask(q.question).to_dict()
            per[f"{path.stem}:{q.question}"] = {"hits": hits, "answer": a["answer"], "refused": not a["found"],
                                                 "citations": a["citations"]}
        s = ev.evaluate_questions(r, qs)["summary"]
        sums[path.stem] = {k: s.get(k) for k in ("hit@1", "hit@5", "mrr@10", "answer_term_rate")}
    return per, sums


def scifact_scores(index: Path, mapping: dict, beir) -> dict:
    from azchat.apps import evaluation as ev
    from azchat.apps.beir import score_beir
    from azchat import Retriever

    r = Retriever(index)
    ev._cached(r, beir.queries.values())
    return score_beir(r, beir, mapping, ("lexical", "dense", "hybrid"))


def run_corpus(name: str, notes: Path, work: Path, workers: list[int], extra=None, repeat: int = 1,
               compare_only: bool = False) -> dict:
    """Builds (local, then Ray with each worker count; `repeat` rounds, interleaved), then the comparisons on
    the last round's indexes. `compare_only`: no builds, compare the indexes already in `work`."""
    builds = []
    for _ in range(0 if compare_only else repeat):
        builds.append(build(notes, work / f"{name}-local", None))
        for n in workers:
            builds.append(build(notes, work / f"{name}-ray{n}", n))
    local = work / f"{name}-local"
    res = {"corpus": name, "builds": builds, "compare": {}}
    if name == "vault":
        base_per, base_sum = vault_answers(local)
        res["local_sets"] = base_sum
    for n in workers:
        idx = work / f"{name}-ray{n}"
        cmp = same_chunks(local, idx)
        if name == "vault":
            per, sums = vault_answers(idx)
            cmp["questions"] = len(base_per)
            cmp["same_hits"] = sum(per[q]["hits"] == base_per[q]["hits"] for q in base_per)
            cmp["same_answer"] = sum(per[q]["answer"] == base_per[q]["answer"] for q in base_per)
            cmp["same_refusal"] = sum(per[q]["refused"] == base_per[q]["refused"] for q in base_per)
            cmp["sets"] = sums
        res["compare"][f"ray x{n}"] = cmp
        say(json.dumps({name: {f"ray x{n}": cmp}}))
    if name == "scifact":
        mapping, beir = extra
        res["scores"] = {"local": scifact_scores(local, mapping, beir)}
        for n in workers:
            res["scores"][f"ray x{n}"] = scifact_scores(work / f"{name}-ray{n}", mapping, beir)
        say(json.dumps(res["scores"]))
    if builds:     # median wall time of each kind of build, and its ratio to the local build's
        import statistics

        walls: dict[str, list[float]] = {}
        for b in builds:
            walls.setdefault(b["build"], []).append(b["wall_s"])
        med = {k: statistics.median(v) for k, v in walls.items()}
        res["median_wall_s"] = med
        res["overhead"] = {k: round(v / med["local"], 3) for k, v in med.items() if k != "local"}
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpora", default="vault,scifact")
    ap.add_argument("--workers", default="2,1", help="Ray worker counts to build with, in this order")
    ap.add_argument("--work", default="/tmp/azray-bench")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--repeat", type=int, default=1, help="rounds of builds, interleaved (local, ray N, ...)")
    ap.add_argument("--compare-only", action="store_true", help="no builds: compare the indexes in --work")
    a = ap.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    import ray  # noqa: F401  (fail here, not after the local build, when Ray is missing)

    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    workers = [int(x) for x in a.workers.split(",") if x]
    out = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "ray": ray.__version__},
           "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "results": []}
    for name in a.corpora.split(","):
        if name == "vault":
            out["results"].append(run_corpus("vault", VAULT, work, workers, repeat=a.repeat,
                                              compare_only=a.compare_only))
        elif name == "scifact":
            from azchat.apps import beir as ev      # load_beir, write_beir_notes (the BEIR half of evaluation)

            beir = ev.load_beir(SCIFACT)
            notes = work / "scifact-notes"
            if not a.compare_only:
                shutil.rmtree(notes, ignore_errors=True)
            mapping = {ev._safe_name(d) + ".md": d for d in beir.corpus} if a.compare_only \
                else ev.write_beir_notes(beir, notes)         # (note name -> doc id, as written)
            out["results"].append(run_corpus("scifact", notes, work, workers, (mapping, beir), repeat=a.repeat,
                                              compare_only=a.compare_only))
        if a.json:
            Path(a.json).write_text(json.dumps(out, indent=1), encoding="utf-8")
    out["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    text = json.dumps(out, indent=1)
    if a.json:
        Path(a.json).write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
