"""Retriever: the search layer's Searcher with ask(), which turns the hits of a question into an Answer
(extractive, or written by your own model when asked). `from azchat import Retriever` is this class."""
from __future__ import annotations

from ..search.retrieval import Retrieval, Searcher
from ..types import Answer
from .extractive import compose


class Retriever(Searcher):
    """Opens a built index; search() returns Hits, ask() an extractive Answer with citations."""

    def answer(self, found: Retrieval) -> Answer:
        """The extractive answer for what retrieve() found."""
        return compose(found.question, found.hits, found.chunks, found.idf, found.found, opening=self.opening)

    def ask(self, question: str, k: int = 8, tags: list[str] | None = None,
            folder: str | None = None, mode: str = "extractive", on_text=None) -> Answer:
        """An extractive answer built from the notes' own sentences, with numbered citations. mode="generative":
        a written answer from your own model endpoint, checked and cited the same way (written.py), streamed
        to on_text(piece) when given."""
        answer = self.answer(self.retrieve(question, k, tags, folder))
        if mode == "extractive":
            return answer
        from .written import answer_in_mode

        return answer_in_mode(answer, mode, on_text=on_text)
