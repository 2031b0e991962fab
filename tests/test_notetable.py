"""The notes table (notetable.py): the notes of an index in their own memory-mapped columns, a segment writing
only its changed notes, format-2 indexes (notes in manifest.json) still read and updated, and the fast scan
of the notes folder giving what find_notes gives."""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest

from azchat import build_index
from azchat.index.reuse import _find_keys
from azchat.index.changes import note_changes
from azchat.notes.reading import find_notes, relative_path
from azchat.index.notetable import NoteTable, scan_notes
from azchat import Retriever
from azchat.index.store import current_folder, load_generation, read_manifest

from conftest import write
from test_hostile_vault import build_hostile_vault


def _notes(index) -> dict:
    return dict(load_generation(index).manifest["notes"].items())


def _more_notes(vault):
    for i in range(6):
        write(vault, f"topics/t{i}.md", f"---\ntags: [topic{i % 2}]\n---\n# Topic {i}\n\n## Alpha\n\n"
                                        f"Alpha part {i} about routing tables and gateways.\n\n## Beta\n\n"
                                        f"Beta part {i} about storage tiers and lifecycle rules.\n")


def _without_stat(notes: dict) -> dict:
    return {k: {f: v for f, v in m.items() if f not in ("mtime_ns", "size")} for k, m in notes.items()}


def test_segments_write_only_their_changed_notes_and_read_as_every_note(vault, tmp_path, fake, monkeypatch):
    monkeypatch.setenv("AZCHAT_SEGMENT_FROM", "0")
    _more_notes(vault)
    write(vault, "warned.md", "---\ntitle: [unclosed\n---\n# Warned\n\nA note whose front matter is broken.\n")
    index = tmp_path / "index"
    build_index(vault, index, embedder=fake)
    base = current_folder(index)
    base_notes = _notes(index)
    assert "notes" not in json.loads((base / "manifest.json").read_text())      # not in the JSON any more
    assert len(base_notes) == len(find_notes(vault)[0]) and base_notes["warned.md"]["warnings"]

    # first update: one edited, one added, one removed
    write(vault, "topics/t1.md", "# Topic 1\n\nZebrafinch routing rewritten.\n")
    write(vault, "topics/new.md", "# New\n\nBastion hosts give browser RDP.\n")
    (vault / "topics" / "t4.md").unlink()
    stats = build_index(vault, index, embedder=fake)
    assert any(w["path"] == "warned.md" for w in stats.warnings)      # an unchanged note's warning still said
    seg = current_folder(index)
    assert json.loads((seg / "manifest.json").read_text())["notes_table"] == {"delta": True}
    own = NoteTable(seg / "notes")
    assert sorted(own.part.names()) == ["topics/new.md", "topics/t1.md"]       # only what changed
    assert own.removed() == {"topics/t4.md"}

    # second update (the segment is rewritten): another edit, the added note removed again, t4 back
    write(vault, "topics/t2.md", "# Topic 2\n\nSecond edit.\n")
    (vault / "topics" / "new.md").unlink()
    write(vault, "topics/t4.md", "# Topic 4\n\nBack again.\n")
    build_index(vault, index, embedder=fake)
    seg2 = current_folder(index)
    assert json.loads((seg2 / "manifest.json").read_text())["base"]["name"] == base.name
    own = NoteTable(seg2 / "notes")
    assert sorted(own.part.names()) == ["topics/t1.md", "topics/t2.md", "topics/t4.md"]
    assert own.removed() == set()

    full = tmp_path / "full"
    build_index(vault, full, embedder=fake)
    got, want = _notes(index), _notes(full)
    assert list(got) == sorted(want) and _without_stat(got) == _without_stat(want)
    m = read_manifest(index)
    assert len(m["notes"]) == len(want) and "topics/new.md" not in m["notes"] and "topics/t4.md" in m["notes"]
    assert note_changes(vault, index) == {"added": [], "changed": [], "removed": []}
    write(vault, "topics/t3.md", "# Topic 3\n\nTouched.\n")
    (vault / "topics" / "t5.md").unlink()
    assert note_changes(vault, index) == {"added": [], "changed": ["topics/t3.md"], "removed": ["topics/t5.md"]}


