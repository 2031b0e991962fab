"""Does a smaller vector type keep the answers? float32 (shipped) against float16 and int8, measured where the
ranking is decided: FAISS's candidates and the exact dense scores both read the stored vectors, so each type is
applied to both (the vectors rounded to the type and back, a flat index over them), everything else the same.

    python bench/vector_types.py [--scifact-index DIR] [--notes-index DIR] [--json OUT]

int8 is FAISS's scalar quantizer (QT_8bit: per dimension, 256 steps between that dimension's min and max over
the corpus), the form an IVF-SQ8 index would store; float16 is numpy's half. The indexes are the bench caches
(bench/quality.py's SciFact index, bench/gate.py's vault index): built once with the bundled MiniLM.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))


def rounded(vectors: np.ndarray, kind: str) -> np.ndarray:
    """The vectors as the type `kind` would store them, read back as float32."""
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    if kind == "float32":
        return v
    if kind == "float16":
        return v.astype(np.float16).astype(np.float32)
    if kind == "int8":
        import faiss

        sq = faiss.ScalarQuantizer(v.shape[1], faiss.ScalarQuantizer.QT_8bit)
        sq.train(v)
        return sq.decode(sq.compute_codes(v))
    raise ValueError(kind)


def apply(r, kind: str, original: np.ndarray) -> None:
    """Point the retriever's exact scores and its FAISS index at the vectors of this type."""
    import faiss

    v = rounded(original, kind)
    index = faiss.IndexFlatIP(v.shape[1])
    index.add(v)
    r._gen.vectors, r._dense = v, index


def main() -> None:
    from azchat import Retriever
    from azchat.apps import evaluation as ev
    from azchat.apps.beir import load_beir, score_beir, write_beir_notes

    shared = REPO.parent / "shared"
    ap = argparse.ArgumentParser()
    ap.add_argument("--scifact-index", default="/tmp/azq/scifact/index")
    ap.add_argument("--scifact-notes", default="/tmp/azq/scifact/notes")
    ap.add_argument("--notes-index", default="/tmp/azvt/notes-idx")
    ap.add_argument("--types", default="float32,float16,int8")
    ap.add_argument("--json")
    a = ap.parse_args()
    kinds = a.types.split(",")
    out: dict = {"scifact": {}, "notes": {}}

    beir = load_beir(shared / "bench" / "scifact")
    mapping = write_beir_notes(beir, Path("/tmp/azvt/scifact-map"))      # doc path -> id (same names as cached)
    r = Retriever(a.scifact_index)
    original = np.array(r._gen.vectors, dtype=np.float32)
    r.embedder.embed(list(beir.queries.values()))
    for kind in kinds:
        apply(r, kind, original)
        diff = float(np.abs(rounded(original, kind) - original).max())
        row = {"max_abs_diff": round(diff, 6), **score_beir(r, beir, mapping, ("dense", "hybrid"))}
        out["scifact"][kind] = row
        print("scifact", kind, json.dumps(row), flush=True)

    files = {"shared": shared / "bench" / "notes-questions" / "questions-shared.jsonl",
             "dev": REPO / "bench" / "dev_questions.jsonl", "fresh": REPO / "bench" / "fresh_questions.jsonl",
             "gate": REPO / "bench" / "gate_questions.jsonl"}
    r = Retriever(a.notes_index)
    original = np.array(r._gen.vectors, dtype=np.float32)
    for kind in kinds:
        apply(r, kind, original)
        for name, path in files.items():
            t0 = time.perf_counter()
            res = ev.evaluate_questions(r, ev.load_questions(path))
            s = res["summary"]
            answers = [(rw.get("ranked") or [None])[0] for rw in res["rows"]]
            out["notes"].setdefault(kind, {})[name] = {
                k: s.get(k) for k in ("hit@1", "hit@5", "mrr@10", "answer_term_rate", "answerable_refused",
                                      "unanswerable_refused")}
            out["notes"][kind][name]["first_files"] = answers
            print("notes", kind, name, json.dumps({k: v for k, v in out["notes"][kind][name].items()
                                                   if k != "first_files"}),
                  f"{time.perf_counter() - t0:.1f}s", flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
