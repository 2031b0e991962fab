"""The optional semantic answer unit: the sentence closest in meaning is quoted even with no shared word."""
from dataclasses import replace

import numpy as np

from azchat import Retriever, build_index
from azchat.answer import SEMANTIC_UNITS, compose
from azchat.embedding import HashEmbedder
from azchat.retrieval import FusionSettings
from azchat.types import Chunk, Hit

TEXT = ("## Backups\n\n"
        "Backups run every night at two. Backups are kept for thirty days. Backups go to the archive tier. "
        "Backups are checked on Mondays. Backups can be restored from the portal.\n\n"
        "Deleted snapshots vanish for good after a week.")
PARAPHRASE = "How long until a removed copy is gone forever?"


def _chunk(text: str = TEXT) -> Chunk:
    return Chunk(id="c", path="ops.md", title="Ops", heading="Backups", start_line=1,
                 end_line=1 + text.count("\n"), text=text, embed_text=text, search_text=text)


def _hit(chunk: Chunk) -> Hit:
    return Hit(rank=1, path=chunk.path, title=chunk.title, heading=chunk.heading, start_line=chunk.start_line,
               end_line=chunk.end_line, score=1.0, text=chunk.text)


class Judge:
    """A fake similarity that knows one answer: 0.9 for the snapshot sentence, 0.1 for anything else."""

    def __init__(self):
        self.batches: list[list[str]] = []

    def __call__(self, texts):
        self.batches.append(list(texts))
        return [0.9 if "snapshots vanish" in t else 0.1 for t in texts]


def test_the_sentence_closest_in_meaning_is_quoted_without_a_shared_word():
    chunk = _chunk()
    idf = {"backup": 1.0}
    without = compose(PARAPHRASE + " backups", [_hit(chunk)], [chunk], idf, True)
    assert "snapshots vanish" not in without.answer          # lexically, the Backups sentences win
    judge = Judge()
    ans = compose(PARAPHRASE + " backups", [_hit(chunk)], [chunk], idf, True, similarity=judge)
    assert "Deleted snapshots vanish for good after a week." in ans.answer
    cited = [c for c in ans.citations if "snapshots" in c.snippet]
    assert len(cited) == 1 and cited[0].start_line == cited[0].end_line == 5
    assert len(ans.citations) <= 4                           # it takes a slot, it does not add one
    assert len(judge.batches) == 1 and len(judge.batches[0]) <= SEMANTIC_UNITS   # one capped batch


def test_a_weak_semantic_match_changes_nothing():
    chunk = _chunk()
    low = lambda texts: [0.1 for _ in texts]   # noqa: E731  nothing is close: the lexical answer stands
    a = compose("how long are backups kept", [_hit(chunk)], [chunk], {}, True)
    b = compose("how long are backups kept", [_hit(chunk)], [chunk], {}, True, similarity=low)
    assert a.answer == b.answer


def test_retriever_reuses_the_question_vector_and_embeds_units_in_one_batch(vault, tmp_path):
    fake = HashEmbedder()
    build_index(vault, tmp_path / "index", embedder=fake)
    r = Retriever(tmp_path / "index", embedder=fake, fusion=replace(FusionSettings(), semantic_answer=True))
    fake.calls.clear()
    ans = r.ask("archive tier rehydration")
    assert ans.found
    assert len(fake.calls) == 2 and fake.calls[0] == 1 and 1 <= fake.calls[1] <= SEMANTIC_UNITS
    off = Retriever(tmp_path / "index", embedder=fake)
    fake.calls.clear()
    off.ask("archive tier rehydration")
    assert fake.calls == [1]                  # the default: the question alone is embedded
    sims = r._similarity("not the last query")(["a b c"])   # no cached vector: question embedded alongside
    assert np.isfinite(sims[0]) and fake.calls[-1] == 2
