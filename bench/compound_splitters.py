"""Compound splitters from PyPI against azchat's own rule (issue 18 item 3; bench/QUALITY.md round 10).

    PYTHONPATH=/tmp/cs-libs python bench/compound_splitters.py sample     # 40 German tokens: splits and speed
    PYTHONPATH=/tmp/cs-libs python bench/compound_splitters.py sets [--variants NAME,...] [--sets shared,dev,fresh]
    PYTHONPATH=/tmp/cs-libs python bench/compound_splitters.py english    # English passages cut the same?

The candidates (installed with `pip install --target /tmp/cs-libs <pkg>`, never into the project's venv):
compound-split (CharSplit, an n-gram model of German nouns) is measured; charsplit-fst (sdist only, a Rust build
that needs crates.io, and Python >= 3.12) and wikdict-compound (needs a WikDict SQLite dictionary downloaded from
download.wikdict.com and converted first) are recorded as not installable / needing a download.

`sets` runs the shipped ask path (apps.evaluation.evaluate_questions, as bench/gate.py) on the vault index that
bench/gate.py builds for this checkout under $AZQ_CACHE, with only the BM25 side rebuilt in memory per variant
(build_variant: LexicalIndex.build's tokens with the variant's splitter; VariantLexical: query_tokens with it), and
the retriever's refusal given the same rebuilt index; nothing is re-embedded. Variants:
  none          no compound parts at all (LexicalSettings.compounds=False)
  rule          the shipped split_compound (two corpus tokens of >= 4 letters, a linking s allowed)
  cs            CharSplit's best split instead of the rule, parts kept whatever the corpus holds
  cs-vocab      CharSplit's best split instead of the rule, each part must be a corpus token (as the rule's are)
  rule+cs       the rule, and CharSplit's split where the rule finds none
  csw, rule+csw CharSplit asked about the surface word a token was stemmed from (its model knows words, not
                stems: "anpassungsmöglichkeiten", not "anpassungsmog"), instead of the rule / where it finds none
  ...@T         CharSplit's score threshold T (default 0: its own best split must score above 0)
CharSplit is a German model: it splits the tokens of German chunks (is_german of the body, as passage_tokens
decides) and of German questions (is_german); English chunks and questions keep the rule.
The gate set is run only with --sets gate, once, for the variant that would ship.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from azchat.index import analysis                                   # noqa: E402
from azchat.index.analysis import is_german, passage_tokens, stem, stem_german, words   # noqa: E402
from azchat.index.lexical import LexicalIndex, LexicalSettings      # noqa: E402

SHARED = next(p for p in (REPO.parent / "shared", REPO.parent.parent / "shared") if p.is_dir())
VAULT = SHARED / "corpus" / "niclasedge-notes"
SETS = {"gate": REPO / "bench" / "gate_questions.jsonl",
        "shared": SHARED / "bench" / "notes-questions" / "questions-shared.jsonl",
        "dev": REPO / "bench" / "dev_questions.jsonl", "fresh": REPO / "bench" / "fresh_questions.jsonl"}
RULE = analysis.split_compound


# -- the candidate: compound-split (CharSplit) ------------------------------------------------------------------
def charsplit_best(word: str):
    """(score, left, right) of CharSplit's best split of word, lowercased, the linking s cut off the left part
    as CharSplit's own scoring cuts it; None when the library is missing."""
    try:
        from compound_split import char_split
    except ImportError:
        return None
    score, left, right = char_split.split_compound(word)[0]
    left, right = left.lower(), right.lower()
    return float(score), char_split.cut_off_fugen_s(left), right


def charsplit_parts(tok: str, vocab, threshold: float = 0.0, need_vocab: bool = False, word: str = "") -> list[str]:
    """CharSplit's two parts of tok (or of word, the surface form tok was stemmed from) as corpus tokens (the
    form the vocabulary holds: as is, English stem or German stem; else the German stem unless need_vocab), []
    when its best split scores <= threshold."""
    if len(tok) < 9 or not tok.isalpha():       # the rule's lower bound: two parts of >= 4 letters and a link
        return []
    best = charsplit_best(word or tok)
    if best is None or best[0] <= threshold:
        return []
    out = []
    for part in best[1:]:
        form = next((f for f in (part, stem(part), stem_german(part)) if f in vocab), None)
        if form is None:
            if need_vocab:
                return []
            form = stem_german(part)
        out.append(form)
    return out if all(len(p) >= 3 for p in out) else []


