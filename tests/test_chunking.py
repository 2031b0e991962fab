"""Chunks: heading paths, exact line spans, token limits, overlap."""
from azchat.notes.chunking import chunk_note
from azchat.index.embedding import HashEmbedder
from azchat.notes.reading import read_note

from conftest import assert_span, write


def chunks_of(root, rel, max_tokens=120):
    fake = HashEmbedder(max_tokens=max_tokens)
    return chunk_note(read_note(root / rel, root), fake.count_tokens, fake.max_tokens)


def test_heading_paths_and_spans_with_frontmatter(vault):
    chunks = chunks_of(vault, "networking.md")
    got = [(c.heading, c.start_line, c.end_line) for c in chunks]
    assert got == [
        ("Networking Basics", 9, 11),
        ("Networking Basics > Virtual Networks", 13, 15),
        ("Networking Basics > Virtual Networks > Peering", 17, 19),
        ("Networking Basics > NSG", 21, 27),
    ]
    for c in chunks:
        assert_span(vault, "networking.md", c.start_line, c.end_line, c.text)
    assert "Networking Basics > Virtual Networks > Peering" in chunks[2].embed_text
    assert "vnet notes" in chunks[2].search_text     # aliases are searchable


def test_crlf_note_spans(vault):
    chunks = chunks_of(vault, "storage/storage.md")
    assert [(c.heading, c.start_line, c.end_line) for c in chunks] == [("Redundancy", 6, 9), ("Tiers", 11, 13)]
    for c in chunks:
        assert "\r" not in c.text
        assert_span(vault, "storage/storage.md", c.start_line, c.end_line, c.text)


def test_mermaid_labels_wikilinks_and_callouts_are_embedded_as_text(vault):
    [chunk] = chunks_of(vault, "ml/machine learning.md")
    assert (chunk.start_line, chunk.end_line) == (1, 13)
    assert "ML Workspace: Centralized place to manage ML lifecycle" in chunk.embed_text
    assert "See the network note for connectivity. ml" in chunk.embed_text
    assert "Tip: Compute" in chunk.embed_text
    assert "```" not in chunk.embed_text


def test_long_section_is_split_with_overlap_and_within_budget(tmp_path):
    body = "\n".join(f"Sentence number {i} talks about storage accounts and blobs." for i in range(60))
    write(tmp_path, "long.md", f"# Long\n\n{body}\n")
    fake = HashEmbedder(max_tokens=60)
    chunks = chunks_of(tmp_path, "long.md", max_tokens=60)
    assert len(chunks) > 5
    for c in chunks:
        assert fake.count_tokens([c.embed_text])[0] <= 60
        assert_span(tmp_path, "long.md", c.start_line, c.end_line, c.text)
    covered = set()
    for a, b in zip(chunks, chunks[1:]):
        assert b.start_line <= a.end_line       # overlap: nothing falls between two chunks
        assert b.start_line > a.start_line
    for c in chunks:
        covered.update(range(c.start_line, c.end_line + 1))
    assert covered >= set(range(3, 63))


def test_a_single_huge_line_is_split_not_truncated(tmp_path):
    words = [f"word{i}" for i in range(3000)]
    write(tmp_path, "line.md", "# One line\n" + " ".join(words) + "\n")
    chunks = chunks_of(tmp_path, "line.md", max_tokens=100)
    assert len(chunks) > 30
    fake = HashEmbedder()
    seen = set()
    for c in chunks:
        assert (c.start_line, c.end_line) == (2, 2)
        assert fake.count_tokens([c.embed_text])[0] <= 100
        assert_span(tmp_path, "line.md", 2, 2, c.text)
        seen.update(c.text.split())
    assert seen == set(words)


def test_small_sections_stay_whole_and_empty_headings_vanish(tmp_path):
    write(tmp_path, "s.md", "# Top\n## Empty\n### Child\nOnly text.\n")
    chunks = chunks_of(tmp_path, "s.md")
    assert [(c.heading, c.start_line, c.end_line, c.text) for c in chunks] == [
        ("Top > Empty > Child", 3, 4, "### Child\nOnly text.")]


def test_headings_inside_code_fences_do_not_split(tmp_path):
    write(tmp_path, "c.md", "## Script\n```bash\n# comment\necho hi\n```\n")
    [chunk] = chunks_of(tmp_path, "c.md")
    assert chunk.heading == "Script" and (chunk.start_line, chunk.end_line) == (1, 5)


def test_frontmatter_only_note_keeps_its_title_searchable(tmp_path):
    write(tmp_path, "fm.md", "---\ntitle: Only Meta\ntags: [x]\n---\n")
    [chunk] = chunks_of(tmp_path, "fm.md")
    assert chunk.title == "Only Meta" and (chunk.start_line, chunk.end_line) == (1, 4)


