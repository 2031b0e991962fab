"""A full build streams (index/streaming.py): its chunks, vectors and BM25 postings go to unnamed temp files
beside the index and are written into the new generation a block at a time. What it writes is what the
definitions say (rows sorted by key, each row's vector its embedding, bm25s's scores, dense.build's flat index)
and a crash at any point of it keeps the last good index and leaves nothing behind."""
from __future__ import annotations

import numpy as np
import pytest

from azchat import build_index
from azchat.index import bm25_writer, building, dense, spool, store
from azchat.index.embedding import HashEmbedder
from azchat.index.lexical import LexicalIndex
from azchat.index.store import current_folder, load_generation
from azchat.types import Chunk

import crashes
from conftest import write


@pytest.fixture
def small_blocks(monkeypatch):
    """Every streamed part in pieces of a few rows: embedding blocks, BM25 runs and merge ranges, vector
    blocks read back."""
    monkeypatch.setattr(building, "EMBED_BLOCK", 2)
    monkeypatch.setattr(bm25_writer.BM25Writer, "RUN", 7)
    monkeypatch.setattr(bm25_writer.BM25Writer, "BLOCK", 5)
    monkeypatch.setattr(dense, "BLOCK", 3)


def _more_notes(vault):
    """Notes whose scan order (a folder's files before its subfolders) is not the sorted order of paths."""
    for i in range(6):
        write(vault, f"zz/{i}.md", f"# Z {i}\n\nstorage account key rotation {i}\n\n## More\n\npeering {i}\n")
    write(vault, "a.md", "# A\n\nvirtual network peering and DNS zones\n")


def test_a_streamed_full_build_writes_what_the_definitions_say(vault, tmp_path, small_blocks, monkeypatch):
    _more_notes(vault)
    made = []
    real = spool.ChunkSpool.order

    def order(self):
        made.append(real(self))
        return made[-1]

    monkeypatch.setattr(spool.ChunkSpool, "order", order)
    runs, flush = [], bm25_writer.BM25Writer._flush
    monkeypatch.setattr(bm25_writer.BM25Writer, "_flush", lambda self: runs.append(flush(self)))
    flat, write_flat = [], dense.write_flat
    monkeypatch.setattr(dense, "write_flat", lambda v, p: flat.append(write_flat(v, p)) or flat[-1])
    build_index(vault, tmp_path / "index", embedder=HashEmbedder(), full=True)
    assert len(runs) > 10                                               # BM25 went to disk in runs
    assert flat == [True]                                               # the flat file streamed, no fallback
    assert not np.array_equal(made[0], np.arange(len(made[0])))      # rows were put in another order
    gen = load_generation(tmp_path / "index")
    chunks = list(gen.chunks)
    assert [(c.path, c.start_line, c.id) for c in chunks] == sorted((c.path, c.start_line, c.id) for c in chunks)
    assert len(chunks) > 20 and len(set(c.path for c in chunks)) == 11
    embedded = HashEmbedder().embed([c.embed_text for c in chunks])
    vectors = np.asarray(gen.vectors)
    assert vectors.dtype == store.VECTOR_DTYPE and np.array_equal(vectors, embedded.astype(store.VECTOR_DTYPE))
    ref = LexicalIndex.build([c.search_text for c in chunks])          # bm25s, "lucene"
    got = LexicalIndex.load(gen.folder / "bm25", len(chunks))
    for query in ["storage account key", "peering", "DNS Zonen", "virtual network", "nothing"]:
        np.testing.assert_allclose(got.scores(query), ref.scores(query), rtol=1e-6, atol=0)
    import faiss

    flat, params = dense.build(embedded, dense.FLAT)                  # the index built in memory
    assert gen.manifest["dense"] == params
    assert (gen.folder / "dense.faiss").read_bytes() == faiss.serialize_index(flat).tobytes()


def test_the_spool_sorts_its_rows_by_key_ties_on_a_line_by_id(tmp_path):
    s = spool.ChunkSpool(tmp_path)
    rng = np.random.default_rng(3)
    made = [Chunk(f"{rng.integers(0, 99):02x}{i}", f"n/{rng.integers(0, 4)}.md", "T", "H", int(rng.integers(1, 4)),
                  9, "t", "e", "s") for i in range(80)]
    made += [Chunk("b", "é.md", "T", "H", 1, 2, "t", "e", "s"), Chunk("a", "é.md", "T", "H", 1, 2, "t", "e", "s"),
             Chunk("c", "z.md", "T", "H", 1, 2, "t", "e", "s")]
    s.extend(made)
    want = sorted(range(len(made)), key=lambda i: (made[i].path, made[i].start_line, made[i].id))
    assert s.order().tolist() == want
    assert s.key(81) == ("é.md", 1, "a")
    s.close()
    empty = spool.ChunkSpool(tmp_path)
    assert empty.order().tolist() == []
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("crash", crashes.ALL)
def test_a_full_build_that_fails_midway_keeps_the_last_index_and_leaves_nothing(vault, tmp_path, crash,
                                                                                small_blocks, monkeypatch):
    idx = tmp_path / "index"
    fake = HashEmbedder()
    build_index(vault, idx, embedder=fake)
    before = current_folder(idx)
    listing = sorted(p.name for p in idx.iterdir())
    _more_notes(vault)
    crash(monkeypatch)
    with pytest.raises(Exception, match="disk full"):
        build_index(vault, idx, embedder=fake, full=True)
    assert current_folder(idx) == before and sorted(p.name for p in idx.iterdir()) == listing
    assert {c.path for c in load_generation(idx).chunks} == {"networking.md", "storage/storage.md",
                                                            "ml/machine learning.md", "dns.md"}
    assert crashes.stray_open_files(idx) == []                        # the temp files are closed
    monkeypatch.undo()
    assert build_index(vault, idx, embedder=fake, full=True).notes == 11


