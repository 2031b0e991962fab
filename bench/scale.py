"""Scale benchmark: an index of N chunks without embedding them, then open time, RSS, warm asks, disk size.

    python bench/scale.py --chunks N --out DIR [--json [OUT]] [--questions 100] [--measure-only]
    python bench/scale.py --index DIR [--json [OUT]]      # measure an index built by `azchat index`
    ... --baseline-src /work/main/src   # also the code before columns, same chunks, same run
    ... --measure-only --baseline-index OLD --baseline-src SRC [--profile DIR]
        # OLD: the same corpus built by SRC's own bench/scale.py; one-note updates, open on base + segment
        # and cold asks of both codes, alternating in this run (and one cProfiled update each)

DIR becomes an index that Retriever(DIR) opens and asks like any other. Its chunks are the chunks of
ms-azure-docs (../shared/corpus/ms-azure-docs, cut by the real chunker with a word count for tokens) cycled:
copy j of a note lives at c<j>/<path> and each chunk carries two extra words ("rev<j>" and one drawn from a
Zipf-distributed made-up vocabulary), so BM25's vocabulary grows with N as a real corpus's does. Its vectors
are drawn around K cluster centres (each source chunk has its own offset from its centre, each copy its own
noise), so IVF buckets fill as on real data. The build streams: chunks go to the column files and to
BM25Writer one at a time, vectors are written in blocks and read back memory-mapped by the FAISS build.
The ONNX export of the bundled model is made once into --cache and linked into DIR, so asks embed questions
with the real model.

Measurements, each in a fresh process (python -c), imports excluded from open times:
  open (model excluded): Retriever(DIR, embedder=<a stub with the manifest's name>): seconds, RSS after
  open (model included): Retriever(DIR) with the ONNX model: seconds, RSS after
  warm ask: Retriever(DIR).ask() on --questions questions after 5 warm-up asks: p50 / p95 ms, RSS after
  disk: bytes under the live generation
Build: seconds and peak RSS (ru_maxrss) of the build process.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
CORPUS = REPO.parent / "shared" / "corpus" / "ms-azure-docs"
CACHE = Path(os.environ.get("AZCHAT_SCALE_CACHE", "/tmp/azchat-scale-cache"))
DIM = 384


def env() -> dict:
    e = dict(os.environ, PYTHONPATH=str(REPO / "src"), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    for name in ("AZCHAT_NOTES", "AZCHAT_INDEX", "AZCHAT_MODEL", "AZCHAT_ONNX"):
        e.pop(name, None)
    return e


def log(msg: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- the source chunks -------------------------------------------------------------------------------
def source_chunks(corpus: Path, real_tokens: bool = False, notes_meta: dict | None = None):
    """The corpus's chunks (real chunker; word counts for tokens, or the bundled model's tokenizer with
    real_tokens), sorted as an index stores them. notes_meta: filled with each note's manifest entry."""
    from azchat.notes.chunking import chunk_note
    from azchat.config import ChunkSettings
    from azchat.index.embedding import HashEmbedder
    from azchat.notes.reading import Skipped, find_notes, read_note, relative_path

    counter = HashEmbedder(dim=DIM, max_tokens=256)
    if real_tokens:
        from azchat.index.onnx_embedding import OnnxEmbedder

        counter = OnnxEmbedder(export_dir())
    paths, _ = find_notes(corpus)
    out = []
    for path in paths:
        note = read_note(path, corpus)
        if not isinstance(note, Skipped):
            chunks = chunk_note(note, counter.count_tokens, counter.max_tokens, ChunkSettings())
            out.extend(chunks)
            if notes_meta is not None:
                st = path.stat()
                notes_meta[relative_path(path, corpus)] = {
                    "hash": note.content_hash, "mtime_ns": st.st_mtime_ns, "size": st.st_size,
                    "title": note.title, "tags": note.tags, "warnings": note.warnings, "chunks": len(chunks)}
    out.sort(key=lambda c: (c.path, c.start_line, c.id))
    return out


def made_up_word(k: int) -> str:
    letters = "bcdfghjklmnpqrstvwxz"
    word = "q"
    while True:
        k, r = divmod(k, 20)
        word += letters[r]
        if k == 0:
            return word


