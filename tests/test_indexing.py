"""Index builds: incremental updates, embedding cache, rebuild triggers, atomic writes, locking."""
import json
import os
from pathlib import Path

import numpy as np
import pytest

from azchat import build_index
from azchat.index.embedding import HashEmbedder
from azchat.errors import IndexLockedError, NotesNotFoundError
from azchat.index.store import build_lock, current_folder, load_generation

from conftest import write


def test_first_build_then_nothing_to_do(vault, tmp_path, fake):
    idx = tmp_path / "index"
    s1 = build_index(vault, idx, embedder=fake)
    assert (s1.notes, s1.added, s1.updated, s1.removed, s1.unchanged) == (4, 4, 0, 0, 0)
    assert s1.chunks == s1.embedded > 0
    gen = current_folder(idx)
    s2 = build_index(vault, idx, embedder=fake)
    assert (s2.added, s2.updated, s2.removed, s2.unchanged, s2.embedded) == (0, 0, 0, 4, 0)
    assert s2.chunks == s1.chunks
    assert current_folder(idx) == gen          # nothing changed: no new generation written


def test_edit_add_delete_reembed_only_what_changed(vault, tmp_path, fake):
    idx = tmp_path / "index"
    build_index(vault, idx, embedder=fake)
    net = vault / "networking.md"
    net.write_text(net.read_text().replace("Lower priority numbers win.", "Lower numbers are evaluated first."))
    write(vault, "new.md", "# New\n\nA brand new note about Bastion hosts.\n")
    (vault / "dns.md").unlink()
    fake.calls.clear()
    s = build_index(vault, idx, embedder=fake)
    assert (s.added, s.updated, s.removed, s.unchanged) == (1, 1, 1, 2)
    assert s.embedded == 2 and fake.calls == [2]   # the edited NSG section and the new note only
    gen = load_generation(idx)
    paths = {c.path for c in gen.chunks}
    assert "dns.md" not in paths and "new.md" in paths
    nsg = next(c for c in gen.chunks if c.heading.endswith("NSG"))
    assert "evaluated first" in nsg.text
    # vectors stay aligned with their chunks after the merge
    for row, chunk in enumerate(gen.chunks):
        np.testing.assert_allclose(gen.vectors[row], fake.embed([chunk.embed_text])[0], atol=1e-3)


def test_touch_without_change_counts_unchanged(vault, tmp_path, fake):
    idx = tmp_path / "index"
    build_index(vault, idx, embedder=fake)
    os.utime(vault / "dns.md", (1, 1))
    s = build_index(vault, idx, embedder=fake)
    assert (s.updated, s.unchanged, s.embedded) == (0, 4, 0)


def test_moving_a_note_reuses_vectors_when_its_text_is_unchanged(vault, tmp_path, fake):
    idx = tmp_path / "index"
    build_index(vault, idx, embedder=fake)
    (vault / "archive").mkdir()
    os.rename(vault / "networking.md", vault / "archive" / "networking.md")
    fake.calls.clear()
    s = build_index(vault, idx, embedder=fake)
    assert (s.added, s.removed) == (1, 1)
    assert s.embedded == 0 and fake.calls == []


def test_model_change_forces_full_rebuild_and_says_so(vault, tmp_path, fake):
    idx = tmp_path / "index"
    build_index(vault, idx, embedder=fake)
    messages = []
    other = HashEmbedder(dim=32, name="other-model")
    s = build_index(vault, idx, embedder=other, log=messages.append)
    assert s.embedded == s.chunks and s.added == 4
    assert "model changed" in s.full_rebuild_reason
    assert any("Rebuilding everything" in m for m in messages)
    assert load_generation(idx).manifest["embedder"] == "other-model"


def test_manifest_records_model_chunker_and_hashes(vault, tmp_path, fake):
    idx = tmp_path / "index"
    build_index(vault, idx, embedder=fake)
    m = json.loads((current_folder(idx) / "manifest.json").read_text())
    assert m["format"] == 3 and m["embedder"] == fake.name and m["dim"] == fake.dim
    assert m["chunker"]["max_tokens"] > 0 and m["dense"]["kind"] == "flat"
    assert "notes" not in m and m["notes_table"] == {"delta": False}     # the notes are in notes/ (notetable.py)
    assert len(load_generation(idx).manifest["notes"]["networking.md"]["hash"]) == 64


