"""Retriever: dense (FAISS) + BM25, fused, filtered inside the search, turned into cited Hits and Answers."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import dense
from .answer import compose
from .config import index_dir as default_index
from .embedding import Embedder
from .errors import IndexCorruptError
from .lexical import LexicalIndex, tokenize
from .store import Generation, load_generation
from .types import Answer, Chunk, Hit


@dataclass(frozen=True)
class FusionSettings:
    dense_weight: float = 0.7
    lexical_weight: float = 0.3
    candidates: int = 100          # from each side before fusion
    min_confidence: float = 0.35   # below this the notes do not answer the question


class Retriever:
    """Opens a built index; search() returns Hits, ask() an extractive Answer with citations."""

    def __init__(self, index_dir=None, embedder: Embedder | None = None,
                 fusion: FusionSettings = FusionSettings()):
        self.index_dir = Path(default_index(index_dir))
        self.fusion = fusion
        self._gen: Generation = load_generation(self.index_dir)
        manifest = self._gen.manifest
        if embedder is None:
            from .embedding import load_embedder

            embedder = load_embedder(manifest.get("model"), self.index_dir)   # ONNX export when there is one
        if embedder.name != manifest.get("embedder") or embedder.dim != manifest.get("dim"):
            raise IndexCorruptError(
                f"The index in {self.index_dir} was built with {manifest.get('embedder')!r}, not "
                f"{embedder.name!r}. Run `azchat index` with that model, or `--full` to rebuild.")
        self.embedder = embedder
        folder = self._gen.folder
        try:
            self._lexical = LexicalIndex.load(folder / "bm25", len(self._gen.chunks))
            self._dense = dense.read(folder / "dense.faiss")
        except Exception as exc:   # faiss raises RuntimeError, bm25s ValueError/OSError on damage
            raise IndexCorruptError(
                f"The index in {folder} is damaged ({exc}). Run `azchat index --full` to rebuild it.") from exc

    # -- what is in the index -------------------------------------------------------------------
    @property
    def manifest(self) -> dict:
        return self._gen.manifest

    @property
    def chunks(self) -> list[Chunk]:
        return self._gen.chunks

    def tags(self) -> list[str]:
        return sorted({t for c in self._gen.chunks for t in c.tags}, key=str.lower)

    def folders(self) -> list[str]:
        return sorted({c.folder for c in self._gen.chunks if c.folder})

    # -- retrieval ------------------------------------------------------------------------------
    def _allowed(self, tags, folder) -> np.ndarray | None:
        if not tags and not folder:
            return None
        want = {t.lower().lstrip("#") for t in (tags or [])}
        prefix = folder.strip("/") + "/" if folder else None
        ids = [i for i, c in enumerate(self._gen.chunks)
               if (not want or want & {t.lower() for t in c.tags})
               and (prefix is None or (c.path + "/").startswith(prefix) or c.folder == folder.strip("/"))]
        return np.asarray(ids, dtype=np.int64)

    def _scored(self, query: str, k: int, tags, folder) -> list[tuple[int, float, float, float]]:
        """(chunk row, fused score, dense cosine, lexical share) of the best k chunks."""
        n = len(self._gen.chunks)
        if n == 0 or not query.strip():
            return []
        allowed = self._allowed(tags, folder)
        if allowed is not None and len(allowed) == 0:
            return []
        qv = self.embedder.embed([query])[0]
        pool = max(self.fusion.candidates, k)
        d_ids, _ = dense.search(self._dense, qv, pool, allowed)
        lex = self._lexical.scores(query)
        if allowed is not None:
            mask = np.zeros(n, dtype=bool)
            mask[allowed] = True
            lex = np.where(mask, lex, 0.0)
        l_ids = np.argsort(-lex)[:pool]
        l_ids = l_ids[lex[l_ids] > 0]
        cand = np.unique(np.concatenate([d_ids.astype(np.int64), l_ids.astype(np.int64)]))
        if len(cand) == 0:
            return []
        d_scores = self._gen.vectors[cand] @ qv
        l_max = float(lex[cand].max()) if len(cand) else 0.0
        l_norm = lex[cand] / l_max if l_max > 0 else np.zeros(len(cand), dtype=np.float32)
        fused = self.fusion.dense_weight * d_scores + self.fusion.lexical_weight * l_norm
        order = np.argsort(-fused)[:k]
        return [(int(cand[i]), float(fused[i]), float(d_scores[i]), float(l_norm[i])) for i in order]

    def search(self, query: str, k: int = 10, tags: list[str] | None = None,
               folder: str | None = None) -> list[Hit]:
        """The k best chunks for the query, each with its citation fields."""
        return [self._hit(rank, row, score)
                for rank, (row, score, _, _) in enumerate(self._scored(query, k, tags, folder), start=1)]

    def _hit(self, rank: int, row: int, score: float) -> Hit:
        c = self._gen.chunks[row]
        return Hit(rank=rank, path=c.path, title=c.title, heading=c.heading, start_line=c.start_line,
                   end_line=c.end_line, score=round(score, 4), text=c.text)

    def confidence(self, question: str, row: int, dense_score: float) -> float:
        """How sure we are that the chunk answers: its cosine and how much of the question it covers."""
        q = set(tokenize(question))
        if not q:
            return dense_score
        idf = self._lexical.idf(sorted(q))
        have = set(tokenize(self._gen.chunks[row].search_text))
        cover = sum(idf[t] for t in q & have) / (sum(idf.values()) or 1.0)
        return 0.6 * dense_score + 0.4 * cover

    def ask(self, question: str, k: int = 8, tags: list[str] | None = None,
            folder: str | None = None) -> Answer:
        """An extractive answer built from the notes' own sentences, with numbered citations."""
        scored = self._scored(question, k, tags, folder)
        hits = [self._hit(rank, row, score) for rank, (row, score, _, _) in enumerate(scored, start=1)]
        chunks = [self._gen.chunks[row] for row, _, _, _ in scored]
        found = bool(scored) and self.confidence(question, scored[0][0], scored[0][2]) >= self.fusion.min_confidence
        idf = self._lexical.idf(sorted(set(tokenize(question))))
        return compose(question, hits, chunks, idf, found)
