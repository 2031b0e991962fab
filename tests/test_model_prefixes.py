"""Query / passage prefixes (e5-style models): read from the model's own config or a table by name, put before
every chunk at index time and every question at search time, the same on the sentence-transformers path and
the ONNX light path, recorded in the manifest so another prefix means a rebuild."""
import json

import numpy as np
import pytest

from azchat.index.models import model_prefixes, resolve_model

E5 = {"query": "query: ", "passage": "passage: "}
BGE_Q = "Represent this sentence for searching relevant passages: "
QUESTION = "how do I peer two virtual networks"


def _folder(tmp_path, name, st_config=None, hf_config=None):
    folder = tmp_path / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(hf_config or {}))
    if st_config is not None:
        (folder / "config_sentence_transformers.json").write_text(json.dumps(st_config))
    return folder


# -- where the prefixes come from (no torch) ------------------------------------------------------------
def test_prefixes_come_from_the_models_own_prompts(tmp_path):
    folder = _folder(tmp_path, "some-model", {"prompts": {"query": "Q> ", "document": "", "passage": "P> "}})
    assert model_prefixes(folder) == ("Q> ", "P> ")
    # the first non-empty passage-like prompt; an explicit prompt beats the table for an e5 name
    folder = _folder(tmp_path, "multilingual-e5-small", {"prompts": {"query": "q ", "document": "d "}})
    assert model_prefixes(folder, "intfloat/multilingual-e5-small") == ("q ", "d ")


def test_default_prompt_name_fills_the_role_without_its_own_prompt(tmp_path):
    folder = _folder(tmp_path, "m", {"prompts": {"query": "search: ", "retrieval": "doc: "},
                                     "default_prompt_name": "retrieval"})
    assert model_prefixes(folder) == ("search: ", "doc: ")


@pytest.mark.parametrize("name, expected", [
    ("intfloat/multilingual-e5-small", ("query: ", "passage: ")),
    ("intfloat/multilingual-e5-base", ("query: ", "passage: ")),
    ("intfloat/e5-small-v2", ("query: ", "passage: ")),
    ("BAAI/bge-small-en-v1.5", (BGE_Q, "")),
    ("intfloat/multilingual-e5-large-instruct", ("", "")),    # an instruction format of its own: not guessed
    ("BAAI/bge-m3", ("", "")),
    ("paraphrase-multilingual-MiniLM-L12-v2", ("", "")),
    ("all-MiniLM-L6-v2", ("", "")),
])
def test_table_by_name_when_the_config_has_no_prompts(tmp_path, name, expected):
    # sentence-transformers writes "prompts": {} (or nothing) for a model without prompts
    folder = _folder(tmp_path, "snapshot", {"prompts": {}, "default_prompt_name": None})
    assert model_prefixes(folder, name) == expected


def test_table_matches_the_folder_name_or_the_configs_name(tmp_path):
    assert model_prefixes(_folder(tmp_path, "multilingual-e5-small")) == ("query: ", "passage: ")
    cfg = {"_name_or_path": "intfloat/multilingual-e5-base"}
    assert model_prefixes(_folder(tmp_path, "my-copy", hf_config=cfg)) == ("query: ", "passage: ")
    assert model_prefixes(_folder(tmp_path, "my-other-model")) == ("", "")


def test_prefixes_shorten_the_chunk_budget(fake):
    from azchat.index.embedding import prefix_tokens

    assert prefix_tokens(fake.count_tokens, "passage: ") == 1 and prefix_tokens(fake.count_tokens, "") == 0