def test_crash_while_writing_keeps_the_last_good_index(vault, tmp_path, fake, monkeypatch):
    idx = tmp_path / "index"
    build_index(vault, idx, embedder=fake)
    before = current_folder(idx)
    write(vault, "new.md", "# New\n\nfresh text\n")
    import azchat.index.bm25_writer as bm25_writer
    import azchat.index.lexical as lexical

    def boom(self, folder, *args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(lexical.LexicalIndex, "save", boom)
    monkeypatch.setattr(bm25_writer.BM25Writer, "save", boom)      # (what writes a build's BM25 arrays)
    with pytest.raises(OSError):
        build_index(vault, idx, embedder=fake)
    assert current_folder(idx) == before
    assert not list(idx.glob(".tmp-*"))
    assert "new.md" not in {c.path for c in load_generation(idx).chunks}
    monkeypatch.undo()
    assert build_index(vault, idx, embedder=fake).added == 1


def test_missing_notes_folder_is_a_clear_error(tmp_path, fake):
    with pytest.raises(NotesNotFoundError, match="does not exist"):
        build_index(tmp_path / "nope", tmp_path / "index", embedder=fake)


def test_a_second_indexer_is_refused_while_one_runs(vault, tmp_path, fake):
    idx = tmp_path / "index"
    with build_lock(idx):
        with pytest.raises(IndexLockedError, match="Another azchat indexer"):
            build_index(vault, idx, embedder=fake)


def test_skipped_files_and_warnings_are_reported(vault, tmp_path, fake):
    write(vault, "bin.md", b"\x00\x00binary")
    write(vault, "broken.md", "---\ntitle: [x\n---\nstill indexed\n")
    s = build_index(vault, tmp_path / "index", embedder=fake)
    assert {"path": "bin.md", "reason": "not a text file (binary content)"} in s.skipped
    assert [w["path"] for w in s.warnings] == ["broken.md"]
    assert "broken.md" in {c.path for c in load_generation(tmp_path / "index").chunks}


def test_the_notes_folder_defaults_to_the_one_the_index_was_built_from(vault, tmp_path, fake, monkeypatch):
    from azchat.index import changes

    monkeypatch.delenv("AZCHAT_NOTES", raising=False)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")          # not the vault's parent: ./notes is not the vault here
    assert changes.notes_dir(None, tmp_path / "index") == Path("notes")          # no index yet
    build_index(vault, tmp_path / "index", embedder=fake)
    assert changes.notes_dir(None, tmp_path / "index").resolve() == vault.resolve()
    vault.rename(tmp_path / "moved")
    assert changes.notes_dir(None, tmp_path / "index") == Path("notes")          # gone (moved): the default
    (tmp_path / "moved").rename(vault)
    assert changes.notes_dir("elsewhere", tmp_path / "index") == Path("elsewhere")   # given wins
    monkeypatch.setenv("AZCHAT_NOTES", "from-env")
    assert changes.notes_dir(None, tmp_path / "index") == Path("from-env")            # then the environment
    (tmp_path / "index" / "CURRENT").write_text("garbage\n")
    monkeypatch.delenv("AZCHAT_NOTES")
    assert changes.notes_dir(None, tmp_path / "index") == Path("notes")           # unreadable: the default


def test_a_full_build_in_small_blocks_writes_the_same_index_from_a_spool(vault, tmp_path, monkeypatch):
    """A full build keeps its chunks on disk (spool.py) and embeds them a block at a time: with blocks of 2 it
    writes the same rows and vectors as in one block, and no embed call sees more than a block."""
    import azchat.index.building as building

    one, small = HashEmbedder(), HashEmbedder()
    build_index(vault, tmp_path / "one", embedder=one)
    monkeypatch.setattr(building, "EMBED_BLOCK", 2)
    spooled = []

    class Recorded(building.ChunkSpool):
        def __init__(self, folder):
            super().__init__(folder)
            spooled.append(self)

    monkeypatch.setattr(building, "ChunkSpool", Recorded)
    build_index(vault, tmp_path / "small", embedder=small)
    assert spooled and len(spooled[0]) == sum(one.calls) and max(small.calls) <= 2 and len(one.calls) == 1
    a, b = load_generation(tmp_path / "one"), load_generation(tmp_path / "small")
    assert [c.to_dict() for c in a.chunks] == [c.to_dict() for c in b.chunks]
    assert np.array_equal(np.asarray(a.vectors), np.asarray(b.vectors))


def test_the_spool_gives_back_each_chunk_as_it_was_appended(tmp_path):
    from azchat.index.spool import ChunkSpool
    from azchat.types import Chunk

    spool = ChunkSpool(tmp_path)
    made = [Chunk(f"id{i}", f"n/ä {i}.md", "T", "H > ü", i + 1, i + 3, f"line\n  two\u2028 {i} \"q\"",
                  f"e{i}", f"s{i}", ["tag"], ["alias"]) for i in range(50)]
    spool.extend(made)
    assert len(spool) == 50 and spool[17] == made[17] and spool[0] == made[0] and list(spool) == made
    assert spool[17] == made[17]
    spool.append(made[3])                           # appended right after reading the middle: still at the end
    assert list(spool) == made + [made[3]] and spool.key(50) == (made[3].path, made[3].start_line, made[3].id)
    assert list(tmp_path.iterdir()) == []           # an unnamed temp file: nothing left in the folder
    spool.close()
