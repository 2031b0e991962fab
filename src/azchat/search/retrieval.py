"""Searcher: dense (FAISS) + BM25, fused, filtered inside the search, turned into cited Hits; retrieve() adds the
refusal's verdict for the answer layer (answer/asking.py turns a Retrieval into an Answer)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..index import dense
from ..notes import language
from ..config import index_dir as default_index
from ..index.embedding import Embedder, embed_queries, prefixes, recorded_prefixes
from ..errors import IndexCorruptError
from ..index.analysis import is_german, tokenize
from ..index.lexical import LexicalIndex
from .refusal import Refusal, RefusalSettings
from ..index.store import Generation, load_generation
from ..notes.syntax import blocks_open_at, indented_code_at
from ..types import Chunk, Hit

NOTE_VIEWS = 256          # notes whose lines a long-running Searcher keeps (the most recently read ones)
GERMAN_GUESSES = 200_000  # chunk rows whose language it remembers before starting over


@dataclass(frozen=True)
class FusionSettings:
    """How dense and BM25 scores are combined; tuned on bench/ (see bench/QUALITY.md)."""

    dense_weight: float = 0.6
    lexical_weight: float = 0.4
    candidates: int = 100          # chunks from each side before fusion
    normalize: str = "minmax"      # minmax | zscore | max (each list over the candidate pool) | rrf
    rrf_k: int = 60
    second_chunk_weight: float = 0.0   # note ranking: best chunk + this share of the note's second best
    # When the embedder's vocabulary cuts the question's words into many pieces (a language or jargon the model
    # knows poorly: German questions with the English MiniLM), its cosine is less reliable and BM25 counts more:
    # the dense weight falls linearly from dense_weight at fertility_low pieces per word to
    # fragmented_dense_weight at fertility_high.
    fragmented_dense_weight: float = 0.4
    fertility_low: float = 1.4
    fertility_high: float = 1.8
    # BM25 cannot match an English question to a German passage (only the odd shared technical word), so in an
    # English question a German chunk's fused score is at least its dense score times (dense weight + this
    # share of the lexical weight): the embedder's cross-language match is not taken away by BM25's silence.
    # 1.0 would judge such chunks by dense alone; see bench/QUALITY.md, round 4
    cross_language_credit: float = 0.5


def _open_search_indexes(gen: Generation) -> dict:
    """BM25 and FAISS of a generation; opened inside load_generation, which retries when a build pruned it.
    A base + segment generation (segments.py) opens both and searches them as one."""
    if gen.base is not None:
        from ..index.segments import DenseView, LexicalView

        base = _open_search_indexes(gen.base)
        seg = gen.segment
        lexical = LexicalIndex.load(seg.folder / "bm25", len(seg.chunks))
        return {"lexical": LexicalView(base["lexical"], gen.base_live, lexical),
                "dense": DenseView(base["dense"], gen.base_live, len(gen.base.chunks),
                                   dense.read(seg.folder / "dense.faiss", dense.FLAT))}
    return {"lexical": LexicalIndex.load(gen.folder / "bm25", len(gen.chunks)),
            "dense": dense.read(gen.folder / "dense.faiss", (gen.manifest.get("dense") or {}).get("kind"))}


@dataclass
class Retrieval:
    """What the search layer hands the answer layer for one question."""

    question: str
    hits: list[Hit]                     # the best chunks, best first, a passage copied into several notes once
    chunks: list[Chunk]                 # the chunk of each hit (aligned with hits)
    found: bool                         # False: the refusal says the notes do not hold the answer
    idf: dict[str, float] = field(default_factory=dict)   # the question's words' IDF in this index


class Searcher:
    """Opens a built index; search() returns Hits, retrieve() the hits of a question with the refusal's verdict
    (azchat.Retriever adds ask())."""

    def __init__(self, index_dir=None, embedder: Embedder | None = None,
                 fusion: FusionSettings = FusionSettings(), refusal: RefusalSettings = RefusalSettings(),
                 reranker=None):
        """reranker: a cross-encoder's name or folder, "off", or an object with rerank() (rerank.py); None:
        $AZCHAT_RERANKER, else none."""
        from .rerank import load_reranker

        self.index_dir = Path(default_index(index_dir))
        self.fusion = fusion
        self.reranker = reranker if hasattr(reranker, "rerank") else load_reranker(reranker)
        self._gen: Generation = load_generation(self.index_dir, also=_open_search_indexes)
        manifest = self._gen.manifest
        if embedder is None:
            from ..index.embedding import load_embedder

            embedder = load_embedder(manifest.get("model"), self.index_dir)   # ONNX export when there is one
        if embedder.name != manifest.get("embedder") or embedder.dim != manifest.get("dim"):
            raise IndexCorruptError(
                f"The index in {self.index_dir} was built with {manifest.get('embedder')!r}, not "
                f"{embedder.name!r}. Run `azchat index` with that model, or `--full` to rebuild.")
        if prefixes(embedder) != recorded_prefixes(manifest):
            raise IndexCorruptError(
                f"The index in {self.index_dir} was built with the prefixes {recorded_prefixes(manifest)}, but "
                f"{embedder.name!r} now asks for {prefixes(embedder)}. Run `azchat index` to rebuild it.")
        self.embedder = embedder
        self._lexical, self._dense = self._gen.extra["lexical"], self._gen.extra["dense"]
        self.refusal = Refusal(self._gen.chunks, self._lexical, refusal)   # "not in your notes"
        language.open_table(self.index_dir)   # word frequencies for the refusal, read in milliseconds
        self._german: dict[int, bool] = {}   # chunk row -> is its text German, guessed when first a candidate
        self._note_views: dict[str, tuple] = {}   # note path -> (its lines, blocks_open_at), when first asked

    # -- what is in the index -------------------------------------------------------------------
    @property
    def manifest(self) -> dict:
        return self._gen.manifest

    @property
    def chunks(self) -> list[Chunk]:
        return self._gen.chunks

    def tags(self) -> list[str]:
        return sorted(self._gen.chunks.tags(), key=str.lower)

    def folders(self) -> list[str]:
        return sorted(self._gen.chunks.folders())

    def filter_problem(self, tags=None, folder=None) -> str:
        """One sentence when a tag or folder filter can match no note (a typo, most likely), else ""."""
        if not tags and not folder:
            return ""          # no filter: the tag list (every note's metadata) is not read
        known = {t.lower(): t for t in self.tags()} if tags else {}
        missing = [t for t in (tags or []) if t.lower().lstrip("#") not in known]
        if missing:
            return (f"No note has the tag {', '.join(repr(t) for t in missing)}. " +
                    (f"Tags in your notes: {_listing(sorted(known.values(), key=str.lower))}." if known
                     else "Your notes have no tags."))
        if folder and len(self._allowed(None, folder)) == 0:
            folders = self.folders()
            return f"No note is in the folder {folder!r}. " + (f"Folders: {_listing(folders)}." if folders
                                                                  else "Your notes have no subfolders.")
        return ""

    # -- retrieval ------------------------------------------------------------------------------
    def _allowed(self, tags, folder) -> np.ndarray | None:
        if not tags and not folder:
            return None
        return self._gen.chunks.rows_matching(tags, folder)    # from the path and meta columns

    def _candidates(self, query: str, pool: int, tags, folder, mode: str = "hybrid"):
        """Candidate chunk rows with their dense cosine and raw BM25 score (both exact for every row)."""
        n = len(self._gen.chunks)
        empty = (np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.float32))
        if n == 0 or not query.strip():
            return empty
        allowed = self._allowed(tags, folder)
        if allowed is not None and len(allowed) == 0:
            return empty
        qv = embed_queries(self.embedder, [query])[0]      # with the model's query prefix
        parts = []
        if mode != "lexical":
            d_ids, _ = dense.search(self._dense, qv, pool, allowed)
            parts.append(np.asarray(d_ids, dtype=np.int64))
        lex = self._lexical.scores(query)
        if allowed is not None:
            mask = np.zeros(n, dtype=bool)
            mask[allowed] = True
            lex = np.where(mask, lex, 0.0)
        if mode != "dense":
            l_ids = _top(lex, pool)
            parts.append(l_ids[lex[l_ids] > 0].astype(np.int64))
        cand = np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
        cand = cand[(cand >= 0) & np.append(True, cand[1:] != cand[:-1])]   # np.unique imports numpy.ma: 60-150 ms cold
        rows = np.asarray(self._gen.vectors[cand], dtype=np.float32)     # float16 on disk (index/store.py)
        return cand, (rows @ qv).astype(np.float32), lex[cand].astype(np.float32)

    def dense_weight(self, query: str) -> float:
        """The dense share of the fused score for this query (see FusionSettings.fragmented_dense_weight)."""
        f = self.fusion
        if f.fragmented_dense_weight == f.dense_weight:
            return f.dense_weight
        words = [w.lower() for w in _LETTERS.findall(query)]
        if not words:
            return f.dense_weight
        fertility = sum(self.embedder.count_tokens(words)) / len(words)
        span = max(f.fertility_high - f.fertility_low, 1e-9)
        share = min(1.0, max(0.0, (fertility - f.fertility_low) / span))
        return f.dense_weight + share * (f.fragmented_dense_weight - f.dense_weight)

    def _fuse(self, d: np.ndarray, lex: np.ndarray, mode: str = "hybrid", dense_weight: float | None = None
              ) -> np.ndarray:
        f = self.fusion
        if mode == "dense":
            return d.copy()
        if mode == "lexical":
            return lex.copy()
        if f.normalize == "rrf":
            rank_d = np.empty(len(d)); rank_d[np.argsort(-d)] = np.arange(1, len(d) + 1)
            rank_l = np.empty(len(lex)); rank_l[np.argsort(-lex)] = np.arange(1, len(lex) + 1)
            rrf_l = np.where(lex > 0, 1.0 / (f.rrf_k + rank_l), 0.0)
            return f.dense_weight / (f.rrf_k + rank_d) + f.lexical_weight * rrf_l
        wd = f.dense_weight if dense_weight is None else dense_weight
        wl = f.lexical_weight * (1.0 - wd) / (1.0 - f.dense_weight) if f.dense_weight < 1 else f.lexical_weight
        return wd * _normalize(d, f.normalize) + wl * _normalize(lex, f.normalize)

    def _cross_language(self, query: str, cand: np.ndarray, d: np.ndarray, fused: np.ndarray,
                        wd: float | None = None) -> np.ndarray:
        """An English question's German candidates keep a share of their dense score that BM25 cannot add to
        (FusionSettings.cross_language_credit)."""
        credit = self.fusion.cross_language_credit
        if credit <= 0 or self.fusion.normalize == "rrf" or is_german(query):
            return fused
        german = np.array([self._is_german_chunk(int(row)) for row in cand], dtype=bool)
        if not german.any():
            return fused
        wd = self.dense_weight(query) if wd is None else wd
        floor = _normalize(d, self.fusion.normalize) * (wd + credit * (1.0 - wd))
        return np.where(german, np.maximum(fused, floor), fused)

    def _is_german_chunk(self, row: int) -> bool:
        known = self._german.get(row)
        if known is None and len(self._german) >= GERMAN_GUESSES:
            self._german.clear()                          # bounded: a guess is cheap to make again
        if known is None:
            known = self._german[row] = is_german(self._gen.chunks.text(row))
        return known

    def _ranked(self, query: str, k: int, tags, folder, mode: str = "hybrid", distinct: bool = False
                ) -> tuple[list[tuple[int, float, float, float]], float]:
        """(chunk row, fused score, dense cosine, raw BM25) of the best k chunks, and the best dense cosine of
        the whole candidate pool (a refusal signal that does not depend on how the fusion ordered the hits).
        distinct: a chunk whose text repeats a better-ranked one (a note copied into another file) is skipped,
        so copies do not crowd other passages out of the k."""
        cand, d, lex = self._candidates(query, max(self.fusion.candidates, k), tags, folder, mode)
        if len(cand) == 0:
            return [], 0.0
        wd = self.dense_weight(query) if mode == "hybrid" else None
        fused = self._fuse(d, lex, mode, wd)
        if mode == "hybrid":
            fused = self._cross_language(query, cand, d, fused, wd)
        order = np.argsort(-fused, kind="stable")
        if self.reranker is not None and mode == "hybrid":     # optional cross-encoder stage (rerank.py)
            order, fused = self.reranker.rerank(query, order, fused,
                                                lambda i: self._gen.chunks[int(cand[i])].embed_text)
        picked, seen = [], set()
        for i in order:
            if distinct:
                body = self._gen.chunks.text(int(cand[i])).strip()
                if body in seen:
                    continue
                seen.add(body)
            picked.append(i)
            if len(picked) >= k:
                break
        return [(int(cand[i]), float(fused[i]), float(d[i]), float(lex[i])) for i in picked], float(d.max())

    def _scored(self, query: str, k: int, tags, folder, mode: str = "hybrid"
                ) -> list[tuple[int, float, float, float]]:
        """(chunk row, fused score, dense cosine, raw BM25) of the best k chunks."""
        return self._ranked(query, k, tags, folder, mode)[0]

    def rank_files(self, query: str, n: int = 10, tags=None, folder=None, mode: str = "hybrid") -> list[str]:
        """Note paths, best first: a note scores as its best chunk (plus FusionSettings.second_chunk_weight times
        its second best; that share is 0.0 by default, so a note is as good as its best chunk)."""
        scored = self._scored(query, max(self.fusion.candidates, 3 * n), tags, folder, mode)
        best: dict[str, list[float]] = {}
        for row, score, _, _ in scored:
            top = best.setdefault(self._gen.chunks.path(row), [])
            if len(top) < 2:
                top.append(score)
        bonus = self.fusion.second_chunk_weight
        total = {p: s[0] + bonus * (s[1] if len(s) > 1 else 0.0) for p, s in best.items()}
        return sorted(total, key=lambda p: -total[p])[:n]

    def search(self, query: str, k: int = 10, tags: list[str] | None = None,
               folder: str | None = None) -> list[Hit]:
        """The k best chunks for the query, each with its citation fields (a passage copied into several notes
        comes once, from the best-ranked copy)."""
        scored = self._ranked(query, k, tags, folder, distinct=True)[0]
        return [self._hit(rank, row, score) for rank, (row, score, _, _) in enumerate(scored, start=1)]

    def _note_lines(self, path: str) -> tuple[dict[int, str], dict[int, tuple[str, str]]]:
        """A note's lines as its chunks hold them (line number -> text) and the code block open at each line,
        read once per note when first needed."""
        known = self._note_views.pop(path, None)
        if known is not None:
            self._note_views[path] = known            # the most recently used note goes last
        else:
            table = self._gen.chunks
            lines: dict[int, str] = {}
            for row in table.rows_of_path(path):
                c = table[int(row)]
                for offset, text in enumerate(c.text.split("\n")):
                    lines.setdefault(c.start_line + offset, text)
            known = self._note_views[path] = (lines, blocks_open_at(lines))
            if len(self._note_views) > NOTE_VIEWS:      # a long-running server over many notes: keep the recent
                del self._note_views[next(iter(self._note_views))]
        return known

    def opening(self, chunk: Chunk) -> tuple[tuple[str, str] | None, bool]:
        """How the chunk's first line begins, read from its note: the fenced block open there, and whether it
        lies in an indented code block (command output pasted with 4 spaces). A long code block cut into windows
        leaves middle windows with neither of its fences: the note's other chunks tell."""
        lines, blocks = self._note_lines(chunk.path)
        return blocks.get(chunk.start_line), indented_code_at(lines, chunk.start_line)

    def _hit(self, rank: int, row: int, score: float) -> Hit:
        c = self._gen.chunks[row]
        return Hit(rank=rank, path=c.path, title=c.title, heading=c.heading, start_line=c.start_line,
                   end_line=c.end_line, score=round(score, 4), text=c.text)

    def retrieve(self, question: str, k: int = 8, tags: list[str] | None = None,
                 folder: str | None = None) -> Retrieval:
        """The k best chunks for the question as Hits, and whether the notes answer it at all (refusal.py)."""
        scored, best_cos = self._ranked(question, k, tags, folder, distinct=True)
        hits = [self._hit(rank, row, score) for rank, (row, score, _, _) in enumerate(scored, start=1)]
        chunks = [self._gen.chunks[row] for row, _, _, _ in scored]
        found = not self.refusal.refuses(question, scored, best_cos)
        return Retrieval(question, hits, chunks, found, self._lexical.idf(sorted(set(tokenize(question)))))


_LETTERS = re.compile(r"[^\W\d_]{2,}")


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """The rows of the k highest scores, best first (argpartition: a million rows are not sorted whole)."""
    if len(scores) <= k:
        return np.argsort(-scores)
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.argsort(-scores[part])]


def _listing(names: list[str], most: int = 12) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" (and {len(names) - most} more)" if len(names) > most else "")


def _normalize(x: np.ndarray, how: str) -> np.ndarray:
    """Scale one score list over the candidate pool so dense and BM25 can be added."""
    if len(x) == 0:
        return x
    if how == "zscore":
        sd = float(x.std())
        return (x - float(x.mean())) / sd if sd > 0 else np.zeros_like(x)
    if how == "max":
        top = float(x.max())
        return x / top if top > 0 else np.zeros_like(x)
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
