"""Measure answer quality: file-level retrieval metrics over a question set (BEIR folders: beir.py).

Question sets are JSONL, one object a line: {"question", "gold_files": [paths relative to the notes folder],
"answer_terms": [optional strings]}. An empty gold_files means the notes do not answer the question. When the
questions carry a "kind" (paraphrase, cross-lingual, ...) or a "lang", the report adds a summary per kind and per
language ("by_kind", "by_lang").
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from ..errors import AzchatError


class EvalInputError(AzchatError):
    """A question set or BEIR folder that cannot be read."""

    exit_code = 2


# -- metrics on one ranking -------------------------------------------------------------------------
def hit_at(ranked: Sequence[str], gold: set[str], k: int) -> float:
    return 1.0 if any(r in gold for r in ranked[:k]) else 0.0


def mrr_at(ranked: Sequence[str], gold: set[str], k: int = 10) -> float:
    for i, r in enumerate(ranked[:k], start=1):
        if r in gold:
            return 1.0 / i
    return 0.0


def ndcg_at(ranked: Sequence[str], gold: set[str] | dict[str, float], k: int = 10) -> float:
    """nDCG@k with graded gains when gold is a dict (BEIR qrels), binary when a set."""
    gains = gold if isinstance(gold, dict) else {g: 1.0 for g in gold}
    dcg = sum(gains.get(r, 0.0) / math.log2(i + 1) for i, r in enumerate(ranked[:k], start=1))
    ideal = sorted(gains.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 1) for i, g in enumerate(ideal, start=1))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at(ranked: Sequence[str], gold: set[str] | dict[str, float], k: int) -> float:
    rel = {g for g in gold if (gold[g] > 0 if isinstance(gold, dict) else True)}
    if not rel:
        return 0.0
    return len(rel & set(ranked[:k])) / len(rel)


def dedupe(items: Iterable[str]) -> list[str]:
    """Keep the first occurrence of each item, in order (chunk hits -> file ranking)."""
    seen, out = set(), []
    for it in items:
        if it not in seen:
            seen.add(it)
            out.append(it)
    return out


def contains_term(text: str, terms: Sequence[str]) -> bool:
    low = " ".join(text.lower().split())
    return any(" ".join(t.lower().split()) in low for t in terms)


class QueryCache:
    """Wraps a retriever's embedder: queries are embedded once, in batches, and reused by search and ask."""

    def __init__(self, inner):
        from ..index.embedding import prefixes

        self.inner, self.name, self.dim, self.max_tokens = inner, inner.name, inner.dim, inner.max_tokens
        p = prefixes(inner)
        self.query_prefix, self.passage_prefix = p["query"], p["passage"]
        self._vecs: dict = {}     # (prompt, text) -> vector

    def count_tokens(self, texts):
        return self.inner.count_tokens(texts)

    def prime(self, texts, prompt: str | None = None) -> None:
        """Embed these questions (with the model's query prefix unless `prompt` says otherwise) in one go."""
        prompt = self.query_prefix if prompt is None else prompt
        todo = sorted({t for t in texts if (prompt, t) not in self._vecs})
        if todo:
            vecs = self.inner.embed(todo, prompt=prompt) if prompt else self.inner.embed(todo)
            self._vecs.update(((prompt, t), v) for t, v in zip(todo, vecs))

    def embed(self, texts, progress=None, prompt: str = ""):
        texts = list(texts)
        self.prime(texts, prompt)
        import numpy as np

        return np.stack([self._vecs[prompt, t] for t in texts]) if texts else self.inner.embed(texts)


def _cached(retriever, texts) -> None:
    if not isinstance(retriever.embedder, QueryCache):
        retriever.embedder = QueryCache(retriever.embedder)
    retriever.embedder.prime(list(texts))


# -- question sets ----------------------------------------------------------------------------------
@dataclass
class Question:
    question: str
    gold_files: list[str]
    answer_terms: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)


def load_questions(path) -> list[Question]:
    path = Path(path)
    if not path.is_file():
        raise EvalInputError(f"Question file {path} does not exist.")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            q = str(obj["question"])
            gold = [str(g) for g in obj.get("gold_files") or []]
            terms = [str(t) for t in obj.get("answer_terms") or []]
        except (ValueError, KeyError, TypeError) as exc:
            raise EvalInputError(f"Line {n} of {path} is not a question object ({exc}).") from exc
        extra = {k: v for k, v in obj.items() if k not in ("question", "gold_files", "answer_terms")}
        out.append(Question(q, gold, terms, extra))
    if not out:
        raise EvalInputError(f"Question file {path} holds no questions.")
    return out


