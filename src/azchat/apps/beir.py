"""BEIR folders: read one (corpus, queries, qrels), write its documents as notes, index them and score the
test queries (nDCG@10, recall@100)."""
from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from .evaluation import EvalInputError, _cached, _say_reranker, ndcg_at, recall_at


@dataclass
class BeirSet:
    corpus: dict[str, tuple[str, str]]        # doc id -> (title, text)
    queries: dict[str, str]                   # query id -> text (only queries with judgments)
    qrels: dict[str, dict[str, float]]        # query id -> {doc id: relevance}


def _read_jsonl(path: Path) -> Iterable[dict]:
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    yield json.loads(line)
                except ValueError as exc:
                    raise EvalInputError(f"Line {n} of {path} is not JSON ({exc}).") from exc


def load_beir(folder, split: str = "test") -> BeirSet:
    """corpus.jsonl, queries.jsonl and qrels (qrels/<split>.tsv or qrels-<split>.tsv). Only `text` is read."""
    folder = Path(folder)
    corpus_p, queries_p = folder / "corpus.jsonl", folder / "queries.jsonl"
    qrels_p = next((p for p in (folder / "qrels" / f"{split}.tsv", folder / f"qrels-{split}.tsv")
                    if p.is_file()), None)
    if not corpus_p.is_file() or not queries_p.is_file() or qrels_p is None:
        raise EvalInputError(f"{folder} is not a BEIR folder (needs corpus.jsonl, queries.jsonl and "
                             f"qrels/{split}.tsv or qrels-{split}.tsv).")
    corpus = {str(d["_id"]): (str(d.get("title") or ""), str(d.get("text") or ""))
              for d in _read_jsonl(corpus_p)}
    qrels: dict[str, dict[str, float]] = {}
    for n, line in enumerate(qrels_p.read_text(encoding="utf-8").splitlines()):
        parts = line.split("\t")
        if len(parts) < 3 or (n == 0 and not parts[2].strip().lstrip("-").isdigit()):
            continue   # header or blank
        qrels.setdefault(parts[0], {})[parts[1]] = float(parts[2])
    queries = {str(q["_id"]): str(q.get("text") or "") for q in _read_jsonl(queries_p)
               if str(q["_id"]) in qrels}
    return BeirSet(corpus, queries, qrels)


def _safe_name(doc_id: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else f"~{ord(ch):x}" for ch in doc_id)


def write_beir_notes(beir: BeirSet, notes: Path) -> dict[str, str]:
    """One note per document (title as its heading, then the text). Returns note path -> doc id.

    The folder ends up holding exactly this corpus: notes left by another dataset are removed. A file is
    never written through a link: whatever sits at a note's name and is not that note is replaced."""
    notes = Path(notes)
    notes.mkdir(parents=True, exist_ok=True)
    if notes.is_symlink():
        raise EvalInputError(f"{notes} is a link; give a real folder for the BEIR notes.")
    mapping = {}
    for doc_id, (title, text) in beir.corpus.items():
        name = _safe_name(doc_id) + ".md"
        heading = " ".join(title.split()) or doc_id
        _write_new(notes / name, f"# {heading}\n\n{text.strip()}\n".encode("utf-8"))
        mapping[name] = doc_id
    for old in notes.iterdir():
        if old.name not in mapping and (old.is_symlink() or old.is_file()):
            old.unlink()
    return mapping


def _write_new(path: Path, data: bytes) -> None:
    """Write data at path unless the same bytes are there (kept, so an index over them stays fresh); a link
    or other file in the way is removed first and the file is created anew (O_EXCL, no link followed)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None:
        if stat.S_ISREG(st.st_mode) and st.st_size == len(data) and path.read_bytes() == data:
            return
        if stat.S_ISDIR(st.st_mode):
            raise EvalInputError(f"{path} is a folder where a BEIR note should be written.")
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def evaluate_beir(folder, work: Path | None = None, embedder=None, fusion=None, k: int = 10, model=None,
                  log: Callable[[str], None] | None = None, progress=None, modes=("hybrid",),
                  reranker=None) -> dict:
    """Index the BEIR corpus and score its test queries. The notes and index go to a private folder made for
    this run (mode 0700, a fresh name under `work`, else under the system temp folder), removed at the end."""
    from ..index.building import build_index
    from ..answer.asking import Retriever

    beir = load_beir(folder)
    if work is not None:
        Path(work).mkdir(parents=True, exist_ok=True)
    run = Path(tempfile.mkdtemp(prefix="azchat-beir-", dir=work))
    try:
        notes, index = run / "notes", run / "index"
        mapping = write_beir_notes(beir, notes)
        build_index(notes, index, embedder=embedder, model=model, log=log, progress=progress)
        out = {"dataset": str(folder), "documents": len(beir.corpus), "queries": len(beir.queries)}
        r = Retriever(index, embedder=embedder, reranker=reranker, **({"fusion": fusion} if fusion else {}))
        _say_reranker(r, out)
        _cached(r, beir.queries.values())
        out.update(score_beir(r, beir, mapping, modes, k))
        return out
    finally:
        clear(run)


def score_beir(r, beir: BeirSet, mapping: dict[str, str], modes=("hybrid",), k: int = 10) -> dict:
    """{mode: {"ndcg@k", "recall@100"}} of a retriever over an indexed BEIR corpus (mapping: note path -> doc id),
    each the mean over the test queries, to four decimals."""
    out = {}
    for mode in modes:
        ndcg, rec = [], []
        for qid, text in beir.queries.items():
            ranked = [mapping[p] for p in r.rank_files(text, 100, mode=mode)]
            ndcg.append(ndcg_at(ranked, beir.qrels[qid], k))
            rec.append(recall_at(ranked, beir.qrels[qid], 100))
        out[mode] = {f"ndcg@{k}": round(sum(ndcg) / len(ndcg), 4), "recall@100": round(sum(rec) / len(rec), 4)}
    return out


def clear(work: Path) -> None:
    shutil.rmtree(work, ignore_errors=True)
