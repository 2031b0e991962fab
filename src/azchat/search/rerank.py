"""Optional reranking stage: a cross-encoder reads the question with each of the fused top candidates and its
order is blended with the fused order by position. Off unless a model is named (--reranker / AZCHAT_RERANKER);
none ships with azchat, and the model is loaded from disk only (a folder, or a name already in the local
Hugging Face cache), safetensors only, without trust_remote_code.

Blend (reciprocal rank, equal weights): a candidate at fused position f and cross-encoder position r (both
1-based, among the `depth` best fused candidates) scores 1/(k + f) + 1/(k + r), k = 60; ties keep the fused
order. Candidates below `depth` keep their fused order after them. The reordered candidates take over the
fused scores position by position, so scores still fall with rank and everything downstream (notes ranked
by their best chunk, refusal) reads the new order.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..errors import ModelError

DEPTH = 30        # fused candidates the cross-encoder reads: one forward pass (question, chunk) each
BLEND_K = 60      # the reciprocal-rank constant (as in RRF)


def blend(scores: Sequence[float], k: int = BLEND_K) -> list[int]:
    """The new order of positions 0..n-1 (given in fused order) from the cross-encoder's scores for them."""
    n = len(scores)
    by_model = sorted(range(n), key=lambda i: (-float(scores[i]), i))
    model_rank = {pos: r for r, pos in enumerate(by_model, start=1)}
    value = [1.0 / (k + i + 1) + 1.0 / (k + model_rank[i]) for i in range(n)]
    return sorted(range(n), key=lambda i: (-value[i], i))


def resolve_reranker(name: str) -> Path:
    """The local folder of a cross-encoder: a path, or a hub name already in the Hugging Face cache (a bare
    name is looked up under cross-encoder/). Raises ModelError; never downloads."""
    from ..index.models import _read_json, check_safetensors, local_folder

    path = local_folder(name, name if "/" in name else f"cross-encoder/{name}", "Reranker", "cross-encoder")
    if not (path / "config.json").is_file():
        raise ModelError(f"Reranker folder {path} has no config.json; it is not a cross-encoder.")
    modules = _read_json(path / "modules.json", [])
    check_safetensors(path, modules if isinstance(modules, list) else [])
    return path


class CrossEncoderReranker:
    """A sentence-transformers CrossEncoder over (question, chunk text) pairs; torch is loaded on first use."""

    def __init__(self, name: str, depth: int = DEPTH, k: int = BLEND_K):
        self.name = name
        self.path = resolve_reranker(name)      # a wrong name fails when the index is opened, not mid-search
        self.depth = depth
        self.k = k
        self._model = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._model is None:
                from ..index.models import _read_json

                cfg = _read_json(self.path / "config.json", {})
                longest = min(int(cfg.get("max_position_embeddings") or 512), 512)
                try:
                    from sentence_transformers import CrossEncoder

                    self._model = CrossEncoder(str(self.path), device="cpu", trust_remote_code=False,
                                               local_files_only=True, max_length=longest,
                                               model_kwargs={"use_safetensors": True})   # never a pickle
                except Exception as exc:   # a broken folder must not become a traceback
                    raise ModelError(f"Could not load the reranker at {self.path}: {exc}") from exc
        return self._model

    def scores(self, question: str, texts: Sequence[str]) -> np.ndarray:
        """One relevance score per text (higher is better)."""
        if not texts:
            return np.zeros(0, dtype=np.float32)
        out = np.asarray(self._load().predict([(question, t) for t in texts], convert_to_numpy=True,
                                              show_progress_bar=False), dtype=np.float32)
        if out.ndim == 2 and out.shape[1] == 1:
            out = out[:, 0]
        if out.shape != (len(texts),):
            raise ModelError(f"The reranker {self.name!r} gives {out.shape[-1]} scores per pair; azchat needs a "
                             "cross-encoder with one relevance score.")
        return out

    def rerank(self, question: str, order: np.ndarray, fused: np.ndarray, text_of: Callable[[int], str]
               ) -> tuple[np.ndarray, np.ndarray]:
        """(order, fused) with the first `depth` candidates of `order` (indices into `fused`, best first)
        reordered by the blend; they take over the fused scores of those positions in turn."""
        head = np.asarray(order[:self.depth])
        if len(head) < 2:
            return order, fused
        new = head[blend(self.scores(question, [text_of(int(i)) for i in head]), self.k)]
        fused = fused.copy()
        fused[new] = fused[head]          # head is sorted by fused score: position j keeps the j-th score
        return np.concatenate([new, np.asarray(order[self.depth:])]), fused


def load_reranker(name: str | None = None):
    """The reranker named here, else by $AZCHAT_RERANKER; None when neither names one (or says "off")."""
    from ..config import reranker_name

    chosen = reranker_name(name)
    return None if chosen is None else CrossEncoderReranker(chosen)
