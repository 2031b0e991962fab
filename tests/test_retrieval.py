"""Search and ask over an index built with the fake embedder: fusion, filters, citations, JSON shapes."""
import pytest

from azchat import Retriever, build_index
from azchat.errors import IndexCorruptError, IndexNotFoundError
from azchat.store import current_folder

from conftest import assert_span


@pytest.fixture
def retriever(vault, tmp_path, fake):
    build_index(vault, tmp_path / "index", embedder=fake)
    return Retriever(tmp_path / "index", embedder=fake)


def test_search_finds_the_section_and_carries_citation_fields(retriever, vault):
    hits = retriever.search("peer two virtual networks peering link", k=3)
    assert hits[0].path == "networking.md"
    assert hits[0].heading == "Networking Basics > Virtual Networks > Peering"
    assert [h.rank for h in hits] == [1, 2, 3]
    assert hits[0].score >= hits[1].score >= hits[2].score
    for h in hits:
        assert_span(vault, h.path, h.start_line, h.end_line, h.text)
    assert set(hits[0].to_dict()) == {"rank", "path", "title", "heading", "start_line", "end_line", "score", "text"}


def test_ask_quotes_sentences_with_exact_lines(retriever, vault):
    ans = retriever.ask("archive tier rehydration")
    assert ans.found
    assert ans.citations[0].path == "storage/storage.md"
    assert "[1]" in ans.answer and "storage/storage.md:13" in ans.answer
    for c in ans.citations:
        assert_span(vault, c.path, c.start_line, c.end_line, c.snippet)
    assert set(ans.to_dict()) == {"question", "answer", "found", "citations"}
    assert set(ans.to_dict()["citations"][0]) == {"n", "path", "title", "heading", "start_line", "end_line",
                                                 "snippet"}


def test_ask_refuses_when_nothing_is_relevant(retriever):
    ans = retriever.ask("sourdough bread baking temperature")
    assert not ans.found and ans.citations == []
    assert "could not find" in ans.answer


def test_filters_apply_inside_retrieval(retriever):
    hits = retriever.search("network", k=10, tags=["storage"])
    assert hits and {h.path for h in hits} == {"storage/storage.md"}
    hits = retriever.search("network", k=10, folder="ml")
    assert {h.path for h in hits} == {"ml/machine learning.md"}
    assert retriever.search("network", tags=["no-such-tag"]) == []


def test_tags_and_folders_are_listed(retriever):
    assert retriever.tags() == ["azure", "dns", "ml", "networking", "storage"]
    assert retriever.folders() == ["ml", "storage"]


def test_missing_and_damaged_index_give_clear_errors(tmp_path, vault, fake):
    with pytest.raises(IndexNotFoundError, match="azchat index"):
        Retriever(tmp_path / "nothing", embedder=fake)
    build_index(vault, tmp_path / "index", embedder=fake)
    (current_folder(tmp_path / "index") / "vectors.npy").write_bytes(b"garbage")
    with pytest.raises(IndexCorruptError, match="--full"):
        Retriever(tmp_path / "index", embedder=fake)


def test_an_index_built_with_another_model_is_refused(vault, tmp_path, fake):
    from azchat.embedding import HashEmbedder

    build_index(vault, tmp_path / "index", embedder=fake)
    with pytest.raises(IndexCorruptError, match="built with"):
        Retriever(tmp_path / "index", embedder=HashEmbedder(name="other"))


def test_fusion_normalizes_each_list_and_notes_rank_by_their_best_chunk(retriever):
    import numpy as np

    from azchat.retrieval import FusionSettings, _normalize

    assert list(_normalize(np.array([2.0, 4.0, 3.0]), "minmax")) == [0.0, 1.0, 0.5]
    assert list(_normalize(np.array([2.0, 4.0]), "max")) == [0.5, 1.0]
    z = _normalize(np.array([1.0, 2.0, 3.0]), "zscore")
    assert abs(float(z.mean())) < 1e-9 and z[2] > z[1] > z[0]
    assert list(_normalize(np.array([3.0, 3.0]), "minmax")) == [0.0, 0.0]

    files = retriever.rank_files("archive tier rehydration", 10)
    assert files[0] == "storage/storage.md" and len(files) == len(set(files))
    assert retriever.rank_files("archive tier rehydration", 10, mode="lexical")[0] == "storage/storage.md"
    # the folder filter works inside retrieval: only the ml note can come back
    assert retriever.rank_files("archive tier rehydration", 10, folder="ml") == ["ml/machine learning.md"]
    # a pure lexical weighting ranks like BM25 alone
    retriever.fusion = FusionSettings(dense_weight=0.0, lexical_weight=1.0)
    assert retriever.rank_files("rehydration", 1) == retriever.rank_files("rehydration", 1, mode="lexical")


