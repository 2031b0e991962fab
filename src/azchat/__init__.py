"""azchat: ask questions of your markdown notes, answered from the notes' own sentences with citations.

Importing azchat is cheap: torch, sentence-transformers, FAISS and gradio load only when used.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["build_index", "Retriever", "Answer", "Hit", "Citation", "BuildStats", "AzchatError", "__version__"]

if TYPE_CHECKING:
    from .errors import AzchatError
    from .index.building import build_index
    from .search.retrieval import Retriever
    from .types import Answer, BuildStats, Citation, Hit

_LAZY = {
    "build_index": ("index.building", "build_index"),
    "Retriever": ("search.retrieval", "Retriever"),
    "Answer": ("types", "Answer"),
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
