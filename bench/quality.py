"""Answer-quality bench: the dev question set and BEIR SciFact, under several retrieval configurations.

    python bench/quality.py notes   [--split dev|test|all] [--configs NAME,...]
    python bench/quality.py scifact [--configs NAME,...]
    python bench/quality.py refusal     (every question's refusal signals, then a sweep of the rare-word rule)

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

from azchat import eval as ev                                  # noqa: E402
from azchat.indexing import build_index                        # noqa: E402
from azchat.lexical import LexicalIndex, LexicalSettings       # noqa: E402
from azchat.retrieval import FusionSettings, Retriever          # noqa: E402

CACHE = Path(os.environ.get("AZQ_CACHE", "/tmp/azq"))
VAULT = REPO.parent / "shared" / "corpus" / "niclasedge-notes"
SCIFACT = REPO.parent / "shared" / "bench" / "scifact"
QUESTIONS = REPO / "bench" / "dev_questions.jsonl"

LEGACY_LEX = LexicalSettings(meta_repeat=1, compounds=False, version=1)   # tokenizer flag set below
# name -> (lexical settings, fusion settings, legacy tokenizer?)
CONFIGS = {
    "trunk": (LEGACY_LEX, FusionSettings(0.7, 0.3, normalize="max", fragmented_dense_weight=0.7), True),
    "rrf": (LEGACY_LEX, FusionSettings(1.0, 1.0, normalize="rrf"), True),
    "stem": (LexicalSettings(meta_repeat=1, compounds=False),
             FusionSettings(0.7, 0.3, normalize="max", fragmented_dense_weight=0.7), False),
    "stem+minmax.5": (LexicalSettings(meta_repeat=1, compounds=False),
                      FusionSettings(0.5, 0.5, fragmented_dense_weight=0.5), False),
    "stem+comp+minmax.5": (LexicalSettings(meta_repeat=1), FusionSettings(0.5, 0.5, fragmented_dense_weight=0.5),
                           False),
    "stem+comp+meta2+minmax.5": (LexicalSettings(), FusionSettings(0.5, 0.5, fragmented_dense_weight=0.5), False),
    "round2": (LexicalSettings(), FusionSettings(fragmented_dense_weight=0.6), False),   # one weight for all
    "default": (LexicalSettings(), FusionSettings(), False),
}


def legacy_tokenize(text):
    """The trunk tokenizer (lowercase, stopwords, crude plural fold), for the baseline rows."""
    from azchat import lexical

    out = []
    for tok in lexical.words(text):
        if len(tok) > 4 and tok.endswith("s") and not tok.endswith("ss"):
            tok = tok[:-1]
        out.append(tok)
    return out


_EMBEDDERS: dict = {}


class MemoEmbedder:
    """The real embedder with a cache of query vectors, so configurations compare without re-embedding."""

    def __init__(self, inner):
        self.inner, self.name, self.dim, self.max_tokens = inner, inner.name, inner.dim, inner.max_tokens
        self.cache: dict[str, object] = {}

    def count_tokens(self, texts):
        return self.inner.count_tokens(texts)

    def embed(self, texts, progress=None):
        import numpy as np

        missing = [t for t in texts if t not in self.cache]
        if missing:
            for t, v in zip(missing, self.inner.embed(missing)):
                self.cache[t] = v
        return np.stack([self.cache[t] for t in texts]) if texts else self.inner.embed(texts)


def retriever_for(index: Path, lex: LexicalSettings, fusion: FusionSettings, legacy: bool) -> Retriever:
    from azchat import lexical

    if index not in _EMBEDDERS:
        _EMBEDDERS[index] = MemoEmbedder(Retriever(index).embedder)
    r = Retriever(index, fusion=fusion, embedder=_EMBEDDERS[index])
    saved = lexical.tokenize
    if legacy:
        lexical.tokenize = legacy_tokenize
    try:
        r._lexical = LexicalIndex.build([c.search_text for c in r.chunks], lex)
    finally:
        lexical.tokenize = saved
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

    def __enter__(self):
        from azchat import answer, lexical, retrieval

        self.saved = (lexical.tokenize, retrieval.tokenize, answer.tokenize, retrieval.compose)
        if self.on:
            lexical.tokenize = retrieval.tokenize = answer.tokenize = legacy_tokenize
        if self.answers:
            retrieval.compose = trunk_compose()

    def __exit__(self, *exc):
        from azchat import answer, lexical, retrieval

        lexical.tokenize, retrieval.tokenize, answer.tokenize, retrieval.compose = self.saved


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


def calibrate(spec, split):
    """Grid-search the refusal rule (w * best cosine + (1 - w) * coverage >= t) on one split."""
    index = CACHE / "notes-idx"
    name, lex, fusion, legacy = parse_config(spec)
    questions = ev.split_questions(ev.load_questions(QUESTIONS), split)
    with Legacy(legacy):
        r = retriever_for(index, lex, fusion, legacy)
        feats = [(r.signals(q.question, r._scored(q.question, 8, None, None)), bool(q.gold_files))
                 for q in questions]
    for (cos, cov), ans in feats:
        pass
    n_ans = sum(a for _, a in feats)
    n_un = len(feats) - n_ans
    best = []
    for w in [x / 10 for x in range(0, 11)]:
        vals = sorted({round(w * c + (1 - w) * v, 4) for (c, v), _ in feats})
        for t in vals:
            refused_ans = sum(1 for (c, v), a in feats if a and w * c + (1 - w) * v < t)
            refused_un = sum(1 for (c, v), a in feats if not a and w * c + (1 - w) * v < t)
            best.append((refused_un / max(n_un, 1) - 3 * refused_ans / max(n_ans, 1), w, t, refused_ans,
                         refused_un))
    best.sort(reverse=True)
    print(f"{split}: {n_ans} answerable, {n_un} unanswerable")
    for row in best[:10]:
        print("score %.3f  w=%.1f  t=%.4f  answerable refused %d  unanswerable refused %d" % row)
    print("unanswerable signals:", [(round(c, 3), round(v, 3)) for (c, v), a in feats if not a])
    print("answerable lowest:", sorted((round(0.5 * c + 0.5 * v, 3), round(c, 3), round(v, 3))
                                        for (c, v), a in feats if a)[:8])


def refusal():
    """The signals of the refusal rule for every question (so the separation is visible), then the rare-word
    rule's two settings swept, counted per split (choose on dev: lines not divisible by 3)."""
    index = CACHE / "notes-idx"
    build_index(VAULT, index, log=print)
    r = Retriever(index)
    rows = []
    print("| q | split | gold | conf | cos | cover | unknown names | rare unknown words | refused |")
    print("|---|---|---|---|---|---|---|---|---|")
    for i, q in enumerate(ev.load_questions(QUESTIONS), start=1):
        scored = r._scored(q.question, 8, None, None)
        cos, cover = r.signals(q.question, scored)
        refused = r.refuses(q.question, scored)
        rows.append((i, bool(q.gold_files), q.question, scored))
        mark = " **wrong**" if refused == bool(q.gold_files) else ""
        print(f"| q{i} | {'test' if i % 3 == 0 else 'dev'} | {'answerable' if q.gold_files else 'none'} | "
              f"{r.confidence(q.question, scored):.3f} | {cos:.3f} | {cover:.3f} | "
              f"{', '.join(r.unknown_names(q.question))} | {', '.join(r.rare_unknown_words(q.question))} | "
              f"{'yes' if refused else 'no'}{mark} |")

    def count(split):
        sel = [x for x in rows if split == "all" or (split == "dev") == (x[0] % 3 != 0)]
        un = [x for x in sel if not x[1]]
        ans = [x for x in sel if x[1]]
        return (f"{sum(r.refuses(x[2], x[3]) for x in un)}/{len(un)} | "
                f"{sum(r.refuses(x[2], x[3]) for x in ans)}/{len(ans)}")

    base = r.fusion
    print("\n| rare_pieces | rare_confidence | dev unans refused | dev ans refused | test unans | test ans | "
          "all unans | all ans |")
    print("|---|---|---|---|---|---|---|---|")
    r.fusion = replace(base, rare_confidence=0.0)
    print(f"| off | - | {count('dev')} | {count('test')} | {count('all')} |")
    for pieces in (2, 3, 4):
        for c in range(40, 72, 2):
            r.fusion = replace(base, rare_pieces=pieces, rare_confidence=c / 100)
            print(f"| {pieces} | {c / 100:.2f} | {count('dev')} | {count('test')} | {count('all')} |")
    r.fusion = base