def _as_format2(index):
    """Rewrite the live generation as format 2 wrote it: every note in manifest.json, no notes/ folder."""
    folder = current_folder(index)
    gen = load_generation(index)
    notes = dict(gen.manifest["notes"].items())
    m = json.loads((folder / "manifest.json").read_text())
    m.update(format=2, notes=notes)
    del m["notes_table"]
    for key in ("files", "sha256"):
        m[key] = {k: v for k, v in m[key].items() if not k.startswith("notes/")}
    for f in (folder / "notes").iterdir():
        f.unlink()
    (folder / "notes").rmdir()
    raw = json.dumps(m).encode()
    (folder / "manifest.json").write_bytes(raw)
    (index / "CURRENT").write_text(f"{folder.name}\nsha256 {hashlib.sha256(raw).hexdigest()}\n")
    return notes


@pytest.mark.parametrize("segments", [False, True])
def test_an_index_of_format_2_is_read_and_updated_into_a_table(vault, tmp_path, fake, monkeypatch, segments):
    if segments:
        monkeypatch.setenv("AZCHAT_SEGMENT_FROM", "0")
    index = tmp_path / "index"
    build_index(vault, index, embedder=fake)
    notes = _as_format2(index)
    assert read_manifest(index)["format"] == 2
    assert Retriever(index, embedder=fake).search("peering", k=1)[0].path == "networking.md"
    assert note_changes(vault, index) == {"added": [], "changed": [], "removed": []}
    assert build_index(vault, index, embedder=fake).embedded == 0          # nothing to do
    write(vault, "new.md", "# New\n\nBastion hosts give browser RDP.\n")
    stats = build_index(vault, index, embedder=fake)
    assert (stats.added, stats.updated, stats.embedded) == (1, 0, 1)
    m = json.loads((current_folder(index) / "manifest.json").read_text())
    assert m["format"] == 3 and m["notes_table"] == {"delta": False}      # a full table (the base has none)
    assert bool(m.get("base")) == segments
    got = _notes(index)
    assert set(got) == set(notes) | {"new.md"} and all(got[k] == v for k, v in notes.items())
    assert Retriever(index, embedder=fake).search("bastion browser", k=1)[0].path == "new.md"


def test_a_damaged_notes_table_is_a_clear_error(vault, tmp_path, fake):
    from azchat.errors import IndexCorruptError

    index = tmp_path / "index"
    build_index(vault, index, embedder=fake)
    stat = current_folder(index) / "notes" / "stat.npy"
    data = bytearray(stat.read_bytes())
    data[-3] ^= 0x01                                   # one note's flags: no structure check sees it
    stat.write_bytes(bytes(data))
    with pytest.raises(IndexCorruptError, match="azchat index --full"):
        note_changes(vault, index)                     # the light path (no load_generation) checks too
    assert "unreadable" in build_index(vault, index, embedder=fake).full_rebuild_reason


def test_scan_notes_finds_what_find_notes_finds(tmp_path):
    root = build_hostile_vault(tmp_path, big=False)
    write(root, "sub/deeper/a.md", "# A\n")
    write(root, "sub/b.markdown", "# B\n")
    write(root, "sub/.hidden/c.md", "# C\n")
    write(root, "sub/notes.txt", "not a note\n")
    paths, skipped = find_notes(root)
    s_paths, rels, stats, s_skipped = scan_notes(root)
    assert [str(p) for p in paths] == s_paths
    assert rels == [relative_path(p, root) for p in paths]
    assert stats == [(p.stat().st_mtime_ns, p.stat().st_size) for p in paths]
    assert [(s.path, s.reason) for s in skipped] == [(s.path, s.reason) for s in s_skipped]
    assert "sub/deeper/a.md" in rels and not any(".hidden" in r or "escape" in r for r in rels)


def test_find_keys_for_a_few_keys_matches_the_sorted_search():
    rng = np.random.default_rng(3)
    raw = [rng.bytes(20) for _ in range(5000)]
    raw[10] = raw[10][:19] + b"\0"                    # a key ending in a zero byte (numpy strips those)
    raw[20] = raw[10]                                 # a duplicate: the first row is found
    raw[30] = raw[31][:8] + rng.bytes(12)             # same first 8 bytes as another key
    keys = np.asarray(raw, dtype="S20")
    want = [raw[10], raw[31], raw[30], raw[4999], rng.bytes(20), raw[0]]
    got = _find_keys(keys, want)
    assert got.tolist() == [10, 31, 30, 4999, -1, 0]
    some = want + [rng.bytes(20) for _ in range(20)] + [raw[7]]          # 9 to 256 keys: np.isin
    assert _find_keys(keys, some).tolist() == got.tolist() + [-1] * 20 + [7]
    many = want + [rng.bytes(20) for _ in range(300)]                     # the sorted path
    assert _find_keys(keys, many)[:6].tolist() == got.tolist()