def make_splitter(name: str, surface: dict | None = None):
    """split_compound(tok, vocab) for the German side of a variant (English text keeps the rule); `surface`
    maps a token to the word it was stemmed from (the csw variants)."""
    base, _, thr = name.partition("@")
    threshold = float(thr) if thr else 0.0
    if base == "rule":
        return RULE
    add = base.startswith("rule+")
    lib = base.removeprefix("rule+")

    def split(tok, vocab, min_part=4):
        rule = RULE(tok, vocab, min_part) if add else []
        if rule:
            return rule
        word = (surface or {}).get(tok, "") if lib == "csw" else ""
        return charsplit_parts(tok, vocab, threshold, need_vocab=(lib == "cs-vocab"), word=word)
    return split


class VariantLexical(LexicalIndex):
    """LexicalIndex.query_tokens with the variant's splitter for a German question, the rule for an English one."""

    surface: dict = {}
    german_split = staticmethod(RULE)

    def query_tokens(self, query: str) -> list[str]:
        if self._bm25 is None:
            return []
        vocab = self._bm25.vocab_dict
        toks = analysis.question_tokens(query)
        german = is_german(query)
        split = RULE
        if german:
            toks = list(dict.fromkeys(toks + analysis.question_tokens(query, stem_german)))
            for w in words(query):
                self.surface.setdefault(stem(w), w)
                self.surface.setdefault(stem_german(w), w)
            split = self.german_split
        if not self.settings.compounds:
            split = _no_split
        out = []
        for tok in toks:
            if tok in vocab:
                out.append(tok)
            parts = self._split_cache.get((german, tok))
            if parts is None:
                parts = self._split_cache[german, tok] = split(tok, vocab)
            out.extend(p for p in parts if p in vocab)
        return out


def _no_split(tok, vocab):
    return []


def variant_docs(texts: list[str], name: str, surface: dict | None = None) -> list[list[str]]:
    """What LexicalIndex.build indexes of each chunk under a variant: passage_tokens, then the compound parts
    of every token, found by the variant's splitter in a German chunk and by the rule in an English one."""
    settings = LexicalSettings()
    docs = [passage_tokens(t, settings) for t in texts]
    if name == "none":
        return docs
    from collections import Counter

    vocab = Counter(tok for d in docs for tok in set(d))
    surface = {} if surface is None else surface
    german = [is_german(t.partition("\n")[2]) for t in texts]
    for t, g in zip(texts, german):
        if g:
            for w in words(t):
                surface.setdefault(stem_german(w), w)
    lib = make_splitter(name, surface)
    rule_parts = {tok: RULE(tok, vocab) for tok in vocab}
    lib_parts: dict = {}
    out = []
    for d, g in zip(docs, german):
        if g:
            for tok in set(d) - lib_parts.keys():
                lib_parts[tok] = lib(tok, vocab)
        parts = lib_parts if g else rule_parts
        out.append(d + [p for tok in d for p in parts[tok]])
    return out


def build_variant(texts: list[str], name: str) -> LexicalIndex:
    """The BM25 side of the index under a variant (LexicalIndex.build with variant_docs' tokens)."""
    import bm25s
    import numpy as np

    settings = LexicalSettings(compounds=name != "none")
    surface: dict = {}
    docs = variant_docs(texts, name, surface)
    bm25 = bm25s.BM25(method="lucene", k1=settings.k1, b=settings.b)
    bm25.index([d or ["\u2205"] for d in docs], show_progress=False)
    idx = VariantLexical(bm25, len(texts), settings, float(np.mean([len(d) or 1 for d in docs])))
    idx.surface = surface
    idx.german_split = make_splitter(name, surface) if name != "none" else _no_split
    return idx


