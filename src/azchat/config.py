"""Settings: defaults < environment (AZCHAT_*) < explicit arguments."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL = "all-MiniLM-L6-v2"


def env_or(value, name: str, default):
    """An explicit value wins, then the AZCHAT_* environment variable, then the default."""
    if value is not None:
        return value
    return os.environ.get(name) or default


def index_dir(value=None) -> Path:
    return Path(env_or(value, "AZCHAT_INDEX", "index"))


def model_name(value=None) -> str:
    return env_or(value, "AZCHAT_MODEL", DEFAULT_MODEL)


def reranker_name(value=None) -> str | None:
    """The cross-encoder that reranks the fused candidates (rerank.py): given, else AZCHAT_RERANKER; None
    (the default) or "off" means no reranking."""
    chosen = env_or(value, "AZCHAT_RERANKER", None)
    return None if chosen is None or chosen.strip().lower() in ("", "0", "off", "none", "no", "false") else chosen


@dataclass(frozen=True)
class ChunkSettings:
    """How notes are cut; recorded in the manifest so a change forces a rebuild."""

    max_tokens: int = 200          # embedded tokens per chunk (title + heading prefix included)
    overlap_lines: int = 2         # lines repeated when a long section is split
    version: int = 6               # bump when the chunking or BM25 tokenization rules change (2: stemming,
                                   # 3: the frontmatter description in the title line BM25 reads,
                                   # 4-5 (round 4): one CommonMark reading of code fences, syntax.Fences;
                                   #    BM25 keeps stopwords, a question drops its own language's;
                                   #    a very long line in windows of half a chunk, cut at sentences,
                                   #    overlapping by a quarter; 6: only for lines over 8 chunks)

    def to_dict(self) -> dict:
        return {"max_tokens": self.max_tokens, "overlap_lines": self.overlap_lines,
                "version": self.version}


def auth_from_env(value: str | None = None) -> tuple[str, str] | None:
    """AZCHAT_AUTH=user:password for the chat UI -> ("user", "password"); unset or empty -> None."""
    from .errors import AzchatError

    value = os.environ.get("AZCHAT_AUTH", "") if value is None else value
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user.strip() or not password:
        raise AzchatError("AZCHAT_AUTH must look like user:password (both non-empty).")
    return user, password
