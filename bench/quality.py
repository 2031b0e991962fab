"""Answer-quality bench: the dev question set and BEIR SciFact, under several retrieval configurations.

    python bench/quality.py notes   [--split dev|test|all] [--configs NAME,...]
    python bench/quality.py sets    [--configs NAME,...] [--kinds]   (shared, dev, fresh, off-topic side by side)
    python bench/quality.py scifact [--configs NAME,...]
    python bench/quality.py calibrate [--configs NAME]   (the refusal rule swept on what ask() ships, all sets)
    python bench/quality.py refusal     (every question's refusal signals as ask() computes them)

Indexes are built once with the bundled MiniLM and cached under $AZQ_CACHE (default /tmp/azq); only the BM25
side is rebuilt in memory per configuration, so comparing fusion and tokenization settings needs no re-embedding.
Results are recorded by hand in bench/QUALITY.md.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from azchat.apps import evaluation as ev                                  # noqa: E402
from azchat.apps.beir import load_beir, score_beir, write_beir_notes             # noqa: E402
from azchat.index.building import build_index                        # noqa: E402
from azchat.index.lexical import LexicalIndex, LexicalSettings       # noqa: E402
from azchat import Retriever
from azchat.search.retrieval import FusionSettings          # noqa: E402

CACHE = Path(os.environ.get("AZQ_CACHE", "/tmp/azq"))
# the shared data sits beside the checkout (/work/main -> /work/shared) or one level up (a worktree under /work/wt)
SHARED = next((p for p in (REPO.parent / "shared", REPO.parent.parent / "shared") if p.is_dir()),
              REPO.parent / "shared")
VAULT = SHARED / "corpus" / "niclasedge-notes"
SCIFACT = SHARED / "bench" / "scifact"
QUESTIONS = REPO / "bench" / "dev_questions.jsonl"
# every set the refusal is calibrated on: (name, file); the shared half of the issue-10 set when it is there
REFUSAL_SETS = [("shared", SHARED / "bench" / "notes-questions" / "questions-shared.jsonl"),
                ("dev", QUESTIONS), ("fresh", REPO / "bench" / "fresh_questions.jsonl"),
                ("off-topic", REPO / "bench" / "offtopic_questions.jsonl")]

LEGACY_LEX = LexicalSettings(meta_repeat=1, compounds=False, version=1)   # tokenizer flag set below
# name -> (lexical settings, fusion settings, legacy tokenizer?)
CONFIGS = {
    "trunk": (LEGACY_LEX, FusionSettings(0.7, 0.3, normalize="max", fragmented_dense_weight=0.7,
                                        cross_language_credit=0.0), True),
    "rrf": (LEGACY_LEX, FusionSettings(1.0, 1.0, normalize="rrf"), True),
    "stem": (LexicalSettings(meta_repeat=1, compounds=False, version=2),
             FusionSettings(0.7, 0.3, normalize="max", fragmented_dense_weight=0.7), False),
    "stem+minmax.5": (LexicalSettings(meta_repeat=1, compounds=False, version=2),
                      FusionSettings(0.5, 0.5, fragmented_dense_weight=0.5), False),
    "stem+comp+minmax.5": (LexicalSettings(meta_repeat=1, version=2),
                           FusionSettings(0.5, 0.5, fragmented_dense_weight=0.5), False),
    "stem+comp+meta2+minmax.5": (LexicalSettings(version=2), FusionSettings(0.5, 0.5, fragmented_dense_weight=0.5),
                                 False),
    "round2": (LexicalSettings(version=2), FusionSettings(fragmented_dense_weight=0.6, cross_language_credit=0.0),
               False),   # one weight for all
    "round3": (LexicalSettings(version=2), FusionSettings(cross_language_credit=0.0), False),   # round-3 retrieval
    "default": (LexicalSettings(), FusionSettings(), False),
}


def legacy_tokenize(text):
    """The trunk tokenizer (lowercase, stopwords, crude plural fold), for the baseline rows."""
    from azchat.index import analysis

    out = []
    for tok in analysis.words(text):
        if len(tok) > 4 and tok.endswith("s") and not tok.endswith("ss"):
            tok = tok[:-1]
        out.append(tok)
    return out


_EMBEDDERS: dict = {}


class MemoEmbedder:
    """The real embedder with a cache of query vectors, so configurations compare without re-embedding."""

    def __init__(self, inner):
        from azchat.index.embedding import prefixes

        self.inner, self.name, self.dim, self.max_tokens = inner, inner.name, inner.dim, inner.max_tokens
        self.query_prefix, self.passage_prefix = prefixes(inner)["query"], prefixes(inner)["passage"]
        self.cache: dict[tuple[str, str], object] = {}     # (prompt, text) -> vector

    def count_tokens(self, texts):
        return self.inner.count_tokens(texts)

    def embed(self, texts, progress=None, prompt: str = ""):
        import numpy as np

        missing = [t for t in texts if (prompt, t) not in self.cache]
        if missing:
            vecs = self.inner.embed(missing, prompt=prompt) if prompt else self.inner.embed(missing)
            for t, v in zip(missing, vecs):
                self.cache[prompt, t] = v
        return np.stack([self.cache[prompt, t] for t in texts]) if texts else self.inner.embed(texts)


def retriever_for(index: Path, lex: LexicalSettings, fusion: FusionSettings, legacy: bool) -> Retriever:
    from azchat.index import analysis, lexical

    if index not in _EMBEDDERS:
        _EMBEDDERS[index] = MemoEmbedder(Retriever(index).embedder)
    r = Retriever(index, fusion=fusion, embedder=_EMBEDDERS[index])
    saved = analysis.tokenize, lexical.tokenize      # passage_tokens looks it up in analysis, query_tokens in lexical
    if legacy:
        analysis.tokenize = lexical.tokenize = legacy_tokenize
    try:
        r._lexical = LexicalIndex.build([c.search_text for c in r.chunks], lex)
    finally:
        analysis.tokenize, lexical.tokenize = saved
    r._legacy = legacy
    return r


def trunk_compose():
    """compose() of the trunk's answer.py (git show e63fd16), with the legacy tokenizer, for before/after rows."""
    import subprocess
    import types

    src = subprocess.run(["git", "-C", str(REPO), "show", "e63fd16:src/azchat/answer.py"], check=True,
                         capture_output=True, text=True).stdout
    mod = types.ModuleType("azchat._trunk_answer")
    mod.__package__ = "azchat"
    sys.modules[mod.__name__] = mod
    exec(compile(src, "trunk_answer.py", "exec"), mod.__dict__)
    mod.tokenize = legacy_tokenize
    return mod.compose