def split_questions(questions: list[Question], part: str) -> list[Question]:
    """Deterministic dev/test split by line: every third question (lines 3, 6, 9, ...) is test."""
    if part == "all":
        return questions
    test = [q for i, q in enumerate(questions, start=1) if i % 3 == 0]
    dev = [q for i, q in enumerate(questions, start=1) if i % 3 != 0]
    return test if part == "test" else dev


def evaluate_questions(retriever, questions: list[Question], k: int = 10, tags=None, folder=None,
                       answers: bool = True, mode: str = "extractive") -> dict:
    """File-level metrics over a question set, plus answer-term and refusal rates from ask() (in `mode`:
    "generative" scores the written answers of your model endpoint and counts how often it fell back)."""
    _cached(retriever, [q.question for q in questions])
    rows = []
    written = None
    if mode != "extractive":
        written = WrittenTally()
    for q in questions:
        ranked = retriever.rank_files(q.question, max(k, 10), tags=tags, folder=folder)
        gold = set(q.gold_files)
        row = {"question": q.question, "gold_files": q.gold_files, "ranked": ranked[:k]}
        row.update({key: q.extra[key] for key in ("kind", "lang") if key in q.extra})
        if "kind" in q.extra and "lang" in q.extra:   # the class: kind x language ("paraphrase / de")
            row["class"] = f"{q.extra['kind']} / {q.extra['lang']}"
        if gold:
            row.update({"hit@1": hit_at(ranked, gold, 1), "hit@5": hit_at(ranked, gold, 5),
                        "hit@10": hit_at(ranked, gold, 10), "mrr@10": mrr_at(ranked, gold, 10),
                        "ndcg@10": ndcg_at(ranked, gold, 10)})
        if answers:
            ans = retriever.ask(q.question, tags=tags, folder=folder, **({"mode": mode} if written is not None else {}))
            row["found"] = ans.found
            if written is not None:
                written.add(row, ans)
            if gold and q.answer_terms:
                row["has_term"] = ans.found and contains_term(ans.answer, q.answer_terms)
        rows.append(row)
    out = {"summary": summarize(rows, answers)}
    _say_reranker(retriever, out)
    if written is not None:
        out["summary"].update(written.summary())
    for key in GROUPS:
        groups = group_rows(rows, key)
        if groups:
            out[f"by_{key}"] = {name: summarize(rs, answers) for name, rs in groups.items()}
    out["rows"] = rows
    return out


def _say_reranker(retriever, out: dict) -> None:
    """A run with a cross-encoder reranking (rerank.py) says which: "reranker" in the result."""
    reranker = getattr(retriever, "reranker", None)
    if reranker is not None:
        out["reranker"] = getattr(reranker, "name", type(reranker).__name__)


# question fields the report is broken down by, when the question file has them; "class" is kind x language
GROUPS = ("kind", "lang", "class")


def group_rows(rows: list[dict], key: str) -> dict[str, list[dict]]:
    """Rows grouped by a question field (kind, lang), in order of first appearance; {} when no row carries it
    (a row without it counts as "-")."""
    if not any(key in r for r in rows):
        return {}
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(str(row.get(key, "-")), []).append(row)
    return groups


def summarize(rows: list[dict], answers: bool = True) -> dict:
    """Mean metrics over answerable rows, refusal counts over all."""
    answerable = [r for r in rows if r["gold_files"]]
    unanswerable = [r for r in rows if not r["gold_files"]]

    def mean(key, rs):
        vals = [float(r[key]) for r in rs if key in r]
        return round(sum(vals) / len(vals), 4) if vals else None

    summary = {
        "questions": len(rows), "answerable": len(answerable), "unanswerable": len(unanswerable),
        "hit@1": mean("hit@1", answerable), "hit@5": mean("hit@5", answerable),
        "hit@10": mean("hit@10", answerable), "mrr@10": mean("mrr@10", answerable),
        "ndcg@10": mean("ndcg@10", answerable),
    }
    if answers:
        with_terms = [r for r in answerable if "has_term" in r]
        summary["answer_term_rate"] = mean("has_term", with_terms)
        summary["answerable_refused"] = (round(sum(not r["found"] for r in answerable) / len(answerable), 4)
                                         if answerable else None)
        summary["unanswerable_refused"] = sum(not r["found"] for r in unanswerable)
        summary["unanswerable_refused_rate"] = (round(summary["unanswerable_refused"] / len(unanswerable), 4)
                                                if unanswerable else None)
    return summary


