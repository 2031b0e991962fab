"""Segments: a small update is written beside the base (deleted rows + a small segment), read as one index,
merged into a new base when it grows; what it answers is what a full rebuild answers."""
from __future__ import annotations

import json

import numpy as np
import pytest

from azchat import build_index
from azchat import Retriever
from azchat.index.store import current_folder, load_generation

from conftest import write


def _rows(index):
    gen = load_generation(index)
    return sorted((c.path, c.start_line, c.text, tuple(np.round(np.asarray(gen.vectors[i], dtype=np.float32), 5))) for i, c in enumerate(gen.chunks))


@pytest.fixture
def segmented(monkeypatch):
    monkeypatch.setenv("AZCHAT_SEGMENT_FROM", "0")     # every index is large enough for segments


def _more_notes(vault):
    for i in range(6):
        write(vault, f"topics/t{i}.md", f"---\ntags: [topic{i % 2}]\n---\n# Topic {i}\n\n## Alpha\n\n"
                                        f"Alpha part {i} about routing tables and gateways.\n\n## Beta\n\n"
                                        f"Beta part {i} about storage tiers and lifecycle rules.\n")


def test_a_small_update_writes_a_segment_and_answers_as_a_full_rebuild(vault, tmp_path, fake, segmented):
    _more_notes(vault)
    index = tmp_path / "index"
    build_index(vault, index, embedder=fake)
    base = current_folder(index)
    write(vault, "topics/t1.md", "---\ntags: [topic1, edited]\n---\n# Topic 1\n\n## Alpha\n\n"
                                 "Zebrafinch routing rewritten.\n")
    write(vault, "topics/new.md", "# New\n\nBastion hosts give browser RDP to virtual machines.\n")
    (vault / "topics" / "t4.md").unlink()
    stats = build_index(vault, index, embedder=fake)
    assert (stats.added, stats.updated, stats.removed, stats.embedded) == (1, 1, 1, 2)
    live = current_folder(index)
    manifest = json.loads((live / "manifest.json").read_text())
    assert manifest["base"]["name"] == base.name and base.is_dir()
    assert manifest["segment_rows"] == 2                                 # only the changed notes' chunks
    assert not (live / "chunks" / "text.bin").read_bytes().count(b"storage tiers")
    deleted = np.load(live / "deleted.npy")
    assert len(deleted) == 4                                             # t1 and t4, two chunks each

    full = tmp_path / "full"
    build_index(vault, full, embedder=fake)
    assert _rows(index) == _rows(full)                                   # same live chunks, same vectors
    r, f = Retriever(index, embedder=fake), Retriever(full, embedder=fake)
    assert len(r.chunks) == len(f.chunks) == stats.chunks
    for q in ["zebrafinch routing", "bastion browser RDP", "storage tiers lifecycle", "peering", "gateways"]:
        assert [h.path for h in r.search(q, k=3)] == [h.path for h in f.search(q, k=3)], q
        assert [(h.path, h.start_line) for h in r.search(q, k=5, tags=["topic0"])] == \
               [(h.path, h.start_line) for h in f.search(q, k=5, tags=["topic0"])], q
    assert r.search("zebrafinch", k=3, folder="topics")[0].path == "topics/t1.md"
    assert r.tags() == f.tags() and "edited" in r.tags() and r.folders() == f.folders()
    assert not any(h.path == "topics/t4.md" for h in r.search("Beta part 4 storage", k=20))
    rows = r._gen.chunks.rows_of_path("topics/t1.md")                   # the edited note: its new rows only
    assert [r.chunks[int(i)].text for i in rows] == [c.text for c in f.chunks if c.path == "topics/t1.md"]
    assert r.opening(r.chunks[int(rows[0])]) == f.opening(next(c for c in f.chunks if c.path == "topics/t1.md"))
    assert r.ask("What gives browser RDP?").citations[0].path == "topics/new.md"


def test_a_growing_segment_is_merged_into_a_new_base(vault, tmp_path, fake, segmented, monkeypatch):
    monkeypatch.setenv("AZCHAT_SEGMENT_MAX_ROWS", "3")
    _more_notes(vault)
    index = tmp_path / "index"
    build_index(vault, index, embedder=fake)
    first = current_folder(index)
    write(vault, "topics/t0.md", "# Topic 0\n\nOne chunk now.\n")
    build_index(vault, index, embedder=fake)
    assert load_generation(index).manifest["base"]["name"] == first.name
    write(vault, "topics/t2.md", "# Topic 2\n\nAlso one chunk now.\n")    # deleted base rows: 4 > 3
    build_index(vault, index, embedder=fake)
    merged = load_generation(index)
    assert "base" not in merged.manifest and merged.base is None
    write(vault, "topics/t3.md", "# Topic 3\n\nAnd one more.\n")            # the next update: a new base
    build_index(vault, index, embedder=fake)
    assert load_generation(index).manifest["base"]["name"] == merged.folder.name
    assert not first.exists()                                            # no kept generation points at it
    full = tmp_path / "full"
    build_index(vault, full, embedder=fake)
    assert _rows(index) == _rows(full)


def test_a_segment_whose_base_is_gone_or_damaged_is_a_clear_error(vault, tmp_path, fake, segmented):
    from azchat.errors import IndexCorruptError

    index = tmp_path / "index"
    build_index(vault, index, embedder=fake)
    base = current_folder(index)
    write(vault, "new.md", "# New\n\nquuxnew words\n")
    build_index(vault, index, embedder=fake)
    manifest = base / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"dim"', '"dim" ', 1))   # its checksum no longer holds
    with pytest.raises(IndexCorruptError, match="azchat index"):
        Retriever(index, embedder=fake)
    stats = build_index(vault, index, embedder=fake)
    assert "unreadable" in stats.full_rebuild_reason
    assert Retriever(index, embedder=fake).search("quuxnew", k=1)[0].path == "new.md"