def test_the_frontmatter_description_is_searchable_but_not_embedded(tmp_path):
    # a note's one-line summary names what the note is about, often in other words than its body
    write(tmp_path, "app.md", "---\ntitle: Create Electron Apps\ndescription: An app that runs on win, macos and "
          "Linux\n---\n\n## Setup\n\nInstall Electron Forge and run npm run make.\n")
    write(tmp_path, "tmpl.md", "---\ntitle: Template\ndescription: description\n---\n\nBody text.\n")
    write(tmp_path, "sum.md", "---\nsummary: Backups of the home server\n---\n\nBody text.\n")
    [chunk] = chunks_of(tmp_path, "app.md")
    meta = chunk.search_text.splitlines()[0]
    assert "runs on win, macos and Linux" in meta
    assert "macos" not in chunk.embed_text and "macos" not in chunk.text   # vectors stay as they were
    assert chunk.start_line == 6 and "Electron Forge" in chunk.text
    [tmpl] = chunks_of(tmp_path, "tmpl.md")        # a template placeholder is no summary
    assert "description" not in tmpl.search_text.splitlines()[0].lower()
    [summ] = chunks_of(tmp_path, "sum.md")
    assert "Backups of the home server" in summ.search_text.splitlines()[0]


def _export_line(target_bytes: int = 300_000) -> tuple[str, list[str]]:
    """One line of exported text (no newline): filler sentences with a distinct fact every few sentences."""
    parts, facts, k = [], [], 0
    while sum(len(p) + 1 for p in parts) < target_bytes:
        k += 1
        if k % 7 == 0:
            fact = f"The rotation code for vault {k} is quux{k} and it expires after {k % 90 + 1} days."
            facts.append(fact)
            parts.append(fact)
        else:
            parts.append(f"Record {k} lists storage account acct{k % 53} in region {k % 11} with {k % 5} replicas.")
    return " ".join(parts), facts


def test_a_300kb_line_is_windowed_on_its_own_line_number_with_every_sentence_whole(tmp_path):
    line, facts = _export_line()
    write(tmp_path, "export.md", "# Export\n\nExported from the asset tool.\n" + line)   # no final newline
    assert (tmp_path / "export.md").stat().st_size > 300_000
    chunks = [c for c in chunks_of(tmp_path, "export.md", max_tokens=120) if c.end_line >= 4]
    fake = HashEmbedder()
    assert len(chunks) > 100
    start, end = 0, 0
    for c in chunks:
        assert (c.start_line, c.end_line) == (4, 4)                  # the line's true number, on every window
        assert fake.count_tokens([c.embed_text])[0] <= 120
        at = line.find(c.text, start)
        assert at >= 0, "a window is not a piece of the line"
        assert at <= end + 1                                       # overlapping or adjacent: nothing skipped
        start, end = at, at + len(c.text)
    assert end == len(line)
    whole = [f for f in facts if not any(f in c.text for c in chunks)]
    assert whole == [], f"{len(whole)} of {len(facts)} facts are cut between windows"


def test_a_long_line_without_sentences_still_overlaps_by_a_quarter(tmp_path):
    words = [f"w{i % 997}" for i in range(20_000)]
    words[10_000:10_004] = ["alpha", "quuxmid", "beta", "gamma"]
    write(tmp_path, "blob.md", " ".join(words))
    chunks = chunks_of(tmp_path, "blob.md", max_tokens=100)
    assert all((c.start_line, c.end_line) == (1, 1) for c in chunks)
    assert any("alpha quuxmid beta gamma" in c.text for c in chunks)
    for a, b in zip(chunks, chunks[1:]):
        shared = set(a.text.split()[-20:]) & set(b.text.split()[:20])
        assert shared, "consecutive windows do not overlap"


def test_a_paragraph_on_one_line_gets_chunk_sized_pieces_not_export_windows(tmp_path):
    """A one-line paragraph a few chunks long (a SciFact abstract, a pasted paragraph) is cut like any long
    section, into pieces of about a chunk; only a line of many chunks gets the half-size export windows."""
    sentence = "Peering links carry traffic between the two networks over the backbone."
    line = " ".join([sentence] * 20)                      # about 3 chunks of 100 tokens
    write(tmp_path, "para.md", "# Para\n" + line + "\n")
    fake = HashEmbedder()
    assert 2 * 100 < fake.count_tokens([line])[0] < 8 * 100
    chunks = chunks_of(tmp_path, "para.md", max_tokens=100)
    assert all((c.start_line, c.end_line) == (2, 2) for c in chunks)
    assert 2 <= len(chunks) <= 4                           # half-size windows with a quarter overlap: 6+
    assert all(fake.count_tokens([c.text])[0] > 50 for c in chunks[:-1])
