"""Reading notes: discovery, encodings, frontmatter, titles, tags."""
import os

from azchat.notes.reading import Skipped, find_notes, read_note, split_lines

from conftest import write


def test_frontmatter_title_tags_aliases_and_dates(vault):
    note = read_note(vault / "networking.md", vault)
    assert note.title == "Networking Basics"
    assert note.tags == ["azure", "networking"]
    assert note.aliases == ["vnet notes"]
    assert note.metadata["created"] == "2024-07-06"
    assert note.body_start == 7            # line 8 (1-based) is the first body line
    assert note.lines[note.body_start - 1] == "---" and note.lines[note.body_start] == ""


def test_title_falls_back_to_h1_then_file_name(tmp_path):
    write(tmp_path, "a.md", "intro\n# The Heading\ntext\n")
    write(tmp_path, "plain name.markdown", "no heading here\n")
    assert read_note(tmp_path / "a.md", tmp_path).title == "The Heading"
    assert read_note(tmp_path / "plain name.markdown", tmp_path).title == "plain name"


def test_broken_frontmatter_is_a_warning_and_the_note_is_kept(tmp_path):
    write(tmp_path, "bad.md", "---\ntitle: [unclosed\n  : x\n---\nBody text stays.\n")
    note = read_note(tmp_path / "bad.md", tmp_path)
    assert not isinstance(note, Skipped)
    assert note.warnings and "frontmatter" in note.warnings[0]
    assert note.lines[note.body_start] == "Body text stays."
    assert note.title == "bad"


def test_crlf_bom_and_latin1_are_read(tmp_path):
    write(tmp_path, "crlf.md", b"a\r\nb\r\n\r\nc")
    write(tmp_path, "bom.md", "\ufeff# Überschrift\nText".encode("utf-8"))
    write(tmp_path, "latin.md", "Größe und Maße\n".encode("latin-1"))
    assert read_note(tmp_path / "crlf.md", tmp_path).lines == ["a", "b", "", "c"]
    bom = read_note(tmp_path / "bom.md", tmp_path)
    assert bom.title == "Überschrift"
    latin = read_note(tmp_path / "latin.md", tmp_path)
    assert latin.lines == ["Größe und Maße"] and latin.warnings


def test_inline_tags_join_frontmatter_tags(tmp_path):
    write(tmp_path, "t.md", "---\ntags: azure\n---\nText #networking/vnet and #Azure.\n\n```\n#notatag\n```\n")
    assert read_note(tmp_path / "t.md", tmp_path).tags == ["azure", "networking/vnet"]


def test_discovery_skips_hidden_binary_and_outside_links(tmp_path):
    root = tmp_path / "notes"
    write(root, "a.md", "x")
    write(root, "sub/b.mdx", "x")
    write(root, ".obsidian/c.md", "x")
    write(root, "img.png", b"\x89PNG")
    write(tmp_path, "outside.md", "secret")
    (root / "dir.md").mkdir()
    os.symlink(tmp_path / "outside.md", root / "link-out.md")
    os.symlink(root / "a.md", root / "link-in.md")
    os.symlink(root, root / "loop")
    paths, skipped = find_notes(root)
    rels = sorted(p.relative_to(root).as_posix() for p in paths)
    assert rels == ["a.md", "link-in.md", "sub/b.mdx"]
    assert [(s.path, s.reason) for s in skipped] == [("link-out.md", "symlink points outside the notes folder")]


def test_binary_file_named_md_is_skipped_with_reason(tmp_path):
    write(tmp_path, "bin.md", b"\x00\x01\x02binary")
    result = read_note(tmp_path / "bin.md", tmp_path)
    assert isinstance(result, Skipped) and "binary" in result.reason


def test_split_lines_counts_like_an_editor():
    assert split_lines("a\nb\n") == ["a", "b"]
    assert split_lines("a\r\nb\rc") == ["a", "b", "c"]
    assert split_lines("") == []
