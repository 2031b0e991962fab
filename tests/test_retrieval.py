"""Search and ask over an index built with the fake embedder: fusion, filters, citations, JSON shapes."""
import pytest

from azchat import Retriever, build_index
from azchat.errors import IndexCorruptError, IndexNotFoundError
from azchat.index.store import current_folder

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


def test_a_filter_that_matches_no_note_is_named_with_what_exists(retriever):
    assert retriever.filter_problem(["azure"], "storage") == ""
    assert retriever.filter_problem(["#Azure"], None) == ""                  # case and "#" do not matter
    problem = retriever.filter_problem(["azure", "no-such-tag"], None)
    assert problem.startswith("No note has the tag 'no-such-tag'. Tags in your notes: ") and "azure" in problem
    assert retriever.filter_problem(None, "nowhere") == "No note is in the folder 'nowhere'. Folders: ml, storage."
    assert retriever.filter_problem(None, "ml/") == ""


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
    from azchat.index.embedding import HashEmbedder

    build_index(vault, tmp_path / "index", embedder=fake)
    with pytest.raises(IndexCorruptError, match="built with"):
        Retriever(tmp_path / "index", embedder=HashEmbedder(name="other"))


def test_fusion_normalizes_each_list_and_notes_rank_by_their_best_chunk(retriever):
    import numpy as np

    from azchat.search.retrieval import FusionSettings, _normalize

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
    # words absent from every chunk that are no ordinary English or German word
    assert retriever.refusal.unknown_terms("How do I peer a Virtual Network with WireGuard and BigQuery?") \
        == ["WireGuard", "BigQuery"]
    assert retriever.refusal.unknown_terms("How do I peer virtual networks?") == []
    assert retriever.refusal.unknown_terms("Networking Basics: what is a VNet?") == []          # known to the vault
    assert retriever.refusal.unknown_terms("Wie richte ich einen Zeitserver mit WireGuard ein?") == ["WireGuard"]
    s = retriever.refusal.settings
    scored = [(0, 1.0, 0.5, 1.0)]
    between = (s.min_confidence + s.name_confidence) / 2
    for conf, question, refused in [(between, "How do I peer a VNet with WireGuard?", True),
                                    (between, "How do I peer a virtual network?", False),
                                    (s.name_confidence + 0.01, "How do I peer a VNet with WireGuard?", False),
                                    (s.min_confidence - 0.01, "How do I peer a virtual network?", True)]:
        monkeypatch.setattr(retriever.refusal, "confidence", lambda q, s, best_cos=None, c=conf: c)
        assert retriever.refusal.refuses(question, scored) is refused, (conf, question)


def test_bm25_counts_more_when_the_model_splits_the_question_into_many_pieces(retriever, monkeypatch):
    """A question in a language the embedding model knows poorly (German with the English MiniLM: 2-3 word
    pieces per word) leans on BM25: the dense weight falls from 0.6 at 1.4 pieces per word to 0.4 at 1.8."""
    import numpy as np

    from azchat.search.retrieval import FusionSettings

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
    assert retriever.refusal.signals(question, low, best_cos=best)[0] == pytest.approx(best)
    assert retriever.refusal.signals(question, low)[0] == 0.0


def test_the_bundled_model_vocabulary_tells_rare_names_from_common_words():
    # the word-piece counts the fusion's fertility reads (Retriever.dense_weight), checked on the bundled
    # model's own tokenizer (no torch needed)
    import azchat.index.models as models
    from azchat.index.embedding import WordPieceCounter

    from conftest import bundled_model_dir

    bundled_model_dir()                           # skipped without the bundled model; a failure in CI
    counter = WordPieceCounter(models.resolve_model("all-MiniLM-L6-v2").path)
    common = ["iphone", "mb", "autumn", "helm", "lambda", "rust", "kept"]
    rare = ["venv", "unittest", "for_each", "bigquery", "wireguard", "ansible", "lfs", "nextcloud"]
    assert counter.count(common) == [1] * len(common)
    assert min(counter.count(rare)) >= 2




def test_a_note_copied_into_another_file_does_not_crowd_the_hits(vault, tmp_path, fake):
    import shutil

    for n in range(3):
        shutil.copy(vault / "storage" / "storage.md", vault / f"copy{n}.md")
    build_index(vault, tmp_path / "index", embedder=fake)
    r = Retriever(tmp_path / "index", embedder=fake)
    hits = r.search("archive tier rehydration", k=6)
    texts = [h.text.strip() for h in hits]
    assert len(texts) == len(set(texts)) == 6          # each passage once, other passages fill the k
    ans = r.ask("archive tier rehydration")
    assert ans.found and len({c.snippet for c in ans.citations}) == len(ans.citations)
    # the note ranking still lists every copy: each file is a right answer for the eval
    files = r.rank_files("archive tier rehydration", 10)
    assert {"storage/storage.md", "copy0.md", "copy1.md", "copy2.md"} <= set(files[:4])


