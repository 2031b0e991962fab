"""Speed benchmark: cold ask, warm ask, one-note rebuild, full build, each beside its baseline from the same run.

    python bench/speed.py [--vault DIR] [--work DIR] [--runs N] [--json OUT]

The vault is copied to WORK/notes (the edits never touch the original). Every baseline is measured in this
same run, interleaved with the measurement where it is a subprocess, so machine load hits both alike.
Results of a run are recorded in bench/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VAULT = REPO.parent / "shared" / "corpus" / "niclasedge-notes"
QUESTION = "How do I peer two virtual networks?"


def env(**extra) -> dict:
    e = dict(os.environ, PYTHONPATH=str(REPO / "src"), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    for name in ("AZCHAT_NOTES", "AZCHAT_INDEX", "AZCHAT_MODEL", "AZCHAT_ONNX"):
        e.pop(name, None)
    e.update(extra)
    return e


RSS_WRAP = """
import resource, runpy, sys
args = sys.argv[1:]
try:
    if args[0] == "-c":
        sys.argv = ["-c", *args[2:]]
        exec(compile(args[1], "<bench>", "exec"), {"__name__": "__main__"})
    else:
        sys.argv = args
        runpy.run_module(args[0], run_name="__main__", alter_sys=True)
except SystemExit as e:
    if e.code not in (0, None):
        raise
finally:
    print("PEAK_RSS_KB=%d" % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def timed_rss(args: list[str], **extra) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB) and stdout of `python <args>` (module or -c), RSS from the process itself."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", RSS_WRAP, *args], capture_output=True, text=True,
                          env=env(**extra))
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{args[:3]} failed:\n{proc.stderr[-2000:]}")
    rss = int(proc.stderr.rsplit("PEAK_RSS_KB=", 1)[1].split()[0]) / 1024
    return wall, rss, proc.stdout


def azchat(*argv: str, **extra) -> tuple[float, float, str]:
    return timed_rss(["azchat", *argv], **extra)


def questions(n: int = 100) -> list[str]:
    qs = [json.loads(line)["question"] for line in (REPO / "bench" / "dev_questions.jsonl").open(encoding="utf-8")]
    return [qs[i % len(qs)] for i in range(n)]


WARM_CHILD = r"""
import json, sys, time, statistics
import numpy as np
index, qs = sys.argv[1], json.load(open(sys.argv[2]))
from azchat import Retriever
r = Retriever(index)
r.ask(qs[0])
light = []
for q in qs:
    t = time.perf_counter(); r.ask(q); light.append(time.perf_counter() - t)
# baseline: sentence-transformers encode + FAISS flat search, same questions, same process
from sentence_transformers import SentenceTransformer
import faiss
from azchat.index.models import resolve_model
m = SentenceTransformer(str(resolve_model(r.manifest["model"]).path), device="cpu")
flat = faiss.IndexFlatIP(r._gen.vectors.shape[1]); flat.add(np.asarray(r._gen.vectors, dtype=np.float32))
m.encode([qs[0]], normalize_embeddings=True)
base = []
for q in qs:
    t = time.perf_counter()
    v = m.encode([q], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    flat.search(np.asarray(v, dtype=np.float32), 10)
    base.append(time.perf_counter() - t)
pct = lambda xs, p: float(np.percentile(np.array(xs) * 1000, p))
print(json.dumps({"embedder": type(r.embedder).__name__, "light_p50": pct(light, 50), "light_p95": pct(light, 95),
                  "base_p50": pct(base, 50), "base_p95": pct(base, 95)}))
"""

