"""The optional reranking stage: a cross-encoder over the fused top candidates, blended with the fused order by
position (rerank.py), hooked into Retriever; --reranker / AZCHAT_RERANKER. No model ships: the slow tests build
a tiny random cross-encoder themselves."""
import json

import numpy as np
import pytest

from azchat import build_index
from azchat.errors import ModelError
from azchat.search.rerank import CrossEncoderReranker, blend
from azchat import Retriever

QUESTION = "how do I peer two virtual networks"


# -- the blend -------------------------------------------------------------------------------------------
def test_blend_is_a_reciprocal_rank_sum_of_both_positions():
    # cross-encoder order of the fused positions: 1, 2, 3, 0
    scores = [0.1, 0.9, 0.5, 0.2]
    # k=60: 0 -> 1/61+1/64, 1 -> 1/62+1/61, 2 -> 1/63+1/62, 3 -> 1/64+1/63
    assert blend(scores) == [1, 0, 2, 3]
    # k=0 weighs the top positions most: 0 -> 1+1/4, 1 -> 1/2+1, 2 -> 1/3+1/2, 3 -> 1/4+1/3
    assert blend(scores, k=0) == [1, 0, 2, 3]
    assert blend([0.0, 1.0, 2.0, 3.0, 4.0], k=0) == [0, 4, 1, 3, 2]


def test_blend_ties_keep_the_fused_order():
    assert blend([0.0, 1.0]) == [0, 1]             # 1/61+1/62 both ways
    assert blend([5.0, 5.0, 5.0]) == [0, 1, 2]     # equal scores: the cross-encoder keeps the fused order
    assert blend([]) == [] and blend([3.0]) == [0]


# -- the hook in Retriever, with a scripted cross-encoder (no torch) ---------------------------------------
class Scripted(CrossEncoderReranker):
    """The real rerank() and blend, with scores from a function instead of a model."""

    def __init__(self, score_of, depth=30, k=60):
        self.name, self.depth, self.k, self.score_of = "scripted", depth, k, score_of
        self.seen: list[list[str]] = []

    def scores(self, question, texts):
        self.seen.append(list(texts))
        return np.array([self.score_of(t) for t in texts], dtype=np.float32)


@pytest.fixture
def index(vault, tmp_path, fake):
    build_index(vault, tmp_path / "index", embedder=fake)
    return tmp_path / "index"


def _rows(retriever, question=QUESTION):
    return [(row, score) for row, score, _, _ in retriever._scored(question, 100, None, None)]


@pytest.mark.parametrize("depth", [3, 30])
def test_the_fused_head_is_reordered_by_the_blend_and_the_rest_keeps_its_order(index, fake, depth):
    plain = Retriever(index, embedder=fake, reranker="off")
    assert plain.reranker is None
    fused = [row for row, _ in _rows(plain)]
    assert len(fused) > 3
    chunks = plain.chunks
    score_of = lambda text: float(len(text) % 7)      # arbitrary but fixed
    scripted = Scripted(score_of, depth=depth)
    r = Retriever(index, embedder=fake, reranker=scripted)
    got = _rows(r)
    head = fused[:depth]
    # the cross-encoder read the head's embedded text (title, heading, body) in fused order
    assert scripted.seen == [[chunks[row].embed_text for row in head]]
    want = [head[j] for j in blend([score_of(chunks[row].embed_text) for row in head])] + fused[depth:]
    assert [row for row, _ in got] == want
    assert want != fused                              # the script really moves something
    # the reordered candidates take over the fused scores by position: scores still fall with rank
    assert [s for _, s in got] == [s for _, s in _rows(plain)]
    # hits and notes follow the new order
    hits = r.search(QUESTION, k=3)
    assert [(h.path, h.start_line) for h in hits] == [(chunks[row].path, chunks[row].start_line) for row in want[:3]]
    notes = list(dict.fromkeys(chunks[row].path for row in want))
    assert r.rank_files(QUESTION, n=10) == notes


def test_the_reranker_reads_only_hybrid_rankings(index, fake):
    scripted = Scripted(lambda text: 1.0)
    r = Retriever(index, embedder=fake, reranker=scripted)
    r.rank_files(QUESTION, mode="dense")
    r.rank_files(QUESTION, mode="lexical")
    assert scripted.seen == []
    r.search(QUESTION)
    assert len(scripted.seen) == 1


def test_reranker_is_off_by_default_and_named_by_the_environment(index, fake, monkeypatch, tmp_path):
    assert Retriever(index, embedder=fake).reranker is None
    monkeypatch.setenv("AZCHAT_RERANKER", "off")
    assert Retriever(index, embedder=fake).reranker is None
    monkeypatch.setenv("AZCHAT_RERANKER", str(tmp_path / "no-such-model"))
    with pytest.raises(ModelError, match="Unknown reranker"):
        Retriever(index, embedder=fake)
    assert Retriever(index, embedder=fake, reranker="off").reranker is None    # an explicit off wins


def test_a_pickle_only_cross_encoder_is_refused(index, fake, tmp_path):
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ModelError, match="pickle"):
        Retriever(index, embedder=fake, reranker=str(folder))


def test_a_hub_name_is_looked_up_in_the_local_cache_only(index, fake, tmp_path, monkeypatch):
    from azchat.search.rerank import resolve_reranker

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    snap = tmp_path / "hub" / "models--cross-encoder--ms-marco-MiniLM-L6-v2" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    (snap / "model.safetensors").write_bytes(b"")
    assert resolve_reranker("ms-marco-MiniLM-L6-v2") == snap          # a bare name: cross-encoder/...
    assert resolve_reranker("cross-encoder/ms-marco-MiniLM-L6-v2") == snap
    with pytest.raises(ModelError, match="never downloads"):
        resolve_reranker("BAAI/bge-reranker-base")


