"""Embedders: turn texts into normalized float32 vectors. sentence-transformers is the reference."""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np

from ..errors import ModelError
from .models import ModelInfo, resolve_model

Progress = Callable[[int, int], None]   # (done, total)


class Embedder(Protocol):
    name: str        # recorded in the manifest; a different name forces a rebuild
    dim: int
    max_tokens: int  # content tokens per text, special tokens and the passage prefix excluded
    query_prefix: str     # the model's prompts (e5: "query: " / "passage: "); "" for most models.
    passage_prefix: str   # Recorded in the manifest too: a changed prefix forces a rebuild

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...

    def embed(self, texts: Sequence[str], progress: Progress | None = None, prompt: str = "") -> np.ndarray:
        """Normalized vectors of prompt + text for each text (prompt: a query or passage prefix)."""


def prefixes(embedder) -> dict:
    """{"query", "passage"}: the prefixes this embedder puts before questions and chunks (what the manifest
    records). An embedder without the attributes (a test's fake) has none."""
    return {"query": getattr(embedder, "query_prefix", "") or "",
            "passage": getattr(embedder, "passage_prefix", "") or ""}


def recorded_prefixes(manifest: dict) -> dict:
    """The query and passage prefixes an index was built with (none for an index from before prefixes)."""
    found = manifest.get("prefixes")
    return found if isinstance(found, dict) else {"query": "", "passage": ""}


def _embed_with(embedder, texts, prompt: str, progress=None) -> np.ndarray:
    if not prompt:      # no prefix: any embedder's embed(texts) will do
        return embedder.embed(texts, progress=progress)
    return embedder.embed(texts, progress=progress, prompt=prompt)


def embed_passages(embedder, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
    """Chunk vectors, as stored in the index: the model's passage prefix before each text."""
    return _embed_with(embedder, list(texts), prefixes(embedder)["passage"], progress)


def embed_queries(embedder, texts: Sequence[str]) -> np.ndarray:
    """Question vectors, as searched with: the model's query prefix before each text."""
    return _embed_with(embedder, list(texts), prefixes(embedder)["query"])


def prefix_tokens(count_tokens, prefix: str) -> int:
    """Tokens the prefix takes from a text's budget (0 without one)."""
    return count_tokens([prefix.strip()])[0] if prefix.strip() else 0


class WordPieceCounter:
    """Counts model tokens with the model's own tokenizer.json (the `tokenizers` library, no torch)."""

    def __init__(self, model_path: Path):
        from tokenizers import Tokenizer

        tok_file = model_path / "tokenizer.json"
        if not tok_file.is_file():
            raise ModelError(f"Model folder {model_path} has no tokenizer.json.")
        self._tok = Tokenizer.from_file(str(tok_file))
        self._tok.no_truncation()
        self._tok.no_padding()

    def count(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        return [len(e.ids) - 2 for e in self._tok.encode_batch(list(texts))]


class SentenceTransformerEmbedder:
    """The reference embedder: sentence-transformers on torch, loaded only when first used."""

    def __init__(self, info: ModelInfo, batch_size: int = 32):
        self.info = info
        self.name = info.name
        self.dim = info.dim
        self.query_prefix, self.passage_prefix = info.query_prefix, info.passage_prefix
        self.batch_size = batch_size
        self._counter = WordPieceCounter(info.path)
        self.max_tokens = info.max_seq_length - 2 - prefix_tokens(self._counter.count, info.passage_prefix)
        self._model = None

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self._counter.count(texts)

    def _load(self):
        if self._model is None:
            from .models import ensure_bundled_weights

            ensure_bundled_weights(self.info)      # refuse tampered bundled weights before torch reads them
            try:
                from sentence_transformers import SentenceTransformer

                self._model = SentenceTransformer(str(self.info.path), device="cpu",
                                                  trust_remote_code=False, local_files_only=True,
                                                  model_kwargs={"use_safetensors": True})   # never a pickle
            except Exception as exc:  # a broken model folder must not become a traceback
                raise ModelError(f"Could not load the model at {self.info.path}: {exc}") from exc
        return self._model

    def embed(self, texts: Sequence[str], progress: Progress | None = None, prompt: str = "") -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._load()
        # Sort by length so batches pad little; restore order afterwards.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            # prompt="" (never None): the model's default_prompt_name is not added behind azchat's back
            vecs = model.encode([texts[i] for i in idx], batch_size=self.batch_size, prompt=prompt,
                                normalize_embeddings=True, convert_to_numpy=True,
                                show_progress_bar=False)
            out[idx] = vecs.astype(np.float32)
            if progress:
                progress(min(start + self.batch_size, len(texts)), len(texts))
        return out


_WORD = re.compile(r"\w+", re.UNICODE)


class HashEmbedder:
    """A fast deterministic fake for tests: bag of hashed words, normalized. Not semantic."""

    def __init__(self, dim: int = 64, max_tokens: int = 120, name: str = "hash-test-embedder",
                 query_prefix: str = "", passage_prefix: str = ""):
        self.name = name
        self.dim = dim
        self.max_tokens = max_tokens
        self.query_prefix, self.passage_prefix = query_prefix, passage_prefix
        self.calls: list[int] = []   # how many texts each embed() call received

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(_WORD.findall(t)) for t in texts]

    def embed(self, texts: Sequence[str], progress: Progress | None = None, prompt: str = "") -> np.ndarray:
        texts = [prompt + t for t in texts]
        self.calls.append(len(texts))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
                out[row, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
            norm = np.linalg.norm(out[row])
            out[row] = out[row] / norm if norm else out[row]
            if progress:
                progress(row + 1, len(texts))
        return out


def light_enabled() -> bool:
    """The ONNX path is on unless AZCHAT_ONNX=0 (then every embedding goes through sentence-transformers)."""
    return os.environ.get("AZCHAT_ONNX", "1").strip().lower() not in ("0", "false", "no", "off")


def load_embedder(model: str | None = None, index_dir=None):
    """The embedder for a model name or path (resolved offline).

    With `index_dir`, the light ONNX export of exactly this model stored beside that index is preferred
    (same name, same vectors, no torch); otherwise the sentence-transformers reference.
    """
    from ..config import model_name

    info = resolve_model(model_name(model))
    if index_dir is not None and light_enabled():
        from .onnx_embedding import OnnxEmbedder, find_export

        folder = find_export(Path(index_dir), info)
        if folder is not None:
            return OnnxEmbedder(folder)
    return SentenceTransformerEmbedder(info)