RAW_EMBED_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from sentence_transformers import SentenceTransformer
from azchat.index.models import resolve_model
from azchat.index.store import load_generation
gen = load_generation(sys.argv[1])
m = SentenceTransformer(str(resolve_model(gen.manifest["model"]).path), device="cpu")
texts = [c.embed_text for c in gen.chunks]
t1 = time.perf_counter()
m.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
t2 = time.perf_counter()
print(json.dumps({"chunks": len(texts), "encode_s": t2 - t1, "import_and_load_s": t1 - t0}))
"""


def edit_note(notes: Path, i: int) -> str:
    """Append a sentence to a mid-sized note's last section (a one-note edit)."""
    candidates = sorted(notes.rglob("*.md"), key=lambda p: (p.stat().st_size, str(p)))
    path = candidates[len(candidates) // 2]
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(f"\nBenchmark edit {i}: one more sentence about peering and private endpoints.\n")
    return path.relative_to(notes).as_posix()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vault", type=Path, default=VAULT)
    ap.add_argument("--work", type=Path, default=Path("/tmp/azchat-bench"))
    ap.add_argument("--runs", type=int, default=5, help="cold runs of each side (interleaved)")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    ap.add_argument("--skip-build", action="store_true", help="reuse WORK/index; skip the build rows")
    args = ap.parse_args()
    if not args.vault.is_dir():
        raise SystemExit(f"No vault at {args.vault}")
    notes, index = args.work / "notes", args.work / "index"
    res: dict = {"vault": str(args.vault), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                 "cpus": os.cpu_count(), "python": sys.version.split()[0]}
    if not args.skip_build or not index.is_dir():
        shutil.rmtree(args.work, ignore_errors=True)
        shutil.copytree(args.vault, notes)
        print("first build (makes the ONNX export) ...", file=sys.stderr)
        wall, _, out = azchat("index", "--notes", str(notes), "--index", str(index), "--json")
        res["first_build_s"] = wall
        print("full build ...", file=sys.stderr)
        wall, rss, out = azchat("index", "--full", "--notes", str(notes), "--index", str(index), "--json")
        res["full_build_s"], res["full_build_stats"] = wall, json.loads(out)
        print("raw embed baseline ...", file=sys.stderr)
        _, _, out = timed_rss(["-c", RAW_EMBED_CHILD, str(index)])
        res["raw_embed"] = json.loads(out)
        print("one-note rebuilds ...", file=sys.stderr)
        one = []
        for i in range(3):
            rel = edit_note(notes, i)
            wall, rss, out = azchat("index", "--notes", str(notes), "--index", str(index), "--json")
            st = json.loads(out)
            one.append({"wall_s": wall, "rss_mb": rss, "note": rel, "embedded": st["embedded"],
                        "updated": st["updated"]})
        res["one_note"] = one

    print("cold ask vs import sentence_transformers ...", file=sys.stderr)
    cold, imp = [], []
    for _ in range(args.runs):
        imp.append(timed_rss(["-c", "import sentence_transformers"]))
        cold.append(azchat("ask", QUESTION, "--notes", str(notes), "--index", str(index), "--json"))
    res["cold_ask_s"] = [c[0] for c in cold]
    res["cold_ask_rss_mb"] = [c[1] for c in cold]
    res["import_st_s"] = [i[0] for i in imp]
    res["import_st_rss_mb"] = [i[1] for i in imp]
    print("cold ask on the sentence-transformers path (AZCHAT_ONNX=0) ...", file=sys.stderr)
    ref = [azchat("ask", QUESTION, "--notes", str(notes), "--index", str(index), "--json", AZCHAT_ONNX="0")
           for _ in range(2)]
    res["cold_ask_st_s"] = [r[0] for r in ref]
    res["cold_ask_st_rss_mb"] = [r[1] for r in ref]

    print("warm ask p50 over 100 questions ...", file=sys.stderr)
    qfile = args.work / "questions.json"
    qfile.write_text(json.dumps(questions(100)), encoding="utf-8")
    _, _, out = timed_rss(["-c", WARM_CHILD, str(index), str(qfile)])
    res["warm"] = json.loads(out)

    print_table(res)
    if args.json:
        args.json.write_text(json.dumps(res, indent=1), encoding="utf-8")
    return 0


def print_table(res: dict) -> None:
    med = statistics.median
    rows = []
    cold, imp = med(res["cold_ask_s"]), med(res["import_st_s"])
    rows.append(("cold `azchat ask --json` wall (median)", f"{cold:.2f} s", "`import sentence_transformers`",
                 f"{imp:.2f} s", f"{cold / imp:.3f}×", "≤ 0.15×"))
    w = res["warm"]
    rows.append(("warm `Retriever.ask` p50 / p95, 100 questions",
                 f"{w['light_p50']:.1f} / {w['light_p95']:.1f} ms",
                 "ST encode + FAISS flat search p50 / p95", f"{w['base_p50']:.1f} / {w['base_p95']:.1f} ms",
                 f"{w['light_p50'] / w['base_p50']:.2f}×", "≤ 15 ms"))
    if "one_note" in res:
        one = med(o["wall_s"] for o in res["one_note"])
        full = res["full_build_s"]
        rows.append(("`azchat index` after editing one note (median of 3)", f"{one:.2f} s",
                     "`azchat index --full`, same vault", f"{full:.1f} s", f"{one / full:.3f}×", "≤ 0.03×"))
        raw = res["raw_embed"]["encode_s"]
        rows.append((f"full build ({res['full_build_stats']['chunks']} chunks)", f"{full:.1f} s",
                     "`SentenceTransformer.encode` on those chunks", f"{raw:.1f} s", f"{full / raw:.2f}×",
                     "≤ 1.1×"))
    rss = max(res["cold_ask_rss_mb"])
    rows.append(("peak RSS of a cold `azchat ask` (max)", f"{rss:.0f} MB",
                 "same ask on the sentence-transformers path", f"{max(res['cold_ask_st_rss_mb']):.0f} MB",
                 f"{rss / max(res['cold_ask_st_rss_mb']):.2f}×", "≤ 250 MB"))
    print(f"\n{res['date']}, {res['cpus']} CPUs, Python {res['python']}, vault {res['vault']}\n")
    print("| what | measured | baseline | baseline value | ratio | target |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print(f"\ncold ask runs: {', '.join(f'{x:.2f}' for x in res['cold_ask_s'])} s; import ST runs: "
          f"{', '.join(f'{x:.2f}' for x in res['import_st_s'])} s; cold ask on the ST path: "
          f"{', '.join(f'{x:.2f}' for x in res['cold_ask_st_s'])} s")
    if "one_note" in res:
        print(f"first build incl. ONNX export: {res['first_build_s']:.1f} s; raw embed import+load: "
              f"{res['raw_embed']['import_and_load_s']:.1f} s; one-note runs: "
              + ", ".join(f"{o['wall_s']:.2f} s ({o['embedded']} embedded)" for o in res["one_note"]))


if __name__ == "__main__":
    sys.exit(main())
