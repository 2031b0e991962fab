"""The merge of a segmented index into a new base streams (index/rewrite.py): the same update written in memory
and streamed gives the same generation, byte for byte (the manifest's built_at aside), and a failure midway
keeps the last index and leaves nothing behind."""
from __future__ import annotations

import json
import shutil

import pytest

from azchat import build_index
from azchat.index import bm25_writer, dense, rewrite
from azchat.index.store import current_folder, load_generation

import crashes
from conftest import write


@pytest.fixture
def merging(monkeypatch):
    """Every index large enough for segments, a segment merged past 3 rows, everything in pieces of a few rows
    (vector blocks, BM25 runs and merge ranges)."""
    monkeypatch.setenv("AZCHAT_SEGMENT_FROM", "0")
    monkeypatch.setenv("AZCHAT_SEGMENT_MAX_ROWS", "3")
    monkeypatch.setattr(bm25_writer.BM25Writer, "RUN", 7)
    monkeypatch.setattr(bm25_writer.BM25Writer, "BLOCK", 5)
    monkeypatch.setattr(dense, "BLOCK", 3)


def _notes(vault):
    for i in range(8):
        write(vault, f"topics/t{i}.md", f"# Topic {i}\n\n## Alpha\n\nAlpha part {i} about routing tables.\n\n"
                                        f"## Beta\n\nBeta part {i} about storage tiers and lifecycle rules.\n")
    # one long line: chunks of one note that start on the same line (their order is their ids')
    write(vault, "long.md", "# Long\n\n" + " ".join(f"word{i} peering" for i in range(300)) + "\n\nafter\n")
    write(vault, "a.md", "# A\n\nvirtual network peering and DNS zones\n")


def _segmented(vault, index, fake):
    """An index of a base and a segment (one note edited since the base)."""
    _notes(vault)
    build_index(vault, index, embedder=fake)
    write(vault, "topics/t0.md", "# Topic 0\n\nOne chunk now.\n")
    build_index(vault, index, embedder=fake)
    assert load_generation(index).base is not None


def _edit_past_the_limit(vault):
    write(vault, "topics/t2.md", "# Topic 2\n\nAlso one chunk now.\n")           # 4 base rows deleted > 3
    write(vault, "long2.md", "# Long\n\n" + " ".join(f"term{i} zone" for i in range(200)) + "\n")
    write(vault, "b.md", "# B\n\nbastion hosts\n\n## More\n\nbrowser RDP\n")
    (vault / "topics" / "t5.md").unlink()


def _files(folder):
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            if path.name == "manifest.json":
                manifest = json.loads(data)
                manifest.pop("built_at")
                data = json.dumps(manifest, indent=1).encode()
            out[path.relative_to(folder).as_posix()] = data
    return out


def _both_ways(vault, index, tmp_path, fake, monkeypatch):
    """The next update of the index written in memory and streamed (from two copies of the index)."""
    got = {}
    streamed = []
    real = rewrite._write_streamed
    monkeypatch.setattr(rewrite, "_write_streamed", lambda *a: streamed.append(a[1]) or real(*a))
    for way in (True, False):
        copy = tmp_path / f"copy-{way}"
        shutil.copytree(index, copy)
        monkeypatch.setattr(rewrite, "IN_MEMORY", way)
        build_index(vault, copy, embedder=fake)
        gen = load_generation(copy)
        assert gen.base is None                                    # everything rewritten, no segment
        got[way] = _files(gen.folder)
    monkeypatch.setattr(rewrite, "IN_MEMORY", None)
    assert len(streamed) == 1
    assert set(got[True]) == set(got[False]) and "dense.faiss" in got[True] and "vectors.npy" in got[True]
    for name in got[True]:
        assert got[True][name] == got[False][name], name
    return streamed[0]


def test_a_merge_streamed_writes_the_bytes_of_the_merge_in_memory(vault, tmp_path, fake, merging, monkeypatch):
    index = tmp_path / "index"
    _segmented(vault, index, fake)
    _edit_past_the_limit(vault)
    old = _both_ways(vault, index, tmp_path, fake, monkeypatch)
    assert old.base is not None                                    # the old generation was base + segment
    merged = load_generation(tmp_path / "copy-False")
    keys = [(c.path, c.start_line, c.id) for c in merged.chunks]
    assert keys == sorted(keys)
    ties = sum(a[:2] == b[:2] for a, b in zip(keys, keys[1:]))
    assert ties > 6                      # rows tied on path and line (old ones and fresh ones) were ordered
    assert merged.manifest["dense"]["kind"] == dense.FLAT


def test_a_rewrite_of_an_unsegmented_index_streamed_writes_the_same_bytes(vault, tmp_path, fake, merging,
                                                                          monkeypatch):
    """The old generation one table (not a view); the dense index IVF (above a lowered threshold)."""
    monkeypatch.setenv("AZCHAT_SEGMENT_FROM", "100000")             # no segments: every update rewrites
    for i in range(40):
        write(vault, f"many/{i:02d}.md", "".join(f"# N{i}\n\n## S{j}\n\nword{i % 9} topic{j} storage {i * j}\n\n"
                                                 for j in range(6)))
    _notes(vault)
    index = tmp_path / "index"
    build_index(vault, index, embedder=fake)
    _edit_past_the_limit(vault)
    monkeypatch.setenv("AZCHAT_ANN_THRESHOLD", "100")
    old = _both_ways(vault, index, tmp_path, fake, monkeypatch)
    assert old.base is None
    assert load_generation(tmp_path / "copy-False").manifest["dense"]["kind"] == dense.IVF


def test_a_small_index_is_updated_in_memory_a_large_one_streams(monkeypatch):
    monkeypatch.setenv("AZCHAT_SEGMENT_FROM", "10000")
    assert rewrite.in_memory(9_999) and not rewrite.in_memory(10_000)


@pytest.mark.parametrize("crash", crashes.ALL)
def test_a_merge_that_fails_midway_keeps_the_last_index_and_leaves_nothing(vault, tmp_path, fake, merging,
                                                                           monkeypatch, crash):
    index = tmp_path / "index"
    _segmented(vault, index, fake)
    before = current_folder(index)
    listing = sorted(p.name for p in index.iterdir())
    _edit_past_the_limit(vault)
    crash(monkeypatch)
    with pytest.raises(Exception, match="disk full"):
        build_index(vault, index, embedder=fake)
    assert current_folder(index) == before and sorted(p.name for p in index.iterdir()) == listing
    assert load_generation(index).base is not None and \
        "topics/t5.md" in {c.path for c in load_generation(index).chunks}
    assert crashes.stray_open_files(index) == []                        # the temp files are closed
    monkeypatch.undo()
    monkeypatch.setenv("AZCHAT_SEGMENT_FROM", "0")
    monkeypatch.setenv("AZCHAT_SEGMENT_MAX_ROWS", "3")
    build_index(vault, index, embedder=fake)
    assert load_generation(index).base is None and "b.md" in {c.path for c in load_generation(index).chunks}