def bench_sets(variants: list[str], sets: list[str]) -> None:
    from azchat import Retriever, build_index
    from azchat.apps import evaluation as ev

    src = (REPO / "src").resolve()
    cache = Path(os.environ.get("AZQ_CACHE", "/tmp/azq")) / ("gate-" + hashlib.sha1(str(src).encode()).hexdigest()[:8])
    index = cache / "notes-idx"
    build_index(VAULT, index, log=lambda *x: print(*x, file=sys.stderr))
    r = Retriever(index)
    texts = [c.search_text for c in r.chunks]
    qsets = [(s, ev.load_questions(SETS[s])) for s in sets]
    f = lambda v: "-" if v is None else f"{v:.3f}"   # noqa: E731
    print("| variant | set | n | hit@1 | hit@5 | MRR@10 | gold term | answerable refused | unanswerable refused "
          "| de: n / hit@1 / gold term | build s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in variants:
        t = time.perf_counter()
        lex = build_variant(texts, name)
        took = time.perf_counter() - t
        r._lexical = r.refusal.lexical = lex
        for set_name, qs in qsets:
            res = ev.evaluate_questions(r, qs)
            s = res["summary"]
            de = res.get("by_lang", {}).get("de")
            refused = round((s["answerable_refused"] or 0) * s["answerable"])
            de_cell = f"{de['answerable']} / {f(de['hit@1'])} / {f(de.get('answer_term_rate'))}" if de else "-"
            print(f"| {name} | {set_name} | {s['answerable']} | {f(s['hit@1'])} | {f(s['hit@5'])} | "
                  f"{f(s['mrr@10'])} | {f(s.get('answer_term_rate'))} | {refused}/{s['answerable']} | "
                  f"{s['unanswerable_refused']}/{s['unanswerable']} | {de_cell} | {took:.1f} |", flush=True)


# -- the sample: long tokens of the vault's German passages ----------------------------------------------------
def sample_tokens(chunks, n: int = 40, min_len: int = 13) -> list[str]:
    """The n most frequent alphabetic words of >= min_len letters in the German chunks (ties by word)."""
    from collections import Counter

    cnt = Counter(w for c in chunks if is_german(c.search_text.partition("\n")[2])
                  for w in set(words(c.search_text)) if len(w) >= min_len and w.isalpha())
    return [w for w, _ in sorted(cnt.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def bench_sample() -> None:
    from azchat import Retriever

    src = (REPO / "src").resolve()
    cache = Path(os.environ.get("AZQ_CACHE", "/tmp/azq")) / ("gate-" + hashlib.sha1(str(src).encode()).hexdigest()[:8])
    r = Retriever(cache / "notes-idx")
    settings = LexicalSettings()
    vocab = set()
    for c in r.chunks:
        vocab.update(passage_tokens(c.search_text, settings))
    toks = sample_tokens(r.chunks)
    t = time.perf_counter()
    import_s = None
    try:
        from compound_split import char_split  # noqa: F401
        import_s = time.perf_counter() - t
    except ImportError:
        pass
    print(f"compound-split import: {'missing' if import_s is None else f'{import_s:.2f} s'}\n")
    print("| word | pipeline token | rule | CharSplit (token) | CharSplit (word) |")
    print("|---|---|---|---|---|")
    for w in toks:
        tok = stem_german(w)
        rule = "+".join(RULE(tok, vocab)) or "-"
        cs_tok = charsplit_best(tok)
        cs_word = charsplit_best(w)
        cell = lambda b: "missing" if b is None else f"{b[1]}+{b[2]} ({b[0]:.2f})"   # noqa: E731
        print(f"| {w} | {tok} | {rule} | {cell(cs_tok)} | {cell(cs_word)} |")
    tokens = [stem_german(w) for w in toks]
    for label, fn in (("rule", lambda x: RULE(x, vocab)),
                      ("compound-split", lambda x: charsplit_parts(x, vocab))):
        if label == "compound-split" and import_s is None:
            continue
        reps = 50
        t = time.perf_counter()
        for _ in range(reps):
            for x in tokens:
                fn(x)
        us = (time.perf_counter() - t) / (reps * len(tokens)) * 1e6
        print(f"\n{label}: {us:.0f} us per token (mean over {len(tokens)} tokens x {reps}, vocabulary {len(vocab)})")


def bench_english() -> None:
    """Every English chunk's BM25 terms (compound parts included) under each variant equal the rule's, and an
    English question's tokens too: CharSplit must not touch English text."""
    from azchat import Retriever
    from azchat.apps import evaluation as ev

    src = (REPO / "src").resolve()
    cache = Path(os.environ.get("AZQ_CACHE", "/tmp/azq")) / ("gate-" + hashlib.sha1(str(src).encode()).hexdigest()[:8])
    r = Retriever(cache / "notes-idx")
    texts = [c.search_text for c in r.chunks]
    english = [i for i, t in enumerate(texts) if not is_german(t.partition("\n")[2])]
    base = variant_docs(texts, "rule")
    qs = [q.question for s in ("shared", "dev", "fresh") for q in ev.load_questions(SETS[s])]
    en_qs = [q for q in qs if not is_german(q)]
    base_lex = build_variant(texts, "rule")
    for name in ("cs", "cs-vocab", "rule+cs", "csw", "rule+csw"):
        got = variant_docs(texts, name)
        same = sum(1 for i in english if got[i] == base[i])
        changed = sum(1 for i in range(len(texts)) if got[i] != base[i])
        lex = build_variant(texts, name)
        q_same = sum(1 for q in en_qs if lex.query_tokens(q) == base_lex.query_tokens(q))
        print(f"{name}: {same}/{len(english)} English chunks with the rule's BM25 terms ({changed} German chunks "
              f"changed); {q_same}/{len(en_qs)} English questions with the rule's tokens")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=("sample", "sets", "english"))
    ap.add_argument("--variants", default="none,rule,cs,cs-vocab,rule+cs,csw,rule+csw")
    ap.add_argument("--sets", default="shared,dev,fresh")
    a = ap.parse_args()
    if a.what == "sample":
        bench_sample()
    elif a.what == "english":
        bench_english()
    else:
        bench_sets(a.variants.split(","), a.sets.split(","))


if __name__ == "__main__":
    main()
