"""Dense index: exact below the threshold, IVF above it with recall@10 >= 0.98, recorded in the manifest."""
import numpy as np
import pytest

from azchat import build_index
from azchat.index import dense
from azchat import Retriever
from azchat.index.store import current_folder, load_generation, read_manifest

from conftest import write


def clustered(n: int, dim: int = 32, centers: int = 50, seed: int = 0) -> np.ndarray:
    """Normalized vectors around topic centres, like embeddings of notes on a few subjects."""
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centers, dim))
    v = c[rng.integers(0, centers, n)] + rng.normal(scale=0.6, size=(n, dim))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def test_choose_kind_follows_the_threshold():
    assert dense.choose_kind(10) == dense.FLAT
    assert dense.choose_kind(dense.ANN_THRESHOLD) == dense.IVF
    assert dense.choose_kind(999, threshold=1000) == dense.FLAT
    assert dense.choose_kind(1000, threshold=1000) == dense.IVF


def test_ivf_recall_against_exact_search(tmp_path):
    vecs = clustered(6000)
    index, params = dense.build(vecs, dense.IVF)
    assert params["kind"] == "ivf" and params["recall_at_10"] >= 0.98
    assert 1 <= params["nprobe"] <= params["nlist"] and params["nlist"] >= 8
    exact, _ = dense.build(vecs, dense.FLAT)
    dense.write(index, tmp_path / "d.faiss")
    index = dense.read(tmp_path / "d.faiss")
    assert index.nprobe == params["nprobe"]          # the tuned nprobe survives the file
    rng = np.random.default_rng(1)
    q = vecs[rng.choice(len(vecs), 300, replace=False)] + rng.normal(scale=0.05, size=(300, 32)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    truth = np.array([dense.search(exact, x, 10)[0] for x in q])
    got = np.array([dense.search(index, x, 10)[0] for x in q])
    assert dense.recall_at(truth, got) >= 0.98


def test_filtered_ivf_search_is_exact():
    vecs = clustered(3000, seed=2)
    index, _ = dense.build(vecs, dense.IVF)
    exact, _ = dense.build(vecs, dense.FLAT)
    allowed = np.arange(0, 3000, 97)
    for x in vecs[:20]:
        a, _ = dense.search(index, x, 5, allowed)
        b, _ = dense.search(exact, x, 5, allowed)
        assert set(a) <= set(allowed.tolist()) and list(a) == list(b)


def test_build_records_ivf_in_the_manifest(vault, tmp_path, fake, monkeypatch):
    for i in range(30):
        write(vault, f"extra/note{i}.md", f"# Note {i}\n\nTopic {i % 5} words alpha{i} beta{i % 3}.\n\n"
                                          f"## Part\n\nMore text {i} gamma{i % 7}.\n")
    monkeypatch.setenv("AZCHAT_ANN_THRESHOLD", "20")
    idx = tmp_path / "index"
    stats = build_index(vault, idx, embedder=fake)
    assert stats.chunks >= 20
    manifest = read_manifest(idx)
    assert manifest["dense"]["kind"] == "ivf"
    assert {"nlist", "nprobe", "recall_at_10"} <= set(manifest["dense"])
    r = Retriever(idx, embedder=fake)
    hits = r.search("alpha7 gamma0", k=3)
    assert hits and hits[0].path == "extra/note7.md"
    assert all(h.path.startswith("extra/") for h in r.search("topic words", k=5, folder="extra"))
    monkeypatch.setenv("AZCHAT_ANN_THRESHOLD", "100000")
    write(vault, "extra/note0.md", "# Note 0\n\nChanged.\n")
    build_index(vault, idx, embedder=fake)
    assert read_manifest(idx)["dense"] == {"kind": "flat", "codes": "float16"}
    assert current_folder(idx).is_dir()


def test_failed_export_keeps_the_reference_path_and_is_not_retried(vault, tmp_path, monkeypatch):
    """A model that cannot be exported: the build still succeeds, says why once, and does not retry."""
    import azchat.index.embedding as embedding
    import azchat.index.onnx_embedding as onnx_embedding
    from azchat.index.embedding import HashEmbedder, SentenceTransformerEmbedder
    from azchat.errors import ModelError
    from azchat.index.models import resolve_model

    class FakeReference(SentenceTransformerEmbedder):   # the real class, a fake encoder (no torch)
        def embed(self, texts, progress=None):
            return HashEmbedder(dim=self.dim).embed(texts)

    calls = []

    def failing_export(index_dir, info, st_model=None):
        calls.append(info.name)
        raise ModelError("this model cannot be exported")

    monkeypatch.setattr(embedding, "load_embedder",
                        lambda model=None, index_dir=None: FakeReference(resolve_model("all-MiniLM-L6-v2")))
    monkeypatch.setattr(onnx_embedding, "export_model", failing_export)
    logs = []
    idx = tmp_path / "index"
    build_index(vault, idx, log=logs.append)
    assert calls == ["all-MiniLM-L6-v2"] and any("cannot be exported" in m for m in logs)
    assert "onnx" not in read_manifest(idx)
    write(vault, "more.md", "# More\n\nAnother note.\n")
    build_index(vault, idx, log=logs.append)
    assert calls == ["all-MiniLM-L6-v2"]          # remembered: no second attempt for the same weights


def test_concurrent_searches_each_run_on_one_thread_from_start_to_end(monkeypatch):
    """FAISS's thread count may be one value for the whole process (modelled here): searches from several
    request threads at once must each run on one thread throughout; none may reset it under another."""
    import threading
    import time

    import faiss

    index, _ = dense.build(clustered(500), dense.FLAT)
    shared = {"threads": 8}
    seen: list[tuple[int, int]] = []
    monkeypatch.setattr(faiss, "omp_get_max_threads", lambda: shared["threads"])
    monkeypatch.setattr(faiss, "omp_set_num_threads", lambda n: shared.update(threads=n))
    monkeypatch.setattr(dense, "_searching", threading.local(), raising=False)   # as in a fresh process

    class Slow:                               # a search long enough for the requests to overlap
        ntotal = index.ntotal

        def search(self, q, k, params=None):
            at_start = shared["threads"]
            time.sleep(0.02)
            seen.append((at_start, shared["threads"]))
            return index.search(q, k) if params is None else index.search(q, k, params=params)

    query = clustered(1, seed=3)[0]
    expected = dense.search(index, query, 5)
    seen.clear()
    results = []
    workers = [threading.Thread(target=lambda: results.append(dense.search(Slow(), query, 5))) for _ in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    assert len(results) == 8 and all((ids == expected[0]).all() for ids, _ in results)
    assert seen == [(1, 1)] * 8


def test_vectors_are_kept_as_float16_and_a_float32_index_answers_the_same(vault, tmp_path, fake, monkeypatch):
    """The store and FAISS keep half-precision vectors; an index written with float32 ones (as before) is read and
    ranks the same."""
    import faiss

    import azchat.index.store as store

    for i in range(30):
        write(vault, f"extra/note{i}.md", f"# Note {i}\n\nTopic {i % 5} words alpha{i} beta{i % 3}.\n")
    half = tmp_path / "half"
    build_index(vault, half, embedder=fake)
    gen = load_generation(half)
    assert gen.vectors.dtype == np.float16
    assert isinstance(faiss.read_index(str(gen.folder / "dense.faiss")), faiss.IndexScalarQuantizer)
    monkeypatch.setattr(store, "VECTOR_DTYPE", np.float32)
    full = tmp_path / "full"
    build_index(vault, full, embedder=fake)
    assert load_generation(full).vectors.dtype == np.float32
    a, b = Retriever(half, embedder=fake), Retriever(full, embedder=fake)
    for q in ("alpha7 words", "topic 3", "beta1 note"):
        assert a.rank_files(q, 10, mode="dense") == b.rank_files(q, 10, mode="dense")