def test_an_english_question_keeps_a_german_chunks_dense_score_that_bm25_cannot_add_to(retriever):
    import numpy as np

    from azchat.index.analysis import is_german
    from azchat.search.retrieval import FusionSettings

    rows = [i for i, c in enumerate(retriever.chunks) if is_german(c.text)][:1] + \
        [i for i, c in enumerate(retriever.chunks) if not is_german(c.text)][:1]
    assert len(rows) == 2                                    # the fixture vault has a German note
    cand = np.array(rows)
    d = np.array([1.0, 0.5])            # the German chunk is the dense side's best match ...
    fused = np.array([0.6, 0.9])        # ... but without BM25 words it fused below the English one
    wd = retriever.dense_weight("how do I list my folders")
    credit = retriever.fusion.cross_language_credit
    assert 0 < credit < 1
    out = retriever._cross_language("how do I list my folders", cand, d, fused)
    assert out[0] == pytest.approx(wd + credit * (1 - wd)) and out[1] == 0.9
    # a German question, or the credit switched off, leaves the fusion alone
    assert list(retriever._cross_language("Wie liste ich die Ordner auf?", cand, d, fused)) == [0.6, 0.9]
    retriever.fusion = FusionSettings(cross_language_credit=0.0)
    assert list(retriever._cross_language("how do I list my folders", cand, d, fused)) == [0.6, 0.9]


def test_a_window_cut_out_of_the_middle_of_a_code_block_is_read_as_code(tmp_path):
    # a compose file longer than a chunk: the middle windows hold neither of its fences, and their YAML was read
    # as prose ("restart: unless-stopped depends_on: ..." quoted as one sentence)
    from conftest import write
    from azchat.index.embedding import HashEmbedder

    def services(numbers):
        return "".join(f"  app{n}:\n    image: example/app{n}:latest\n    container_name: app{n}\n"
                       f"    restart: unless-stopped\n    environment:\n      - SETTING_{n}=value{n}\n"
                       for n in numbers)
    body = ("# Stack\n\nMy compose file for the home server.\n\n```yaml\nservices:\n" + services(range(8))
            + "  database:\n    image: example/mariadb\n    container_name: stack_db\n" + services(range(8, 16))
            + "```\n\nThat is all.\n")
    notes = tmp_path / "notes"
    write(notes, "stack.md", body)
    small = HashEmbedder(max_tokens=60)
    build_index(notes, tmp_path / "index", embedder=small)
    r = Retriever(tmp_path / "index", embedder=small)
    middle = [c for c in r.chunks if "```" not in c.text and "example/mariadb" in c.text]
    assert middle, "the block should be cut into windows"
    assert r.opening(middle[0]) == (("```", "yaml"), False)
    assert r.opening(r.chunks[0]) == (None, False)
    ans = r.ask("Which image does the database container use?")
    assert ans.found
    quoted = [c for c in ans.citations if "example/mariadb" in c.snippet]
    assert quoted, ans.answer
    # quoted as the nested group it is in, never as a sentence run across lines of YAML
    assert "database:\n  image: example/mariadb\n  container_name: stack_db" in ans.answer


def test_a_window_that_starts_in_indented_command_output_is_known_to_be_code(tmp_path):
    from conftest import write
    from azchat.index.embedding import HashEmbedder

    output = "\n".join(f"    root  {900 + n}  1  0 13:35 ?  00:00:00 /usr/sbin/daemon{n} --system" for n in range(40))
    write(tmp_path / "notes", "ps.md",
          f"# Processes\n\nThe ps -ef command lists every process:\n\n{output}\n\nThat is all.\n")
    small = HashEmbedder(max_tokens=60)
    build_index(tmp_path / "notes", tmp_path / "index", embedder=small)
    r = Retriever(tmp_path / "index", embedder=small)
    inside = [c for c in r.chunks if c.text.startswith("    root")]
    assert inside and all(r.opening(c) == (None, True) for c in inside)
    assert r.opening(r.chunks[0]) == (None, False)
    from azchat.answer.segmenting import segment
    units = segment(inside[0], *r.opening(inside[0]))
    assert units and all(u.kind == "code" and u.start_line == u.end_line for u in units if "root" in u.text)


def test_a_long_running_searcher_keeps_only_the_recent_notes_lines(tmp_path, fake, monkeypatch):
    """A server asked about many notes does not keep every note's lines: the cache is bounded, the most recently
    read notes stay, and answers are the same once a note was dropped and is read again."""
    import azchat.search.retrieval as retrieval
    from conftest import write

    notes = tmp_path / "notes"
    for i in range(8):
        write(notes, f"n{i}.md", f"# Kiln {i}\n\nFiring schedule {i}: hold the kiln at {900 + i} degrees.\n")
    build_index(notes, tmp_path / "index", embedder=fake)
    monkeypatch.setattr(retrieval, "NOTE_VIEWS", 3)
    r = Retriever(tmp_path / "index", embedder=fake)
    first = r.ask("firing schedule 0 kiln degrees").answer
    for i in range(8):
        r.ask(f"firing schedule {i} kiln degrees")
    assert 0 < len(r._note_views) <= 3
    assert r.ask("firing schedule 0 kiln degrees").answer == first