# -- a tiny real cross-encoder (torch) -------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_ce(tmp_path_factory):
    from tiny_models import make_cross_encoder

    return make_cross_encoder(tmp_path_factory.mktemp("ce") / "tiny-ce")


@pytest.mark.slow
def test_a_tiny_cross_encoder_reranks_end_to_end(index, fake, tiny_ce):
    from sentence_transformers import CrossEncoder

    plain = Retriever(index, embedder=fake, reranker="off")
    fused = [row for row, _ in _rows(plain)]
    r = Retriever(index, embedder=fake, reranker=str(tiny_ce))
    assert r.reranker.name == str(tiny_ce) and r.reranker.depth == 30
    ce = CrossEncoder(str(tiny_ce), device="cpu", local_files_only=True, max_length=128)
    texts = [plain.chunks[row].embed_text for row in fused[:30]]
    scores = ce.predict([(QUESTION, t) for t in texts])
    assert np.ptp(scores) > 1e-3                      # the random model tells the passages apart
    want = [fused[:30][j] for j in blend(scores)] + fused[30:]
    assert want != fused
    assert [row for row, _ in _rows(r)] == want


@pytest.fixture(scope="module")
def cli_index(tmp_path_factory):
    """An index built with a tiny embedding model (the CLI loads the index's model by name)."""
    from conftest import write_fixture_vault
    from tiny_models import make_embedding_model

    root = tmp_path_factory.mktemp("cli-rerank")
    model = make_embedding_model(root / "tiny-embedder")
    notes = write_fixture_vault(root / "notes")
    build_index(notes, root / "index", model=str(model))
    return notes, root / "index"


def _cli(capsys, *argv):
    from azchat.apps.cli import main

    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.slow
def test_cli_reranker_flag_and_environment(cli_index, tiny_ce, capsys, monkeypatch):
    notes, index = cli_index
    base = ["--notes", str(notes), "--index", str(index), "--json"]
    code, out, _ = _cli(capsys, "search", QUESTION, *base, "-k", "8", "--reranker", "off")
    assert code == 0
    plain = [(h["path"], h["start_line"]) for h in json.loads(out)["hits"]]
    code, out, _ = _cli(capsys, "search", QUESTION, *base, "-k", "8", "--reranker", str(tiny_ce))
    assert code == 0
    reranked = [(h["path"], h["start_line"]) for h in json.loads(out)["hits"]]
    r = Retriever(index, reranker=str(tiny_ce))
    assert reranked == [(h.path, h.start_line) for h in r.search(QUESTION, k=8)]
    assert reranked != plain and sorted(reranked) == sorted(plain)
    monkeypatch.setenv("AZCHAT_RERANKER", str(tiny_ce))
    code, out, _ = _cli(capsys, "search", QUESTION, *base, "-k", "8")
    assert [(h["path"], h["start_line"]) for h in json.loads(out)["hits"]] == reranked
    monkeypatch.delenv("AZCHAT_RERANKER")

    code, out, _ = _cli(capsys, "ask", QUESTION, *base, "--reranker", str(tiny_ce))
    assert code == 0 and {"question", "answer", "found", "citations"} <= set(json.loads(out))


@pytest.mark.slow
def test_cli_eval_reports_the_reranker(cli_index, tiny_ce, capsys, tmp_path):
    notes, index = cli_index
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"question": QUESTION, "gold_files": ["networking.md"]}) + "\n")
    base = ["--notes", str(notes), "--index", str(index), "--json"]
    code, out, _ = _cli(capsys, "eval", str(questions), *base, "--reranker", str(tiny_ce))
    assert code == 0 and json.loads(out)["reranker"] == str(tiny_ce)
    code, out, _ = _cli(capsys, "eval", str(questions), *base)
    assert code == 0 and "reranker" not in json.loads(out)


def test_cli_bad_reranker_is_one_sentence_and_exit_5(cli_index_fake, capsys):
    notes, index = cli_index_fake
    code, out, err = _cli(capsys, "search", "peer", "--notes", str(notes), "--index", str(index),
                          "--model", "hash", "--reranker", "/no/such/reranker", "--json")
    assert code == 5 and out == "" and err.startswith("azchat: Unknown reranker")


@pytest.fixture
def cli_index_fake(vault, tmp_path, fake, monkeypatch):
    """The CLI over a fake-embedder index: load_embedder is pointed at the fake."""
    import azchat.index.embedding

    build_index(vault, tmp_path / "index", embedder=fake)
    monkeypatch.setattr(azchat.index.embedding, "load_embedder", lambda model=None, index_dir=None: fake)
    return vault, tmp_path / "index"


@pytest.mark.parametrize("command", ["search", "ask", "serve", "eval"])
def test_reranker_flag_is_in_help(command, capsys):
    from azchat.apps.cli import main

    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "--reranker NAME" in capsys.readouterr().out


@pytest.mark.slow
def test_serve_passes_the_reranker_to_the_service(cli_index, tiny_ce, capsys, monkeypatch):
    """`serve --reranker NAME --json`: the ready line's status names it (the app itself is not started)."""
    import azchat.apps.ui

    notes, index = cli_index

    def fake_launch(service, on_ready=None, **kwargs):
        assert service.retriever.reranker.name == str(tiny_ce)
        on_ready("http://127.0.0.1:0")

    monkeypatch.setattr(azchat.apps.ui, "launch", fake_launch)
    code, out, _ = _cli(capsys, "serve", "--notes", str(notes), "--index", str(index), "--json",
                        "--reranker", str(tiny_ce))
    assert code == 0 and json.loads(out)["reranker"] == str(tiny_ce)