def test_hash_embedder_index_records_prefixes_and_a_changed_prefix_rebuilds(vault, tmp_path):
    from azchat import build_index
    from azchat.index.embedding import HashEmbedder
    from azchat.errors import IndexCorruptError
    from azchat import Retriever
    from azchat.index.store import load_generation, read_manifest

    index = tmp_path / "index"
    plain = HashEmbedder()
    build_index(vault, index, embedder=plain)
    assert read_manifest(index)["prefixes"] == {"query": "", "passage": ""}
    e5 = HashEmbedder(query_prefix="query: ", passage_prefix="passage: ")
    with pytest.raises(IndexCorruptError, match="prefixes"):
        Retriever(index, embedder=e5)
    stats = build_index(vault, index, embedder=e5)
    assert "prefixes changed" in stats.full_rebuild_reason
    assert stats.embedded == stats.chunks          # no vector of the unprefixed build is reused
    gen = load_generation(index)
    assert read_manifest(index)["prefixes"] == E5
    want = plain.embed(["passage: " + c.embed_text for c in gen.chunks])
    assert np.allclose(gen.vectors, want, atol=1e-3)
    r = Retriever(index, embedder=e5)
    row, _, cosine, _ = r._scored(QUESTION, 1, None, None)[0]
    assert cosine == pytest.approx(float(gen.vectors[row] @ plain.embed(["query: " + QUESTION])[0]), abs=1e-6)


# -- end to end with a tiny model whose config carries prompts (torch) ---------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tiny_models import make_embedding_model

    root = tmp_path_factory.mktemp("tiny-e5")
    return make_embedding_model(root / "tiny-e5", prompts=E5)


