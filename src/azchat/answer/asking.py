"""Retriever: the search layer's Searcher with ask(), which turns the hits of a question into an Answer
(extractive, or written by your own model when asked). `from azchat import Retriever` is this class."""
from __future__ import annotations

from ..index.embedding import embed_passages, embed_queries, prefixes
from ..search.retrieval import Retrieval, Searcher
from ..types import Answer
from .extractive import compose
from .meaning import LineMeaning, from_env


class Retriever(Searcher):
    """Opens a built index; search() returns Hits, ask() an extractive Answer with citations."""

    #: lines by meaning (meaning.py): None = off; $AZCHAT_LINES_BY_MEANING sets it for a run
    lines_by_meaning: LineMeaning | None = from_env()

    def similarity(self, question: str, texts) -> list[float]:
        """Cosine of each text (as a passage) to the question, in one embedder call when the model puts the
        same prefix before both."""
        texts = list(texts)
        if prefixes(self.embedder)["query"] == prefixes(self.embedder)["passage"]:
            v = embed_passages(self.embedder, [question] + texts)
            return (v[1:] @ v[0]).tolist()
        return (embed_passages(self.embedder, texts) @ embed_queries(self.embedder, [question])[0]).tolist()

    def answer(self, found: Retrieval) -> Answer:
        """The extractive answer for what retrieve() found."""
        trust = 1.0
        if self.lines_by_meaning is not None and found.found:
            f = self.fusion   # the retrieval's own trust in the embedder for this question (its word pieces)
            span = f.dense_weight - f.fragmented_dense_weight
            trust = (self.dense_weight(found.question) - f.fragmented_dense_weight) / span if span else 1.0
        return compose(found.question, found.hits, found.chunks, found.idf, found.found, opening=self.opening,
                       meaning=self.lines_by_meaning, similarity=self.similarity, trust=trust)

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