def bench_scifact(configs, modes=("lexical", "dense", "hybrid")):
    work = CACHE / "scifact"
    beir = ev.load_beir(SCIFACT)
    mapping = ev.write_beir_notes(beir, work / "notes")
    build_index(work / "notes", work / "index", log=print)
    print(f"\n## BEIR SciFact test ({len(beir.queries)} queries, {len(beir.corpus)} documents)\n")
    print("| config | mode | nDCG@10 | recall@100 |")
    print("|---|---|---|---|")
    for spec in configs:
        name, lex, fusion, legacy = parse_config(spec)
        with Legacy(legacy):
            r = retriever_for(work / "index", lex, fusion, legacy)
            r.embedder.embed(list(beir.queries.values()))     # one batch, cached for every mode
            for mode in modes:
                nd, rc = [], []
                for qid, text in beir.queries.items():
                    ranked = [mapping[p] for p in r.rank_files(text, 100, mode=mode)]
                    nd.append(ev.ndcg_at(ranked, beir.qrels[qid], 10))
                    rc.append(ev.recall_at(ranked, beir.qrels[qid], 100))
                print(f"| {name} | {mode} | {sum(nd) / len(nd):.4f} | {sum(rc) / len(rc):.4f} |", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["notes", "scifact", "calibrate", "refusal"])
    ap.add_argument("--split", default="dev", choices=["dev", "test", "all"])
    ap.add_argument("--configs", default="trunk,default")
    ap.add_argument("--modes", default="lexical,dense,hybrid")
    ap.add_argument("--no-answers", action="store_true")
    a = ap.parse_args()
    configs = [c for c in (a.configs.split(";") if ";" in a.configs else a.configs.split(",")) if c]
    if a.what == "calibrate":
        calibrate(configs[0], a.split)
    elif a.what == "refusal":
        refusal()
    elif a.what == "notes":
        bench_notes(configs, a.split, answers=not a.no_answers)
    else:
        bench_scifact(configs, tuple(a.modes.split(",")))


if __name__ == "__main__":
    main()