@pytest.fixture(scope="module")
def reference(tiny):
    """sentence-transformers itself, the prefix written into the text by the test (prompt="" so nothing else
    is added)."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny), device="cpu", local_files_only=True)
    return lambda texts: model.encode(list(texts), prompt="", normalize_embeddings=True, convert_to_numpy=True)


def _query_cosines(retriever, question):
    return {row: cos for row, _, cos, _ in retriever._scored(question, 5, None, None)}


def _check_index(index, reference):
    from azchat.index.store import load_generation, read_manifest

    gen = load_generation(index)
    assert read_manifest(index)["prefixes"] == E5
    stored = gen.vectors
    want = reference(["passage: " + c.embed_text for c in gen.chunks])
    assert np.allclose(stored, want, rtol=2**-10, atol=1e-4), np.abs(stored - want).max()
    unprefixed = reference([c.embed_text for c in gen.chunks])
    assert not np.allclose(stored, unprefixed, atol=1e-2)        # the prefix really changes the vectors
    return gen


def _check_query(retriever, gen, reference):
    qv = reference(["query: " + QUESTION])[0]
    got = _query_cosines(retriever, QUESTION)
    assert got and all(c == pytest.approx(float(gen.vectors[row] @ qv), abs=1e-4) for row, c in got.items())
    bare = reference([QUESTION])[0]
    assert not all(c == pytest.approx(float(gen.vectors[row] @ bare), abs=1e-3) for row, c in got.items())


@pytest.mark.slow
def test_prefixes_end_to_end_on_the_onnx_light_path(tiny, reference, vault, tmp_path, monkeypatch):
    from azchat import build_index
    from azchat.index.embedding import SentenceTransformerEmbedder
    from azchat.index.onnx_embedding import OnnxEmbedder, find_export
    from azchat import Retriever
    from azchat.index.store import load_generation

    index = tmp_path / "index"
    build_index(vault, index, model=str(tiny))              # sentence-transformers embeds, then exports
    info = resolve_model(str(tiny))
    assert (info.query_prefix, info.passage_prefix) == ("query: ", "passage: ")
    export = find_export(index, info)
    assert export is not None and json.loads((export / "export.json").read_text())["prefixes"] == E5
    gen = _check_index(index, reference)

    r = Retriever(index)                                    # the model comes from the manifest
    assert isinstance(r.embedder, OnnxEmbedder)
    _check_query(r, gen, reference)

    # a small rebuild goes through the ONNX export and prefixes the new chunk the same way
    (vault / "extra.md").write_text("## Tiers\n\nThe archive tier needs rehydration before reading.\n")
    stats = build_index(vault, index, model=str(tiny))
    assert stats.embedded == 1 and stats.full_rebuild_reason == ""
    _check_index(index, reference)

    monkeypatch.setenv("AZCHAT_ONNX", "0")                   # the sentence-transformers path, same vectors
    r = Retriever(index)
    assert isinstance(r.embedder, SentenceTransformerEmbedder)
    _check_query(r, load_generation(index), reference)
    full = tmp_path / "index-st"
    build_index(vault, full, model=str(tiny))
    assert not (full / "models").exists()
    _check_index(full, reference)


@pytest.mark.slow
def test_onnx_and_reference_agree_on_prefixed_text(tiny, vault, tmp_path):
    from azchat.index.embedding import SentenceTransformerEmbedder, embed_passages, embed_queries
    from azchat.index.onnx_embedding import OnnxEmbedder, export_model

    info = resolve_model(str(tiny))
    ref, light = SentenceTransformerEmbedder(info), OnnxEmbedder(export_model(tmp_path, info))
    assert (light.query_prefix, light.passage_prefix) == ("query: ", "passage: ")
    assert light.max_tokens == ref.max_tokens == 128 - 2 - 2       # "passage:" is two tokens of the budget
    texts = ["Peered networks use the Microsoft backbone.", "Die Namensauflösung erfolgt über eine DNS-Zone."]
    for fn in (embed_passages, embed_queries):
        assert np.sum(fn(ref, texts) * fn(light, texts), axis=1).min() >= 0.9999


@pytest.mark.slow
def test_a_changed_prompt_means_a_rebuild_and_a_new_checked_export(tiny, vault, tmp_path):
    import shutil

    from azchat import build_index
    from azchat.errors import IndexCorruptError
    from azchat import Retriever
    from azchat.index.store import read_manifest
    from tiny_models import set_prompts

    model = tmp_path / "model"
    shutil.copytree(tiny, model)
    index = tmp_path / "index"
    build_index(vault, index, model=str(model))
    set_prompts(model, {"query": "search_query: ", "passage": "search_document: "})
    with pytest.raises(IndexCorruptError, match="prefixes"):
        Retriever(index)
    stats = build_index(vault, index, model=str(model))
    assert "prefixes changed" in stats.full_rebuild_reason and stats.embedded == stats.chunks
    assert read_manifest(index)["prefixes"] == {"query": "search_query: ", "passage": "search_document: "}
    exports = sorted(p.name for p in (index / "models").iterdir() if not p.name.startswith("."))
    assert len(exports) == 2                                   # one per prefix pair, each checked when made
    assert Retriever(index).search(QUESTION, k=1)


@pytest.mark.slow
def test_the_export_check_compares_prompted_encodings(tmp_path, vault):
    """A model whose pooling leaves the prompt's tokens out (include_prompt=False) encodes a prompted text
    differently from the same text with the prompt written in: the ONNX export, which writes it in, must be
    refused, and the index is then built and searched with sentence-transformers' own prompted encode."""
    from sentence_transformers import SentenceTransformer

    from azchat import build_index
    from azchat.index.embedding import SentenceTransformerEmbedder
    from azchat.errors import ModelError
    from azchat.index.onnx_embedding import export_model, failed_before
    from azchat import Retriever
    from azchat.index.store import load_generation
    from tiny_models import make_embedding_model

    model = make_embedding_model(tmp_path / "instructor-like", prompts=E5, include_prompt=False)
    info = resolve_model(str(model))
    assert info.include_prompt is False
    with pytest.raises(ModelError, match="differs"):
        export_model(tmp_path / "exports", info)
    index = tmp_path / "index"
    build_index(vault, index, model=str(model))
    assert failed_before(index, info)
    st = SentenceTransformer(str(model), device="cpu", local_files_only=True)
    gen = load_generation(index)
    want = st.encode([c.embed_text for c in gen.chunks], prompt="passage: ", normalize_embeddings=True)
    assert np.allclose(gen.vectors, want, rtol=2**-10, atol=1e-4)
    r = Retriever(index)
    assert isinstance(r.embedder, SentenceTransformerEmbedder)


@pytest.mark.slow
def test_cli_model_flag_end_to_end(tiny, vault, tmp_path, capsys):
    from azchat.apps.cli import main
    from azchat.index.store import read_manifest

    index = tmp_path / "index"
    assert main(["index", "--notes", str(vault), "--index", str(index), "--model", str(tiny), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["chunks"] > 0
    assert read_manifest(index)["prefixes"] == E5
    assert main(["search", QUESTION, "--index", str(index), "--model", str(tiny), "-k", "2", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert len(hits) == 2
    assert main(["ask", QUESTION, "--index", str(index), "--json"]) == 0     # the manifest's model
    assert "answer" in json.loads(capsys.readouterr().out)