class Legacy:
    """Run a retriever with the legacy tokenizer (and, with answers=True, the trunk's answer composer)."""

    def __init__(self, on, answers=False):
        self.on = on
        self.answers = answers

    def _modules(self):
        from azchat.answer import asking, scoring, selecting
        from azchat.index import analysis, lexical
        from azchat.search import retrieval

        return (analysis, lexical, retrieval, scoring, selecting), asking

    def __enter__(self):
        users, asking = self._modules()
        self.saved = ([m.tokenize for m in users], asking.compose)
        if self.on:
            for m in users:
                m.tokenize = legacy_tokenize
        if self.answers:
            asking.compose = trunk_compose()

    def __exit__(self, *exc):
        users, asking = self._modules()
        for m, tok in zip(users, self.saved[0]):
            m.tokenize = tok
        asking.compose = self.saved[1]


def parse_config(spec: str):
    """NAME or NAME:key=value,... to override fusion fields (dense_weight, lexical_weight, normalize, ...)."""
    name, _, over = spec.partition(":")
    lex, fusion, legacy = CONFIGS[name.split("@")[0]]
    for kv in filter(None, over.split(",")):
        k, v = kv.split("=")
        if hasattr(fusion, k):
            cur = getattr(fusion, k)
            fusion = replace(fusion, **{k: type(cur)(v)})
        else:
            cur = getattr(lex, k)
            lex = replace(lex, **{k: (v.lower() in ("1", "true")) if isinstance(cur, bool) else type(cur)(v)})
    return spec, lex, fusion, legacy