def format_summary(s: dict) -> str:
    """The summary as a few readable lines."""
    def f(v):
        return "-" if v is None else f"{v:.3f}"
    lines = [f"{s['questions']} questions ({s['answerable']} answerable, {s['unanswerable']} unanswerable)",
             f"  hit@1 {f(s['hit@1'])}  hit@5 {f(s['hit@5'])}  hit@10 {f(s['hit@10'])}  "
             f"MRR@10 {f(s['mrr@10'])}  nDCG@10 {f(s['ndcg@10'])}"]
    if "answer_term_rate" in s:
        lines.append(f"  answers with a gold term {f(s['answer_term_rate'])}   answerable refused "
                     f"{f(s['answerable_refused'])}")
        if s["unanswerable"]:
            lines.append(f"  unanswerable refused {s['unanswerable_refused']}/{s['unanswerable']}")
    if s.get("mode") == "generative":
        lines.append(WrittenTally.format(s))
    return "\n".join(lines)


def format_groups(result: dict) -> str:
    """The per-kind and per-language summaries as a small table each ("" when the questions carry neither)."""
    def f(v):
        return "    -" if v is None else f"{v:.3f}"
    out = []
    for key in GROUPS:
        groups = result.get(f"by_{key}")
        if not groups:
            continue
        width = max(len(key), *(len(name) for name in groups))
        out.append(f"by {key}:")
        out.append(f"  {key:<{width}}     n  hit@1  hit@5 MRR@10   term  ans refused  unans refused")
        for name, s in groups.items():
            unans = f"{s['unanswerable_refused']}/{s['unanswerable']}" if s.get("unanswerable") else "-"
            out.append(f"  {name:<{width}} {s['questions']:>5}  {f(s['hit@1'])}  {f(s['hit@5'])}  "
                       f"{f(s['mrr@10'])}  {f(s.get('answer_term_rate'))}        {f(s.get('answerable_refused'))}"
                       f"  {unans:>13}")
    return "\n".join(out)


# -- eval --llm ------------------------------------------------------------------------------------
class WrittenTally:
    """What the model endpoint did over a question set (eval --llm): written answers, fallbacks to the quotes
    and their reasons, sentences left out for citing nothing, invented citations removed. Stops the run
    when the endpoint fails the first three questions it is asked for the same reason (unreachable, a wrong
    key or model name) instead of waiting out every question."""

    STOP_AFTER = 3

    def __init__(self):
        self.model, self.asked, self.written = "", 0, 0
        self.fallbacks: dict[str, int] = {}
        self.dropped = self.invented = 0
        self._failures: list[str] = []

    def add(self, row: dict, ans) -> None:
        row["mode"], row["notice"] = ans.mode, ans.notice
        self.model = ans.model or self.model
        if not ans.found:
            return                        # refused by retrieval: the model was not asked
        self.asked += 1
        if row["mode"] == "generative":
            self.written += 1
            self.dropped += ans.dropped
            self.invented += ans.invented
            return
        self.fallbacks[ans.failure] = self.fallbacks.get(ans.failure, 0) + 1
        if ans.failure in ("config", "connection", "auth", "model", "timeout") and self.written == 0:
            self._failures.append(ans.failure)
            if len(self._failures) >= self.STOP_AFTER and len(set(self._failures)) == 1:
                raise AzchatError(f"Stopped after {self.STOP_AFTER} questions: {ans.notice}")

    def summary(self) -> dict:
        return {"mode": "generative", "model": self.model, "asked": self.asked, "written": self.written,
                "written_rate": round(self.written / self.asked, 4) if self.asked else None,
                "fallbacks": dict(sorted(self.fallbacks.items())), "sentences_dropped": self.dropped,
                "citations_invented": self.invented}

    @staticmethod
    def format(s: dict) -> str:
        """The summary's line about the model (for `eval --llm` without --json)."""
        why = ", ".join(f"{n} {kind}" for kind, n in s["fallbacks"].items())
        return (f"  written by {s['model']}: {s['written']}/{s['asked']} answers"
                + (f" (fell back to the quotes: {why})" if why else "")
                + f"; {s['sentences_dropped']} uncited parts left out, {s['citations_invented']} invented "
                  f"citations removed")