def export_dir() -> Path:
    """The bundled model's ONNX export, made once under CACHE (imports torch the first time)."""
    from azchat.config import model_name
    from azchat.index.models import resolve_model
    from azchat.index.onnx_embedding import export_model, find_export

    info = resolve_model(model_name(None))
    found = find_export(CACHE, info)
    if found is None:
        log("exporting the bundled model to ONNX (once)")
        found = export_model(CACHE, info)
    return found


# -- the build -----------------------------------------------------------------------------------------
def build(n: int, out: Path, corpus: Path, clusters: int, seed: int = 0, source_only: bool = False) -> dict:
    import numpy as np

    from azchat.index import dense
    from azchat.config import ChunkSettings, model_name
    from azchat.index.analysis import document_tokens
    from azchat.index.bm25_writer import BM25Writer
    from azchat.index.models import resolve_model
    from azchat.progress import ProgressBar
    from azchat.index.store import build_lock, write_generation
    from azchat.types import Chunk

    t0 = time.perf_counter()
    info = resolve_model(model_name(None))
    export = export_dir()
    source_notes: dict[str, dict] = {}
    base = source_chunks(corpus, real_tokens=source_only, notes_meta=source_notes)
    b = len(base)
    if source_only:       # the corpus itself: its real chunks (model tokenizer), its notes, no copies
        n = b
    log(f"{b} source chunks from {corpus}; building {n} chunks in {out}")
    writer = BM25Writer()
    base_ids = [writer.ids(writer.cut(c.search_text)) for c in base]
    rng = np.random.default_rng(seed)
    zipf_words = rng.zipf(1.1, size=n) % 2_000_000
    notes: dict[str, dict] = {}
    bar = ProgressBar("chunks")

    def rows():
        for row in range(n):
            j, k = divmod(row, b)
            c = base[k]
            if source_only:
                writer.add(c.search_text)
                notes.update(source_notes) if row == 0 else None
                if row % 20_000 == 0 or row == n - 1:
                    bar(row + 1, n)
                yield c
                continue
            extra = f"rev{j} {made_up_word(int(zipf_words[row]))}"
            path = f"c{j:03d}/{c.path}"
            chunk = Chunk(id=f"c{j}-{c.id}", path=path, title=c.title, heading=c.heading,
                          start_line=c.start_line, end_line=c.end_line, text=f"{c.text} ({extra})",
                          embed_text=c.embed_text, search_text=f"{c.search_text} {extra}", tags=c.tags,
                          aliases=c.aliases)
            writer.add_ids(np.concatenate([base_ids[k], writer.ids(document_tokens(extra))]))
            meta = notes.get(path)
            if meta is None:
                meta = notes[path] = {"hash": f"synthetic-{j}-{k}", "mtime_ns": 0, "size": 0, "title": c.title,
                                      "tags": c.tags, "warnings": [], "chunks": 0}
            meta["chunks"] += 1
            if row % 20_000 == 0 or row == n - 1:
                bar(row + 1, n)
            yield chunk

    # vectors: centre + the source chunk's offset + this copy's noise, normalized; written in blocks
    out.mkdir(parents=True, exist_ok=True)
    tmp_vectors = out / ".scale-vectors.npy"
    centres = rng.normal(size=(clusters, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    own = rng.integers(0, clusters, size=b)
    offsets = (rng.normal(size=(b, DIM)) * (1.0 / np.sqrt(DIM))).astype(np.float32)
    with open(tmp_vectors, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f4", "fortran_order": False, "shape": (n, DIM)})
        for start in range(0, n, 65_536):
            idx = np.arange(start, min(n, start + 65_536)) % b
            v = centres[own[idx]] + offsets[idx] + \
                rng.normal(size=(len(idx), DIM)).astype(np.float32) * (1.0 / np.sqrt(DIM))
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            fh.write(v.astype(np.float32).tobytes())
    vectors = np.load(tmp_vectors, mmap_mode="r")
    dense_params: dict = {}

    def write_dense(path: Path) -> None:
        t = time.perf_counter()
        index, params = dense.build(vectors, dense.choose_kind(n))
        dense_params.update(params)
        dense.write(index, path)
        log(f"dense {params} in {time.perf_counter() - t:.1f} s")

    def write_bm25(path: Path) -> None:
        t = time.perf_counter()
        writer.save(path)
        log(f"BM25 ({len(writer.vocab)} tokens) in {time.perf_counter() - t:.1f} s")

    manifest = {"model": info.name, "embedder": info.name, "dim": DIM, "max_tokens": info.max_seq_length,
                "chunker": ChunkSettings().to_dict(), "dense": dense_params, "notes_dir": str(corpus),
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "notes": notes, "skipped": {},
                "synthetic": {"chunks": n, "source_chunks": b, "clusters": clusters, "seed": seed}}
    models = out / "models"
    models.mkdir(exist_ok=True)
    link = models / export.name
    if not link.exists():
        link.symlink_to(export, target_is_directory=True)
    manifest["onnx"] = f"models/{export.name}"
    with build_lock(out):
        # the BM25 arrays are saved before the FAISS build, so their postings are freed first
        write_generation(out, manifest, rows(), vectors, {"bm25": write_bm25, "dense.faiss": write_dense},
                         finish=lambda m: _notes_on_disk(m, corpus, out, source_only))
    vectors = None     # the map let go before its file is removed (write_dense is done with it)
    tmp_vectors.unlink()
    return {"build_s": round(time.perf_counter() - t0, 1),
            "build_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "source_chunks": b, "clusters": clusters}


def _notes_on_disk(manifest: dict, corpus: Path, out: Path, source_only: bool) -> None:
    """Every note of the index as a file under OUT-notes (copy j of a note at c<j>/<path>; with source_only
    the corpus as it is), its stat in the manifest, so `azchat index --notes OUT-notes --index OUT` sees one edited note as one edited note."""
    notes_dir = out.parent / (out.name + "-notes")
    if notes_dir.exists():
        shutil.rmtree(notes_dir)
    for rel, meta in manifest["notes"].items():
        src = corpus / (rel if source_only else rel.split("/", 1)[1])
        dst = notes_dir / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        st = dst.stat()
        meta["mtime_ns"], meta["size"] = st.st_mtime_ns, st.st_size
    manifest["notes_dir"] = str(notes_dir)


def _edit_and_update(index: Path, i: int, src: Path | None = None, profile: Path | None = None) -> dict:
    """Append a line to one note (the i-th pick) and run `azchat index --json` on it in a fresh process, with
    the azchat source at `src` (default: this tree); under cProfile into `profile` when given."""
    sys.path.insert(0, str(REPO / "bench"))
    from speed import timed_rss
    from azchat.index.store import read_manifest

    m = read_manifest(index)
    notes_dir = Path(m["notes_dir"])
    names = m["notes"].names() if hasattr(m["notes"], "names") else sorted(m["notes"])
    note = names[(i * 7919) % len(names)]
    path = notes_dir / note
    if not os.access(path, os.W_OK):
        return {"skipped": f"{notes_dir} is not writable"}
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(f"\nEdited for the update benchmark, run {i}: zqedit{i} appears here.\n")
    argv = ["azchat", "index", "--index", str(index), "--notes", str(notes_dir), "--json"]
    if profile is not None:
        argv = ["cProfile", "-o", str(profile), "-m", *argv]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall, rss, stdout = timed_rss(argv, **({"PYTHONPATH": str(src)} if src else {}))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    stats = json.loads(stdout)
    # CPU seconds (user + system) of the update process: what the load on a shared machine inflates least
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"note": note, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "peak_rss_mb": round(rss),
            "embedded": stats["embedded"], "updated": stats["updated"], "chunks": stats["chunks"]}


def one_note_update(index: Path, runs: int = 3) -> dict:
    """`azchat index --json` after appending a line to one note, as a user runs it (fresh process)."""
    from azchat.index.store import read_manifest

    out = []
    for i in range(runs):
        run = _edit_and_update(index, i)
        if "skipped" in run:
            return run
        out.append(run)
    m = read_manifest(index)
    return {"runs": out, "median_s": round(statistics.median(r["wall_s"] for r in out), 3),
            "segment_rows": m.get("segment_rows"), "base": (m.get("base") or {}).get("name")}


def compare(new: Path, old: Path, src: Path, updates: int, cold: int, profile_dir: Path | None) -> dict:
    """This tree on `new` and the code at `src` on `old` (the same corpus, built by each code's
    bench/scale.py), alternating in this one run: one-note updates, then on the base + segment generations
    they leave, open (stub embedder, fresh process) and cold `azchat ask --json`. With profile_dir, one more
    update each under cProfile (its top functions by cumulative time in the result, the .prof files there)."""
    import pstats

    sys.path.insert(0, str(REPO / "bench"))
    from speed import timed_rss

    sides = {"new": (new, None), "old": (old, src)}
    out: dict = {side: {"index": str(index), "updates": [], "open_s": [], "cold_ask_s": []}
                 for side, (index, _) in sides.items()}
    out["old"]["src"] = str(src)
    for i in range(updates):
        for side, (index, s) in sides.items():
            out[side]["updates"].append(_edit_and_update(index, i, s))
    question = "How do I enable autoscaling for an AKS cluster?"
    for _ in range(cold):
        for side, (index, s) in sides.items():
            out[side]["open_s"].append(probe(index, "stub", ["What is AKS?"], s)["open_s"])
            notes = str(_notes_dir_of(index))
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            wall, rss, _ = timed_rss(["azchat", "ask", question, "--index", str(index), "--notes", notes, "--json"],
                                     **({"PYTHONPATH": str(s)} if s else {}))
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            out[side]["cold_ask_s"].append(round(wall, 3))
            out[side].setdefault("cold_ask_cpu_s", []).append(round(
                (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 3))
            out[side].setdefault("cold_ask_peak_rss_mb", []).append(round(rss))
    for side in sides:
        o = out[side]
        o["update_median_s"] = round(statistics.median(r["wall_s"] for r in o["updates"]), 3) if o["updates"] else None
        o["update_cpu_median_s"] = round(statistics.median(r["cpu_s"] for r in o["updates"]), 3) if o["updates"] else None
        o["open_median_s"] = round(statistics.median(o["open_s"]), 4) if o["open_s"] else None
        o["cold_ask_median_s"] = round(statistics.median(o["cold_ask_s"]), 3) if o["cold_ask_s"] else None
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
        for side, (index, s) in sides.items():
            prof = profile_dir / f"update-{side}.prof"
            out[side]["profiled_update"] = _edit_and_update(index, updates + 1, s, profile=prof)
            text = io.StringIO()
            pstats.Stats(str(prof), stream=text).sort_stats("cumulative").print_stats(40)
            (profile_dir / f"update-{side}.txt").write_text(text.getvalue())
            st = pstats.Stats(str(prof)).stats
            out[side]["profile_top"] = sorted(
                ([f"{Path(k[0]).name}:{k[2]}", round(v[3], 3)] for k, v in st.items()), key=lambda e: -e[1])[:40]
    return out


def _notes_dir_of(index: Path) -> Path:
    from azchat.index.store import read_manifest

    return Path(read_manifest(index)["notes_dir"])


# -- the measurements ------------------------------------------------------------------------------------
PROBE = r"""
import json, sys, time
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
import numpy as np, faiss
from azchat import Retriever
from azchat.index.store import read_manifest
index, mode, questions = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
out = {}
if mode == "stub":
    import hashlib
    m = read_manifest(index)
    class Stub:
        name, dim, max_tokens = m["embedder"], m["dim"], m.get("max_tokens", 256)
        def count_tokens(self, texts): return [len(t.split()) for t in texts]
        def embed(self, texts, progress=None):
            out = []
            for t in texts:
                r = np.random.default_rng(int.from_bytes(hashlib.sha1(t.encode()).digest()[:8], "little"))
                v = r.normal(size=self.dim).astype(np.float32); out.append(v / np.linalg.norm(v))
            return np.asarray(out)
    embedder = Stub()
else:
    from azchat.index.embedding import load_embedder
    from azchat.index.store import read_manifest
    import onnxruntime, tokenizers
    embedder = None
out["rss_before_mb"] = rss()
t = time.perf_counter()
if embedder is None:
    from azchat.index.embedding import load_embedder
    embedder = load_embedder(read_manifest(index).get("model"), index)
r = Retriever(index, embedder=embedder)
out["open_s"] = time.perf_counter() - t
out["rss_after_open_mb"] = rss()
out["embedder"] = type(r.embedder).__name__
if mode == "ask":
    for q in questions[:5]:
        r.ask(q)
    times = []
    for q in questions:
        t = time.perf_counter(); r.ask(q); times.append(time.perf_counter() - t)
    times.sort()
    out["ask_p50_ms"] = 1000 * times[len(times) // 2]
    out["ask_p95_ms"] = 1000 * times[min(len(times) - 1, int(0.95 * len(times)))]
    out["rss_after_asks_mb"] = rss()
print("PROBE=" + json.dumps(out))
"""


def to_format1(index: Path, out: Path) -> Path:
    """A copy of the live generation as the code before columns wrote it (chunks.jsonl, every checksum in the
    manifest), for measuring that code on the same chunks (--baseline-src); big files are hard links."""
    from azchat.index.models import file_sha256
    from azchat.index.store import current_folder, load_generation

    gen = load_generation(index)
    live = current_folder(index)
    if out.exists():
        shutil.rmtree(out)
    folder = out / live.name
    folder.mkdir(parents=True)
    for name in ("vectors.npy", "dense.faiss"):
        os.link(live / name, folder / name)
    shutil.copytree(live / "bm25", folder / "bm25", copy_function=os.link)
    names = ("id", "path", "title", "heading", "start_line", "end_line", "text", "embed_text", "search_text",
             "tags", "aliases")
    with open(folder / "chunks.jsonl", "w", encoding="utf-8") as fh:
        for c in gen.chunks:
            fh.write(json.dumps({k: getattr(c, k) for k in names}, ensure_ascii=False) + "\n")
    files = {p.relative_to(folder).as_posix(): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}
    manifest = {**gen.manifest, "format": 1, "files": files, "notes": dict(gen.manifest.get("notes") or {}),
                "sha256": {k: file_sha256(folder / k) for k in files}}
    manifest.pop("notes_table", None)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False), encoding="utf-8")
    (out / "CURRENT").write_text(live.name + "\n")
    if (index / "models").exists():
        (out / "models").symlink_to((index / "models").resolve(), target_is_directory=True)
    return out


def probe(index: Path, mode: str, questions: list[str], src: Path | None = None) -> dict:
    e = env()
    if src is not None:
        e["PYTHONPATH"] = str(src)
    proc = subprocess.run([sys.executable, "-c", PROBE, str(index), mode, json.dumps(questions)],
                          capture_output=True, text=True, env=e)
    if proc.returncode != 0:
        raise SystemExit(f"probe {mode} failed:\n{proc.stderr[-3000:]}")
    got = json.loads(proc.stdout.rsplit("PROBE=", 1)[1])
    return {k: round(v, 4 if k == "open_s" else 1) if isinstance(v, float) else v for k, v in got.items()}


def questions_for(index: Path, count: int) -> list[str]:
    """Questions made of the index's own headings (the last part), spread over the table."""
    from azchat.index.store import load_generation

    gen = load_generation(index)
    n = len(gen.chunks)
    out = []
    for i in range(count):
        heading = gen.chunks[(i * 7919) % n].heading.split(">")[-1].strip() or gen.chunks[i % n].title
        out.append(f"How do I {heading.lower()}?" if i % 2 else f"What is {heading}?")
    return out


def measure(index: Path, count: int, baseline_src: Path | None = None) -> dict:
    from azchat.index.store import current_folder, read_manifest

    questions = questions_for(index, count)
    live = current_folder(index)
    m = read_manifest(index)
    folders = [live] + ([index / m["base"]["name"]] if m.get("base") else [])   # a segment's base too
    res = {"chunks": m["chunk_count"], "dense": m.get("dense"), "segment_rows": m.get("segment_rows"),
           "disk_mb": round(sum(p.stat().st_size for f in folders for p in f.rglob("*") if p.is_file()) / 2**20, 1)}
    res["stub"] = probe(index, "stub", questions)      # model excluded
    res["model"] = probe(index, "model", questions)    # model included
    res["ask"] = probe(index, "ask", questions)
    if baseline_src is not None and m.get("base"):
        res["baseline"] = "not measured: the live generation is a segment (measure on a fresh build)"
    elif baseline_src is not None:
        # the code before columns, on the same chunks written as it wrote them, measured in this same run
        old = to_format1(index, index.parent / (index.name + "-format1"))
        res["baseline"] = {"src": str(baseline_src),
                           "disk_mb": round(sum(p.stat().st_size for p in old.rglob("*") if p.is_file())
                                            / 2**20, 1),
                           "stub": probe(old, "stub", questions, baseline_src),
                           "ask": probe(old, "ask", questions, baseline_src)}
        res["stub_again"] = probe(index, "stub", questions)   # interleaved: new, old, new
        shutil.rmtree(old)
    return res


def cold_asks(index: Path, corpus: Path, runs: int, baseline_src: Path | None) -> dict:
    """Wall time and peak RSS of `azchat ask --json` in a fresh process (bench/speed.py's wrapper); with a
    baseline source, that code on the same chunks in format 1, interleaved."""
    sys.path.insert(0, str(REPO / "bench"))
    from speed import timed_rss

    from azchat.index.store import read_manifest

    question = "How do I enable autoscaling for an AKS cluster?"
    notes = read_manifest(index).get("notes_dir") or str(corpus)
    args = ["azchat", "ask", question, "--index", str(index), "--notes", notes, "--json"]
    if read_manifest(index).get("base"):
        baseline_src = None                  # to_format1 copies one generation's files, not base + segment
    old = to_format1(index, index.parent / (index.name + "-format1")) if baseline_src else None
    runs_new, runs_old = [], []
    for _ in range(runs):
        runs_new.append(timed_rss(args)[:2])
        if old is not None:
            old_args = [*args[:4], str(old), *args[5:]]
            runs_old.append(timed_rss(old_args, PYTHONPATH=str(baseline_src))[:2])
    if old is not None:
        shutil.rmtree(old)
    out = {"question": question, "wall_s": [round(w, 3) for w, _ in runs_new],
           "peak_rss_mb": [round(r) for _, r in runs_new],
           "median_s": round(statistics.median(w for w, _ in runs_new), 3)}
    if runs_old:
        out["baseline"] = {"wall_s": [round(w, 3) for w, _ in runs_old], "peak_rss_mb": [round(r) for _, r in runs_old],
                           "median_s": round(statistics.median(w for w, _ in runs_old), 3)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunks", type=int, help="build a synthetic index of this many chunks")
    ap.add_argument("--out", type=Path, help="where the synthetic index is built")
    ap.add_argument("--index", type=Path, help="measure this existing index instead")
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--clusters", type=int, default=1024)
    ap.add_argument("--questions", type=int, default=100)
    ap.add_argument("--measure-only", action="store_true", help="--out exists: measure it, do not build")
    ap.add_argument("--source-only", action="store_true",
                    help="the corpus's own chunks (cut with the model's tokenizer, as `azchat index` cuts them), "
                         "no copies: the real ~38k-chunk ms-azure-docs index, with drawn vectors")
    ap.add_argument("--cold-asks", type=int, default=3, help="cold `azchat ask --json` runs (0: none)")
    ap.add_argument("--updates", type=int, default=3, help="one-note `azchat index` runs (0: none)")
    ap.add_argument("--baseline-src", type=Path,
                    help="also measure the azchat source at this path (e.g. /work/main/src, before columns) "
                         "on the same chunks written in format 1")
    ap.add_argument("--baseline-index", type=Path,
                    help="with --baseline-src: the same corpus built by that code (its own bench/scale.py); "
                         "one-note updates, open on base + segment and cold asks of both codes, alternating "
                         "(--updates and --cold-asks runs each)")
    ap.add_argument("--profile", type=Path, help="with --baseline-index: one more update each under cProfile, "
                                                 "the .prof and top-40 .txt files written to this folder")
    ap.add_argument("--json", nargs="?", const="-", help="write the results as JSON (to a file, or stdout)")
    args = ap.parse_args(argv)
    result: dict = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpus": os.cpu_count()}
    if args.index:
        target = args.index
    else:
        if not args.out or not (args.chunks or args.source_only):
            ap.error("--chunks N --out DIR, or --index DIR")
        target = args.out
        if not args.measure_only:
            if (target / "CURRENT").exists():
                shutil.rmtree(target)
            result["build"] = build(args.chunks or 0, target, args.corpus, args.clusters,
                                    source_only=args.source_only)
            log(f"built: {result['build']}")
    if args.baseline_index:
        if not args.baseline_src:
            ap.error("--baseline-index needs --baseline-src")
        result["compare"] = compare(target, args.baseline_index, args.baseline_src, args.updates, args.cold_asks,
                                    args.profile)
        args.updates = args.cold_asks = 0
        args.baseline_src = None
    result.update(measure(target, args.questions, args.baseline_src))
    if args.cold_asks:
        result["cold_ask"] = cold_asks(target, args.corpus, args.cold_asks, args.baseline_src)
    if args.updates:
        result["one_note_update"] = one_note_update(target, args.updates)
    text = json.dumps(result, indent=1)
    if args.json == "-":
        print(text)
    elif args.json:
        Path(args.json).write_text(text + "\n")
        print(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
