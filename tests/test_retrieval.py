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