@pytest.mark.parametrize("block", [3, 64, 8192])
def test_the_ivf_index_written_from_a_file_is_the_one_faiss_builds(tmp_path, monkeypatch, block):
    """ivf_writer.write_ivf (lists assigned a block at a time, nprobe tuned block by block, the file written list
    by list) writes the bytes of dense.build(vectors, IVF)'s index and records the same nlist, nprobe and recall,
    from a memory-mapped input, duplicate vectors included; faiss's own layout is used, not the fallback."""
    import faiss

    from azchat.index import ivf_writer

    monkeypatch.setattr(dense, "BLOCK", block)
    monkeypatch.setattr(ivf_writer, "GROUP", max(1, block // 2))
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(30, 32)).astype(np.float32)
    v = (centres[rng.integers(0, 30, 3000)] + 0.4 * rng.normal(size=(3000, 32))).astype(np.float32)
    v[[10, 500, 2999]] = v[7]
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    np.save(tmp_path / "v.npy", v)
    mapped = np.load(tmp_path / "v.npy", mmap_mode="r")
    index, params = dense.build(v, dense.IVF)
    written = ivf_writer.write_ivf(mapped, tmp_path / "ivf.faiss")
    assert written == params and params["nlist"] > 8 and params["nprobe"] < params["nlist"]
    assert (tmp_path / "ivf.faiss").read_bytes() == faiss.serialize_index(index).tobytes()
    held = spool.VectorFile(tmp_path, len(v), v.shape[1])          # the rows read with pread: the same file
    held.write(np.arange(len(v))[::-1], v[::-1])
    assert ivf_writer.write_ivf(held.array(), tmp_path / "ivf2.faiss", gather=held.gather) == params
    assert (tmp_path / "ivf2.faiss").read_bytes() == faiss.serialize_index(index).tobytes()
    held.close()


def test_the_vector_file_gathers_scattered_rows_as_indexing_does(tmp_path):
    """VectorFile.gather(rows) == the rows indexed from its memory map: any order, runs, repeats, the last row."""
    rng = np.random.default_rng(9)
    v = rng.normal(size=(500, 7)).astype(np.float32)
    f = spool.VectorFile(tmp_path, 500, 7)
    f.write(np.arange(500), v)
    for rows in ([3], [499, 0, 1, 2, 3, 250], [10, 10, 9, 11], list(rng.choice(500, 200)), []):
        rows = np.asarray(rows, dtype=np.int64)
        np.testing.assert_array_equal(f.gather(rows), np.asarray(f.array()[rows]).reshape(len(rows), 7))
    f.close()


def test_a_streamed_full_build_above_the_dense_threshold_writes_the_ivf_index(vault, tmp_path, small_blocks,
                                                                               monkeypatch):
    from azchat.index import ivf_writer

    for i in range(60):
        write(vault, f"many/{i:02d}.md", "".join(f"# N{i}\n\n## S{j}\n\nword{i % 9} topic{j} storage {i * j}\n\n"
                                                 for j in range(8)))
    monkeypatch.setenv("AZCHAT_ANN_THRESHOLD", "100")
    written = []
    real = ivf_writer.write_ivf
    gathered = []

    def recorded(v, p, gather=None):
        gathered.append(gather is not None)      # the lists' scattered rows are read with pread, not mapped
        written.append(real(v, p, gather=gather))
        return written[-1]
    monkeypatch.setattr("azchat.index.streaming.write_ivf", recorded)
    build_index(vault, tmp_path / "index", embedder=HashEmbedder(), full=True)
    gen = load_generation(tmp_path / "index")
    import faiss

    index, params = dense.build(HashEmbedder().embed([c.embed_text for c in gen.chunks]), dense.IVF)
    assert written == [params] and gen.manifest["dense"] == params and params["kind"] == dense.IVF and gathered == [True]
    assert (gen.folder / "dense.faiss").read_bytes() == faiss.serialize_index(index).tobytes()
