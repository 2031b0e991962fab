"""A vault with every kind of hostile or broken file: the build finishes, says what it skipped and why, and
every readable note stays searchable with exact line spans."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from azchat import build_index
from azchat.apps.cli import main
from azchat.index.embedding import HashEmbedder
from azchat.index.changes import is_stale
from azchat import Retriever
from azchat.index.store import load_generation

from conftest import assert_span, file_lines, write

BIG_SECTIONS = 3000            # ~3 MB note
LONG_LINE_WORDS = 62_000       # ~300 kB single line


def _big_note() -> str:
    out = ["# Big Note", ""]
    for i in range(BIG_SECTIONS):
        out += [f"## Section {i}", "",
                f"Paragraph {i} talks about storage account number {i} and its replication settings. " * 8,
                ""]
        if i == 2345:
            out += ["The needle word quuxbigmarker sits here in the big note.", ""]
    return "\n".join(out) + "\n"


def _long_line() -> str:
    words = [f"w{i % 997}" for i in range(LONG_LINE_WORDS)]
    words[LONG_LINE_WORDS - 10] = "quuxlonglinemarker"
    return "intro line\n" + " ".join(words) + "\nlast line\n"


# (relative path, unique marker that must be found in that note)
READABLE = {
    "bad yaml.md": "quuxbadyaml",
    "latin1.md": "quuxlatin",
    "bom.md": "quuxbom",
    "crlf.md": "quuxcrlf",
    "utf16.md": "quuxutf16",
    "big.md": "quuxbigmarker",
    "long line.md": "quuxlonglinemarker",
    "frontmatter only.md": "quuxfmonly",
    "x.md/inside.md": "quuxinside",
    "Notizen & Übersicht ä ö ü ß.md": "quuxumlaut",
    "headings.md": "quuxlevelsix",
    "xss.md": "quuxxss",
    "link-in.md": "quuxtarget",
    "target.md": "quuxtarget",
}


def build_hostile_vault(tmp_path: Path, big: bool = True) -> Path:
    root = tmp_path / "notes"
    write(root, "bad yaml.md", "---\ntitle: [unclosed\n  bad: : yaml\n---\n# Broken YAML\n\nBody quuxbadyaml stays.\n")
    write(root, "latin1.md", "# Größe\n\nDie Maße quuxlatin sind groß.\n".encode("latin-1"))
    write(root, "bom.md", "\ufeff# Mit BOM\n\nText quuxbom hier.\n".encode("utf-8"))
    write(root, "crlf.md", b"# CRLF\r\n\r\nfirst line\r\nsecond quuxcrlf line\r\n")
    write(root, "utf16.md", "# UTF-16\n\nwide quuxutf16 text\n".encode("utf-16"))
    if big:
        write(root, "big.md", _big_note())
        write(root, "long line.md", _long_line())
    write(root, "binary.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 40)
    write(root, "empty.md", b"")
    write(root, "frontmatter only.md", "---\ntitle: Only Frontmatter quuxfmonly\ntags: [meta]\n---\n")
    write(root, "x.md/inside.md", "# Inside a folder named x.md\n\nquuxinside text\n")
    os.symlink("loop-b.md", root / "loop-a.md")
    os.symlink("loop-a.md", root / "loop-b.md")
    os.symlink(".", root / "self-loop")
    write(tmp_path, "outside/secret.md", "# Secret\n\nquuxsecret must never be read\n")
    os.symlink(tmp_path / "outside" / "secret.md", root / "escape.md")
    os.symlink(tmp_path / "outside", root / "escape-dir")
    write(root, "target.md", "# Target\n\nlinked quuxtarget text\n")
    os.symlink("target.md", root / "link-in.md")
    write(root, ".obsidian/workspace.md", "# Hidden\n\nquuxhidden\n")
    write(root, ".trash/old.md", "quuxhidden\n")
    write(root, ".hidden.md", "quuxhidden\n")
    write(root, "Notizen & Übersicht ä ö ü ß.md", "# Umlaute\n\nSchöne quuxumlaut Grüße.\n")
    write(root, "headings.md", "\n".join(
        [f"{'#' * n} Level {n}\n\nText at level {n}." for n in range(1, 7)]) + " quuxlevelsix\n")
    write(root, "xss.md", "# Hostile HTML\n\n<script>alert('x')</script> quuxxss\n\n"
                          "<img src=x onerror=alert(1)>\n\n[click me](javascript:alert(document.cookie))\n")
    bad = os.fsencode(str(root)) + b"/bad \xff name.md"
    with open(bad, "wb") as fh:
        fh.write(b"# Undecodable name\n\nquuxbadname\n")
    os.mkfifo(root / "pipe.md")
    os.symlink(".obsidian/workspace.md", root / "peek.md")         # a link to a hidden file inside the vault
    os.symlink(".obsidian", root / "peek-dir")
    return root


def _marker_chunks(gen, marker: str):
    return [c for c in gen.chunks if marker in c.text]


def check_searchable(notes: Path, index: Path, embedder, big: bool = True) -> None:
    gen = load_generation(index)
    retriever = Retriever(index, embedder=embedder)
    for rel, marker in READABLE.items():
        if not big and rel in ("big.md", "long line.md"):
            continue
        found = [c for c in _marker_chunks(gen, marker) if c.path == rel]
        assert found, f"{marker} of {rel} is not in the index"
        for c in found:
            assert_span(notes, rel, c.start_line, c.end_line, marker)
        hits = retriever.search(marker, k=10)
        # search shows a passage copied into several files once (here: a symlink and its target)
        same = {c.text.strip() for c in found}
        assert rel in {h.path for h in hits} or any(h.text.strip() in same for h in hits), \
            (marker, [h.path for h in hits])
        assert rel in retriever.rank_files(marker, 10)
    texts = "\n".join(c.text for c in gen.chunks)
    assert "quuxsecret" not in texts and "quuxhidden" not in texts and "quuxbadname" not in texts


def skipped_reasons(skipped: list[dict]) -> dict[str, str]:
    return {s["path"]: s["reason"] for s in skipped}


def test_hostile_vault_builds_and_stays_searchable(tmp_path, monkeypatch):
    notes = build_hostile_vault(tmp_path)
    assert 1_000_000 < (notes / "big.md").stat().st_size < 5_000_000
    assert (notes / "long line.md").stat().st_size > 300_000 and len(file_lines(notes, "long line.md")) == 3
    fake = HashEmbedder(dim=1024)   # wide, so hashed words rarely collide and search behaves
    stats = build_index(notes, tmp_path / "index", embedder=fake)
    reasons = skipped_reasons(stats.skipped)
    assert reasons["binary.md"] == "not a text file (binary content)"
    assert reasons["loop-a.md"] == reasons["loop-b.md"] == "broken or looping symlink"
    assert reasons["escape.md"] == "symlink points outside the notes folder"
    assert reasons["bad \ufffd name.md"] == "the file name is not valid UTF-8; rename it"
    assert not any(p.startswith((".obsidian", ".trash", ".hidden")) for p in reasons)
    assert reasons["peek.md"] == "symlink points to a hidden file"
    assert "pipe.md" not in reasons     # discovery passes over what is not a file; read time: see the swap test
    assert {w["path"] for w in stats.warnings} >= {"bad yaml.md", "latin1.md"}
    gen = load_generation(tmp_path / "index")
    indexed = set(gen.manifest["notes"])
    assert indexed >= set(READABLE) | {"empty.md"}
    assert not indexed & {"binary.md", "loop-a.md", "loop-b.md", "escape.md", "pipe.md", "peek.md"}
    assert not any(p.startswith("peek-dir") for p in indexed)
    check_searchable(notes, tmp_path / "index", fake)

    # exact spans for the special ones
    crlf = _marker_chunks(gen, "quuxcrlf")[0]
    assert (crlf.start_line, crlf.end_line) == (1, 4)
    long_pieces = [c for c in gen.chunks if c.path == "long line.md" and c.start_line == 2]
    assert len(long_pieces) > 10 and all(c.end_line == 2 for c in long_pieces)
    assert "".join(file_lines(notes, "long line.md")[1]).count("quuxlonglinemarker") == 1
    big_chunks = _marker_chunks(gen, "quuxbigmarker")
    lines = file_lines(notes, "big.md")
    heading_line = lines.index("## Section 2345") + 1
    needle_line = lines.index("The needle word quuxbigmarker sits here in the big note.") + 1
    assert len(big_chunks) == 1
    big = big_chunks[0]
    assert big.heading == "Big Note > Section 2345" and big.start_line == heading_line
    assert big.start_line < needle_line <= big.end_line < lines.index("## Section 2346") + 1
    assert big.text.strip() == "\n".join(lines[big.start_line - 1:big.end_line]).strip()
    six = _marker_chunks(gen, "Text at level 6")[0]
    assert six.heading == "Level 1 > Level 2 > Level 3 > Level 4 > Level 5 > Level 6"
    xss = [c for c in gen.chunks if c.path == "xss.md"]
    joined = "\n".join(c.text for c in xss)
    assert "<script>alert('x')</script>" in joined and "onerror=alert(1)" in joined
    assert "javascript:alert(document.cookie)" in joined      # stored verbatim, as text

    # skipped files are remembered by stat: the index is not stale, a second build re-reads nothing
    assert not is_stale(notes, tmp_path / "index")
    monkeypatch.setattr("azchat.index.building.read_note", None)      # any read would fail
    again = build_index(notes, tmp_path / "index", embedder=fake)
    monkeypatch.undo()
    assert (again.added, again.updated, again.removed, again.embedded) == (0, 0, 0, 0)
    assert skipped_reasons(again.skipped) == reasons


def test_index_json_on_the_hostile_vault_exits_0(tmp_path, capsys, monkeypatch):
    """The CLI end to end (fake embedder in place of the model so the 3 MB note stays fast)."""
    notes = build_hostile_vault(tmp_path)
    assert 1_000_000 < (notes / "big.md").stat().st_size < 5_000_000
    assert (notes / "long line.md").stat().st_size > 300_000 and len(file_lines(notes, "long line.md")) == 3
    fake = HashEmbedder(dim=1024)   # wide, so hashed words rarely collide and search behaves
    monkeypatch.setattr("azchat.index.embedding.load_embedder", lambda model=None, index_dir=None: fake)
    code = main(["index", "--notes", str(notes), "--index", str(tmp_path / "index"), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    out = json.loads(captured.out)
    reasons = skipped_reasons(out["skipped"])
    assert {"binary.md", "loop-a.md", "loop-b.md", "escape.md", "bad \ufffd name.md"} <= set(reasons)
    assert all(reasons.values())
    code = main(["search", "quuxumlaut", "--notes", str(notes), "--index", str(tmp_path / "index"), "--json"])
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert code == 0 and hits[0]["path"] == "Notizen & Übersicht ä ö ü ß.md"
    assert_span(notes, hits[0]["path"], hits[0]["start_line"], hits[0]["end_line"], "quuxumlaut")


@pytest.mark.slow
def test_hostile_vault_with_the_real_model(tmp_path, capsys):
    notes = build_hostile_vault(tmp_path, big=False)
    code = main(["index", "--notes", str(notes), "--index", str(tmp_path / "index"), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    out = json.loads(captured.out)
    assert skipped_reasons(out["skipped"])["escape.md"] == "symlink points outside the notes folder"
    from azchat.index.embedding import load_embedder

    check_searchable(notes, tmp_path / "index", load_embedder(), big=False)


def test_a_note_vanishing_or_changing_during_the_build(tmp_path, monkeypatch):
    notes = tmp_path / "notes"
    write(notes, "a.md", "# A\n\nfirst quuxa\n")
    write(notes, "b.md", "# B\n\nwill vanish quuxb\n")
    write(notes, "c.md", "# C\n\nold text quuxold\n")
    import azchat.index.building as indexing

    real_read = indexing.read_note

    def racing_read(path, root, data=None):
        if path.name == "a.md":
            (notes / "b.md").unlink()                       # deleted after discovery
        if path.name == "c.md":
            (notes / "c.md").write_text("# C\n\nnew text quuxnew and more\n")   # changed after its stat
        return real_read(path, root, data)

    monkeypatch.setattr(indexing, "read_note", racing_read)
    fake = HashEmbedder()
    stats = build_index(notes, tmp_path / "index", embedder=fake)
    assert {"path": "b.md", "reason": "vanished while indexing"} in stats.skipped
    assert stats.notes == 2
    gen = load_generation(tmp_path / "index")
    c = _marker_chunks(gen, "quuxnew")[0]
    assert_span(notes, "c.md", c.start_line, c.end_line, "quuxnew")
    assert not _marker_chunks(gen, "quuxold")
    monkeypatch.undo()
    # the next build sees the changed stat, re-reads c.md, and finds the same text: nothing re-embedded
    again = build_index(notes, tmp_path / "index", embedder=fake)
    assert (again.added, again.updated, again.removed, again.embedded) == (0, 0, 0, 0)
    assert again.notes == 2 and not again.skipped


def _swap_before_read(monkeypatch, name: str, make) -> None:
    """After discovery, just before the indexer reads the note called `name`: delete it and make(path) a
    different file in its place."""
    import azchat.index.building as indexing

    real_read = indexing.read_note

    def swapping_read(path, root, data=None):
        if path.name == name:
            path.unlink()
            make(path)
        return real_read(path, root, data)

    monkeypatch.setattr(indexing, "read_note", swapping_read)


def test_a_note_replaced_by_a_link_out_of_the_vault_after_discovery_is_not_read(tmp_path, monkeypatch):
    notes = tmp_path / "notes"
    write(notes, "a.md", "# A\n\nquuxa\n")
    write(notes, "b.md", "# B\n\nquuxb\n")
    write(tmp_path, "secret.md", "quuxsecret\n")
    _swap_before_read(monkeypatch, "b.md", lambda path: os.symlink(tmp_path / "secret.md", path))
    stats = build_index(notes, tmp_path / "index", embedder=HashEmbedder())
    assert {"path": "b.md", "reason": "symlink points outside the notes folder"} in stats.skipped
    assert not _marker_chunks(load_generation(tmp_path / "index"), "quuxsecret")


def test_a_note_swapped_for_a_fifo_after_discovery_is_skipped_without_waiting(tmp_path, monkeypatch):
    """Discovery saw a regular file; at read time it is a FIFO with no writer: the read-time check in
    notes.read_regular refuses it instead of blocking the build."""
    import threading

    notes = tmp_path / "notes"
    write(notes, "a.md", "# A\n\nquuxa\n")
    write(notes, "b.md", "# B\n\nquuxb\n")
    _swap_before_read(monkeypatch, "b.md", os.mkfifo)
    done = []
    builder = threading.Thread(target=lambda: done.append(build_index(notes, tmp_path / "index",
                                                                      embedder=HashEmbedder())), daemon=True)
    builder.start()
    builder.join(60)
    if builder.is_alive():
        with open(notes / "b.md", "w"):          # unblock the hung reader before failing
            pass
        pytest.fail("the build blocked on a FIFO")
    stats = done[0]
    assert {"path": "b.md", "reason": "not a regular file"} in stats.skipped
    assert set(load_generation(tmp_path / "index").manifest["notes"]) == {"a.md"}


def test_touched_and_newly_skipped_files_leave_the_index_fresh(tmp_path):
    notes = tmp_path / "notes"
    write(notes, "a.md", "# A\n\nquuxa\n")
    fake = HashEmbedder()
    build_index(notes, tmp_path / "index", embedder=fake)
    os.utime(notes / "a.md", (1, 1))
    write(notes, "bin.md", b"\x00\x01binary")
    assert is_stale(notes, tmp_path / "index")
    stats = build_index(notes, tmp_path / "index", embedder=fake)
    assert (stats.updated, stats.unchanged, stats.embedded) == (0, 1, 0)
    assert not is_stale(notes, tmp_path / "index")
    write(notes, "bin.md", "now it is text quuxnowtext\n")        # a skipped file that becomes readable
    assert is_stale(notes, tmp_path / "index")
    stats = build_index(notes, tmp_path / "index", embedder=fake)
    assert stats.added == 1 and not stats.skipped
