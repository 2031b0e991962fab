"""azchat: ask questions of your markdown notes, answered from the notes' own sentences with citations.

Importing azchat is cheap: torch, sentence-transformers, FAISS and gradio load only when used.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["build_index", "Retriever", "Answer", "Part", "Hit", "Citation", "BuildStats", "AzchatError",
           "write_answer", "stream_answer", "__version__"]

if TYPE_CHECKING:
    from .errors import AzchatError
    from .index.building import build_index
    from .answer.asking import Retriever
    from .answer.written import stream_answer, write_answer
    from .types import Answer, BuildStats, Citation, Hit, Part

_LAZY = {
    "build_index": ("index.building", "build_index"),
    "Retriever": ("answer.asking", "Retriever"),
    "Answer": ("types", "Answer"),
    "Part": ("types", "Part"),
    "write_answer": ("answer.written", "write_answer"),
    "stream_answer": ("answer.written", "stream_answer"),
    "Hit": ("types", "Hit"),
    "Citation": ("types", "Citation"),
    "BuildStats": ("types", "BuildStats"),
    "AzchatError": ("errors", "AzchatError"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'azchat' has no attribute {name!r}")
