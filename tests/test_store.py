"""The index on disk: the columnar chunk table, memory-mapped opening, filters from columns, older formats."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from azchat import build_index
from azchat.index.columns import ChunkColumns, ChunkList, write_columns
from azchat.errors import IndexCorruptError
from azchat import Retriever
from azchat.index.store import current_folder, load_generation
from azchat.types import Chunk

from conftest import write


def _chunk(i: int, path: str, tags=(), title="T") -> Chunk:
    text = f"Zeile {i}: Größe ✓ \"quoted\"\nsecond line {i}"
    return Chunk(id=f"{path}#{i}", path=path, title=title, heading=f"{title} > H{i}", start_line=i + 1,
                 end_line=i + 2, text=text, embed_text=f"{title}\n{text}", search_text=f"{title}\n{text}",
                 tags=list(tags), aliases=["alias"] if i % 2 else [])


def test_columns_give_back_every_field_of_every_chunk(tmp_path):
    chunks = [_chunk(i, p, tags, title) for i, (p, tags, title) in enumerate([
        ("a.md", ["x"], "A"), ("a.md", ["x"], "A"), ("sub/b.md", [], "B"), ("sub/deep/c.md", ["Y", "x"], "C"),
        ("z.md", [], ""), ("ä/ü.md", ["ü"], "Ü")])]
    chunks.append(Chunk(id="", path="empty.md", title="", heading="", start_line=1, end_line=1, text="",
                        embed_text="", search_text=""))
    assert write_columns(tmp_path / "chunks", iter(chunks)) == len(chunks)    # a generator is enough
    table = ChunkColumns(tmp_path / "chunks")
    assert len(table) == len(chunks) and list(table) == chunks and table[-1] == chunks[-1]
    assert table[1:3] == chunks[1:3]
    assert [table.text(i) for i in range(len(chunks))] == [c.text for c in chunks]
    assert [table.path(i) for i in range(len(chunks))] == [c.path for c in chunks]
    assert [table.title(i) for i in range(len(chunks))] == [c.title for c in chunks]
    assert table.rows_of_path("a.md").tolist() == [0, 1] and table.rows_of_path("nope.md").tolist() == []
    with pytest.raises(IndexError):
        table[len(chunks)]
    # filters from the path and meta tables agree with the same filter over Chunk objects
    listed = ChunkList(chunks)
    for tags, folder in [(["x"], None), (["#y"], None), (["X", "ü"], None), (None, "sub"), (None, "sub/deep"),
                         (["x"], "sub"), (None, "su"), (["none"], None), (None, "ä")]:
        want = [i for i, c in enumerate(chunks)
                if (not tags or {t.lower().lstrip("#") for t in tags} & {t.lower() for t in c.tags})
                and (not folder or (c.path + "/").startswith(folder.strip("/") + "/"))]
        assert table.rows_matching(tags, folder).tolist() == want, (tags, folder)
        assert listed.rows_matching(tags, folder).tolist() == want, (tags, folder)
    assert table.tags() == {"x", "Y", "ü"} and table.folders() == {"sub", "sub/deep", "ä"}


def test_an_index_opens_memory_mapped_and_answers_as_before(vault, tmp_path, fake):
    index = tmp_path / "index"
    build_index(vault, index, embedder=fake)
    gen = load_generation(index)
    assert isinstance(gen.chunks, ChunkColumns) and isinstance(gen.vectors, np.memmap)
    r = Retriever(index, embedder=fake)
    assert isinstance(r._lexical._bm25.scores["data"].base, np.memmap)          # a view of the mapping
    assert isinstance(gen.chunks._cols["text"]._off.base, np.memmap)
    assert type(r._lexical._bm25.vocab_dict).__name__ == "SortedVocab"
    hit = r.search("peering", k=1)[0]
    assert hit.path == "networking.md"
    assert r.search("peering", k=3, folder="nowhere") == []
    assert r.tags() and r.filter_problem(tags=["nosuchtag"]).startswith("No note has the tag")


def test_an_index_written_before_columns_still_opens(vault, tmp_path, fake):
    """Format 1 (chunks.jsonl, read whole) stays readable, and the next build writes columns."""
    index = tmp_path / "index"
    build_index(vault, index, embedder=fake)
    folder = current_folder(index)
    gen = load_generation(index)
    want = Retriever(index, embedder=fake).search("peering virtual networks", k=5)
    with open(folder / "chunks.jsonl", "w", encoding="utf-8") as fh:
        for c in gen.chunks:
            fh.write(json.dumps(c.to_dict(), ensure_ascii=False) + "\n")
    shutil.rmtree(folder / "chunks")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.update(format=1, files={k: v for k, v in manifest["files"].items() if not k.startswith("chunks/")})
    manifest["files"]["chunks.jsonl"] = (folder / "chunks.jsonl").stat().st_size
    del manifest["sha256"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (index / "CURRENT").write_text(folder.name + "\n")
    old = load_generation(index)
    assert isinstance(old.chunks, ChunkList)
    assert Retriever(index, embedder=fake).search("peering virtual networks", k=5) == want
    write(vault, "new.md", "# New\n\nBastion hosts give browser RDP.\n")
    stats = build_index(vault, index, embedder=fake)
    assert stats.added == 1 and stats.embedded == 1          # the old rows and their vectors were reused
    assert isinstance(load_generation(index).chunks, ChunkColumns)


def test_above_the_verify_limit_sizes_and_structure_are_still_checked(vault, tmp_path, fake, monkeypatch):
    """A large generation is not read whole at open: its big files' checksums are skipped, but a wrong size or
    offsets that disagree with their column are still damage."""
    index = tmp_path / "index"
    build_index(vault, index, embedder=fake)
    monkeypatch.setenv("AZCHAT_VERIFY_BYTES", "0")
    text = current_folder(index) / "chunks" / "text.bin"
    data = bytearray(text.read_bytes())
    data[len(data) // 2] ^= 0x01                  # same size: not found without reading the file
    text.write_bytes(bytes(data))
    Retriever(index, embedder=fake)
    monkeypatch.delenv("AZCHAT_VERIFY_BYTES")
    with pytest.raises(IndexCorruptError, match="text.bin does not match its checksum"):
        Retriever(index, embedder=fake)        # under the limit every checksum is verified
    monkeypatch.setenv("AZCHAT_VERIFY_BYTES", "0")
    off = current_folder(index) / "chunks" / "text.off.npy"
    offsets = np.load(off)
    offsets[-1] += 1
    manifest = json.loads((current_folder(index) / "manifest.json").read_text())
    np.save(off, offsets)
    assert off.stat().st_size == manifest["files"]["chunks/text.off.npy"]
    with pytest.raises(IndexCorruptError, match="offsets disagree"):
        Retriever(index, embedder=fake)
    text.write_bytes(bytes(data[:-1]))
    with pytest.raises(IndexCorruptError, match="wrong size"):
        Retriever(index, embedder=fake)


def test_what_refusal_asks_of_the_whole_text_comes_from_files_with_the_same_answers(vault, tmp_path, fake):
    """The notes' words, substrings, letters run together and code identifiers come from words.txt,
    compact.bin and identifiers.txt (searched memory-mapped) and answer as the whole text read into memory."""
    index = tmp_path / "index"
    write(vault, "code.md", "# Code\n\nUse `for_each` and ARM_CLIENT_ID with github.com/danielmiessler/fabric.\n"
                            "Let's Encrypt via nginx-proxy-manager; Größe ΑΣ.\n")
    build_index(vault, index, embedder=fake)
    table = load_generation(index).chunks
    listed = ChunkList(list(table))
    (words, text), (lwords, ltext) = table.notes_text(), listed.notes_text()
    probes = sorted(lwords)[:50] + ["peering", "peer", "eering", "danielmiessler", "miessler", "nginx", "größe",
                                    "ας", "nosuchword", "", "for", "each", "for_each", "g", "\n", "proxymanager"]
    for p in probes:
        assert (p in words) == (p in lwords), p
        if p.isalnum():         # refusal.py asks the text only about letters-and-digits parts
            assert (p in text) == (p in ltext), p
    compact, lcompact = table.compact_text(), listed.compact_text()
    for p in ["letsencrypt", "nginxproxymanager", "githubcomdanielmiesslerfabric", "proxymanagerx", "größeας", ""]:
        assert (p in compact) == (p in lcompact), p
    ids, lids = table.identifiers(), listed.identifiers()
    assert "for_each" in lids and "arm_client_id" in lids
    for p in ["for_each", "arm_client_id", "client_id", "for", "", "nope_nope"]:
        assert (p in ids) == (p in lids), p
    r = Retriever(index, embedder=fake)
    assert r.refusal._mentioned("miessler") and not r.refusal._mentioned("zebrafinch")
    assert r.refusal._knows_identifier("for_each") and not r.refusal._knows_identifier("nope_nope")