def bench_notes(configs, split, answers=True):
    index = CACHE / "notes-idx"
    build_index(VAULT, index, log=print)
    questions = ev.split_questions(ev.load_questions(QUESTIONS), split)
    print(f"\n## dev question set ({split}: {len(questions)} questions)\n")
    print("| config | hit@1 | hit@5 | hit@10 | MRR@10 | nDCG@10 | term | ans refused | unans refused | s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for spec in configs:
        name, lex, fusion, legacy = parse_config(spec)
        t = time.perf_counter()
        with Legacy(legacy, answers="@trunk-answer" in name or name.startswith("trunk")):
            r = retriever_for(index, lex, fusion, legacy)
            s = ev.evaluate_questions(r, questions, answers=answers)["summary"]
        f = lambda v: "-" if v is None else f"{v:.3f}"   # noqa: E731
        print(f"| {name} | {f(s['hit@1'])} | {f(s['hit@5'])} | {f(s['hit@10'])} | {f(s['mrr@10'])} | "
              f"{f(s['ndcg@10'])} | {f(s.get('answer_term_rate'))} | {f(s.get('answerable_refused'))} | "
              f"{s.get('unanswerable_refused', '-')}/{s['unanswerable']} | {time.perf_counter() - t:.0f} |",
              flush=True)


def bench_sets(configs, kinds=False):
    """Every config on every set of REFUSAL_SETS side by side (the round-4 rows of bench/QUALITY.md): hit@1 /
    hit@5 / MRR@10 / gold term / answerable refused / unanswerable refused, and per kind with --kinds."""
    index = CACHE / "notes-idx"
    build_index(VAULT, index, log=print)
    sets = [(name, ev.load_questions(path)) for name, path in REFUSAL_SETS if path.is_file()]
    print("| config | " + " | ".join(name for name, _ in sets) + " |")
    print("|---" * (len(sets) + 1) + "|")
    f = lambda v: "-" if v is None else f"{v:.3f}"   # noqa: E731
    for spec in configs:
        name, lex, fusion, legacy = parse_config(spec)
        cells, by_kind = [], []
        with Legacy(legacy):
            r = retriever_for(index, lex, fusion, legacy)
            for set_name, qs in sets:
                res = ev.evaluate_questions(r, qs)
                s = res["summary"]
                refused = round((s["answerable_refused"] or 0) * s["answerable"])
                cells.append(f"{f(s['hit@1'])} / {f(s['hit@5'])} / {f(s['mrr@10'])} / {f(s['answer_term_rate'])} / "
                             f"{refused}/{s['answerable']} / {s['unanswerable_refused']}/{s['unanswerable']}"
                             if s["answerable"] else f"{s['unanswerable_refused']}/{s['unanswerable']}")
                by_kind += [(set_name, kind, k) for kind, k in res.get("by_kind", {}).items() if k["answerable"]]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
        if kinds:
            for set_name, kind, k in by_kind:
                print(f"|   {set_name} {kind} ({k['answerable']}) | {f(k['hit@1'])} / {f(k['hit@5'])} / "
                      f"{f(k['mrr@10'])} / {f(k['answer_term_rate'])} |")


def _shipped_signals(r, question):
    """What ask() decides on: the hits of _ranked(distinct=True) and the pool's best cosine."""
    scored, best_cos = r._ranked(question, 8, None, None, distinct=True)
    cos, cover = r.refusal.signals(question, scored, best_cos)
    return {"cos": cos, "cover": cover, "names": bool(r.refusal.unknown_terms(question)), "empty": not scored}


def calibrate(spec, split):
    """Grid-search the refusal rule on what ask() ships, over every set in REFUSAL_SETS (never the held-out gate
    set; split applies to the dev set): refuse when c = w * cos + (1 - w) * cover < t, or c < t_name with a name
    the notes never mention. Prints the curve (answerable refused vs unanswerable refused as t moves, the other
    parameters at their best) and the best settings that refuse >= 80% of the unanswerable questions and
    >= 19/20 off-topic ones."""
    index = CACHE / "notes-idx"
    build_index(VAULT, index, log=print)
    name, lex, fusion, legacy = parse_config(spec)
    feats = []
    with Legacy(legacy):
        r = retriever_for(index, lex, fusion, legacy)
        for set_name, path in REFUSAL_SETS:
            if not path.is_file():
                continue
            qs = ev.load_questions(path)
            if set_name == "dev":
                qs = ev.split_questions(qs, split)
            feats += [(set_name, bool(q.gold_files), _shipped_signals(r, q.question)) for q in qs]

    def refused(f, w, t, tn):
        c = w * f["cos"] + (1 - w) * f["cover"]
        return f["empty"] or c < t or f["names"] and c < tn

    n_ans = sum(1 for _, a, _ in feats if a)
    n_un = sum(1 for s, a, _ in feats if not a and s != "off-topic")
    n_off = sum(1 for s, _, _ in feats if s == "off-topic")
    rows = []
    for w in (0.3, 0.4, 0.5, 0.6, 0.7):
        for t in [x / 1000 for x in range(150, 400, 5)]:
            for tn in [x / 100 for x in range(round(t * 100), 61)]:
                ans = sum(1 for _, a, f in feats if a and refused(f, w, t, tn))
                un = sum(1 for s, a, f in feats if not a and s != "off-topic" and refused(f, w, t, tn))
                off = sum(1 for s, _, f in feats if s == "off-topic" and refused(f, w, t, tn))
                rows.append((ans, -un, -off, w, t, tn))
    print(f"{n_ans} answerable, {n_un} unanswerable, {n_off} off-topic "
          f"(sets: {', '.join(sorted({s for s, _, _ in feats}))})")
    print("\nCurve: for each count of unanswerable questions refused, the fewest answerable ones refused with it")
    print("| unanswerable refused | answerable refused | off-topic refused | w | min | name |")
    print("|---|---|---|---|---|---|")
    best_at: dict = {}
    for row in sorted(rows):
        best_at.setdefault(-row[1], row)
    for un in sorted(best_at):
        ans, _, off, w, t, tn = best_at[un]
        print(f"| {un}/{n_un} | {ans}/{n_ans} | {-off}/{n_off} | {w} | {t:.3f} | {tn:.2f} |")
    ok = sorted(r_ for r_ in rows if -r_[1] >= 0.8 * n_un and -r_[2] >= n_off - 1)
    print("\nBest with >= 80% unanswerable and >= 19/20 off-topic refused:")
    print("| answerable refused | unanswerable refused | off-topic refused | w | min | name |")
    print("|---|---|---|---|---|---|")
    for ans, un, off, w, t, tn in ok[:15]:
        print(f"| {ans} | {-un} | {-off} | {w} | {t:.3f} | {tn:.2f} |")


def refusal():
    """The signals of the refusal rule for every question of every set, as ask() computes them."""
    index = CACHE / "notes-idx"
    build_index(VAULT, index, log=print)
    r = Retriever(index)
    print("| set | gold | conf | cos | cover | names the notes never mention | refused |")
    print("|---|---|---|---|---|---|---|")
    for set_name, path in REFUSAL_SETS:
        if not path.is_file():
            continue
        for q in ev.load_questions(path):
            scored, best_cos = r._ranked(q.question, 8, None, None, distinct=True)
            cos, cover = r.refusal.signals(q.question, scored, best_cos)
            refused = r.refusal.refuses(q.question, scored, best_cos)
            mark = " **wrong**" if refused == bool(q.gold_files) else ""
            print(f"| {set_name} | {'answerable' if q.gold_files else 'none'} | "
                  f"{r.refusal.confidence(q.question, scored, best_cos):.3f} | {cos:.3f} | {cover:.3f} | "
                  f"{', '.join(r.refusal.unknown_terms(q.question))} | {'yes' if refused else 'no'}{mark} |")


def bench_scifact(configs, modes=("lexical", "dense", "hybrid")):
    work = CACHE / "scifact"
    beir = load_beir(SCIFACT)
    mapping = write_beir_notes(beir, work / "notes")
    build_index(work / "notes", work / "index", log=print)
    print(f"\n## BEIR SciFact test ({len(beir.queries)} queries, {len(beir.corpus)} documents)\n")
    print("| config | mode | nDCG@10 | recall@100 |")
    print("|---|---|---|---|")
    for spec in configs:
        name, lex, fusion, legacy = parse_config(spec)
        with Legacy(legacy):
            r = retriever_for(work / "index", lex, fusion, legacy)
            r.embedder.embed(list(beir.queries.values()))     # one batch, cached for every mode
            for mode, got in score_beir(r, beir, mapping, modes).items():
                print(f"| {name} | {mode} | {got['ndcg@10']:.4f} | {got['recall@100']:.4f} |", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["notes", "sets", "scifact", "calibrate", "refusal"])
    ap.add_argument("--split", default="dev", choices=["dev", "test", "all"])
    ap.add_argument("--configs", default="trunk,default")
    ap.add_argument("--modes", default="lexical,dense,hybrid")
    ap.add_argument("--no-answers", action="store_true")
    ap.add_argument("--kinds", action="store_true", help="sets: also a row per question kind")
    a = ap.parse_args()
    configs = [c for c in (a.configs.split(";") if ";" in a.configs else a.configs.split(",")) if c]
    if a.what == "calibrate":
        calibrate(configs[0], a.split)
    elif a.what == "refusal":
        refusal()
    elif a.what == "sets":
        bench_sets(configs, kinds=a.kinds)
    elif a.what == "notes":
        bench_notes(configs, a.split, answers=not a.no_answers)
    else:
        bench_scifact(configs, tuple(a.modes.split(",")))


if __name__ == "__main__":
    main()