def test_a_name_the_vault_never_mentions_raises_the_bar_for_answering(retriever, monkeypatch):
    # name-like words (capitalized inside an English sentence, mixed case, all caps) absent from every chunk
    assert retriever.unknown_names("How do I peer a Virtual Network with WireGuard and BigQuery?") \
        == ["WireGuard", "BigQuery"]
    assert retriever.unknown_names("How do I peer virtual networks?") == []
    assert retriever.unknown_names("Networking Basics: what is a VNet?") == []          # known to the vault
    # German nouns are capitalized anyway: only mixed case / all caps / digits count there
    assert retriever.unknown_names("Wie richte ich einen Zeitserver mit WireGuard ein?") == ["WireGuard"]
    scored = [(0, 1.0, 0.5, 1.0)]
    for conf, question, refused in [(0.35, "How do I peer a VNet with WireGuard?", True),
                                    (0.35, "How do I peer a virtual network?", False),
                                    (0.45, "How do I peer a VNet with WireGuard?", False),
                                    (0.20, "How do I peer a virtual network?", True)]:
        monkeypatch.setattr(retriever, "confidence", lambda q, s, best_cos=None, c=conf: c)
        assert retriever.refuses(question, scored) is refused, (conf, question)
        assert retriever.ask(question).found is not refused
    assert retriever.refuses("anything", []) is True


def test_bm25_counts_more_when_the_model_splits_the_question_into_many_pieces(retriever, monkeypatch):
    """A question in a language the embedding model knows poorly (German with the English MiniLM: 2-3 word
    pieces per word) leans on BM25: the dense weight falls from 0.6 at 1.4 pieces per word to 0.4 at 1.8."""
    import numpy as np

    from azchat.retrieval import FusionSettings

    pieces = {"virtuelle": 3, "netzwerke": 3, "verbinden": 2, "peer": 1, "virtual": 1, "networks": 1}
    monkeypatch.setattr(retriever.embedder, "count_tokens", lambda ws: [pieces.get(w, 1) for w in ws])
    assert retriever.dense_weight("peer virtual networks") == pytest.approx(0.6)
    assert retriever.dense_weight("virtuelle Netzwerke verbinden") == pytest.approx(0.4)      # 2.67 per word
    assert retriever.dense_weight("verbinden peer verbinden virtual verbinden") == pytest.approx(0.5)   # 1.6
    # the two weights still add up to one, so fused scores stay comparable between questions
    fused = retriever._fuse(np.array([1.0, 0.0, 0.5]), np.array([0.0, 2.0, 1.0]), "hybrid", 0.4)
    assert list(np.round(fused, 6)) == [0.4, 0.6, 0.5]
    # a model whose vocabulary covers the question (one piece per word) keeps the tuned weight: the English
    # ranking is untouched, and equal weights switch the rule off
    monkeypatch.setattr(retriever.embedder, "count_tokens", lambda ws: [1] * len(ws))
    assert retriever.dense_weight("virtuelle Netzwerke verbinden") == pytest.approx(0.6)
    retriever.fusion = FusionSettings(fragmented_dense_weight=0.6)
    monkeypatch.setattr(retriever.embedder, "count_tokens", lambda ws: [3] * len(ws))
    assert retriever.dense_weight("virtuelle Netzwerke verbinden") == pytest.approx(0.6)


def test_refusal_reads_the_best_cosine_of_the_whole_pool_not_only_the_fused_top(retriever):
    """Lowering the dense weight may push the most similar chunk out of the top k; the confidence signal must
    not change with that ordering."""
    question = "archive tier rehydration"
    scored, best = retriever._ranked(question, 1, None, None)
    assert best >= scored[0][2]
    low = [(row, f, 0.0, lex) for row, f, _, lex in scored]       # the top hit alone says cosine 0
    assert retriever.signals(question, low, best_cos=best)[0] == pytest.approx(best)
    assert retriever.signals(question, low)[0] == 0.0
