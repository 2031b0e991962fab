"""tools.py (the logic behind the REST API and the MCP server) with the fake embedder: shapes, caps, line
numbers, input errors, paths outside the notes folder, changes since the build; and the MCP tools in-process."""
from __future__ import annotations

import json
import os

import anyio
import pytest

from azchat.apps import tools as T
from azchat.errors import SourceError
from azchat.index.changes import note_changes
from azchat.apps.service import NotesService
from azchat.apps.tools import NotesTools, ToolInputError, tag_list
from conftest import NETWORK_NOTE, assert_span, file_lines, write

HIT_KEYS = {"rank", "path", "title", "heading", "start_line", "end_line", "score", "text"}
CITATION_KEYS = {"n", "path", "title", "heading", "start_line", "end_line", "snippet"}


@pytest.fixture
def tools(vault, tmp_path, fake):
    svc = NotesService(vault, tmp_path / "index", embedder=fake)
    svc.open()
    return NotesTools(svc, refresh_every=0.0).opened()


def touch_later(path):
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


def test_search_has_the_cli_shape_and_lines_that_match_the_file(tools, vault):
    out = tools.search("peer virtual networks", k=3)
    assert set(out) == {"query", "hits", "truncated", "omitted_hits"}
    assert out["truncated"] is False and out["omitted_hits"] == 0
    assert 1 <= len(out["hits"]) <= 3
    for h in out["hits"]:
        assert set(h) == HIT_KEYS
        assert_span(vault, h["path"], h["start_line"], h["end_line"], h["text"].splitlines()[0])
    assert out["hits"][0]["path"] == "networking.md"


def test_ask_has_the_cli_shape(tools, vault):
    out = tools.ask("how do I peer two virtual networks")
    assert set(out) == {"question", "answer", "found", "citations", "truncated"}
    assert out["found"] is True and out["citations"]
    for c in out["citations"]:
        assert set(c) == CITATION_KEYS
        assert 1 <= c["start_line"] <= c["end_line"] <= len(file_lines(vault, c["path"]))


@pytest.mark.parametrize("call, message", [
    (lambda t: t.search(""), "empty"),
    (lambda t: t.search("   \n"), "empty"),
    (lambda t: t.search(None), "empty"),
    (lambda t: t.search("x" * (T.MAX_QUERY_CHARS + 1)), "at most"),
    (lambda t: t.search("vnet", k=0), "between 1 and"),
    (lambda t: t.search("vnet", k=T.MAX_K + 1), "between 1 and"),
    (lambda t: t.search("vnet", k="many"), "whole number"),
    (lambda t: t.search("vnet", tag=[3]), "tag"),
    (lambda t: t.search("vnet", tag="azur"), "No note has the tag 'azur'. Tags in your notes: .*azure"),
    (lambda t: t.ask("vnet", folder="mll"), "No note is in the folder 'mll'. Folders: ml, storage"),
    (lambda t: t.ask(""), "empty"),
    (lambda t: t.get("networking.md", 0), "start_line"),
    (lambda t: t.get("networking.md", 10_000), "past the end"),
    (lambda t: t.get("networking.md", 10, 5), "before start_line"),
    (lambda t: t.get("", 1), "No note path"),
])
def test_bad_input_is_a_one_sentence_input_error(tools, call, message):
    with pytest.raises(ToolInputError, match=message) as info:
        call(tools)
    text = str(info.value)
    assert text.endswith(".") and "\n" not in text


NOT_INDEXED = "is not a note in the index: use a path that search returns."


@pytest.mark.parametrize("path, message", [
    ("../notes/networking.md", "'../notes/networking.md' is outside the notes folder or hidden."),
    ("storage/../networking.md", "'storage/../networking.md' is outside the notes folder or hidden."),
    ("./networking.md", "'./networking.md' is outside the notes folder or hidden."),
    (".hidden/x.md", "'.hidden/x.md' is outside the notes folder or hidden."),
    ("/etc/passwd", "'/etc/passwd' is outside the notes folder: only paths relative to it are allowed."),
    ("~/networking.md", "'~/networking.md' is outside the notes folder: only paths relative to it are allowed."),
    ("storage\\storage.md", "'storage\\\\storage.md' is not a valid note path."),
    ("a\x00.md", "'a\\x00.md' is not a valid note path."),
    ("networking.txt", "'networking.txt' is not a markdown note."),
    ("nope.md", "'nope.md' " + NOT_INDEXED),
])
def test_get_refuses_paths_that_are_not_notes_inside_the_folder(tools, vault, path, message, monkeypatch):
    """Each path gets its own sentence, decided from the text of the path and the index alone: no file is
    opened or even looked at (`..` that leads back into the folder is refused all the same)."""
    import azchat.notes.sections as S

    touched = []
    monkeypatch.setattr(S, "read_regular", lambda *a: touched.append(a) or b"")
    monkeypatch.setattr(S, "link_problem", lambda *a: touched.append(a) or "")
    with pytest.raises(SourceError) as info:
        tools.get(path)
    assert str(info.value) == message
    assert touched == []


def test_files_that_are_not_indexed_notes_all_get_the_same_error(vault, tmp_path, fake, monkeypatch):
    """No probing: a missing file, a binary .md, a note too big to index and a note added since the build
    (never indexed: refresh is off) answer with the same sentence, and none of them is opened."""
    import azchat.notes.sections as S
    from azchat.notes import reading as N

    write(vault, "binary.md", b"\x00\x01\x02 binary \xff" * 50)
    write(vault, "big.md", "# Big\n\n" + "a line of the big note\n" * 200)
    monkeypatch.setattr(N, "MAX_NOTE_BYTES", 1000)
    svc = NotesService(vault, tmp_path / "index", embedder=fake)
    svc.open()
    write(vault, "later.md", "# Later\n\nadded after the build\n")
    tools = NotesTools(svc, refresh_every=None).opened()
    indexed = set(svc.retriever.manifest["notes"])
    assert not indexed & {"binary.md", "big.md", "later.md"}
    opened = []
    real = S.read_regular
    monkeypatch.setattr(S, "read_regular", lambda *a: opened.append(a[0]) or real(*a))
    errors = set()
    for path in ["missing.md", "binary.md", "big.md", "later.md"]:
        with pytest.raises(SourceError) as info:
            tools.get(path)
        errors.add(str(info.value).replace(repr(path), "PATH"))
        with pytest.raises(SourceError) as info:
            svc.section(path, 1)
        errors.add(str(info.value).replace(repr(path), "PATH"))
    assert errors == {"PATH " + NOT_INDEXED}
    assert opened == []
    assert tools.get("networking.md", 1, 1)["lines"] and opened      # an indexed note is read as before


def test_get_refuses_a_symlink_out_of_the_folder(tools, vault, tmp_path):
    outside = tmp_path / "secret.md"
    outside.write_text("# secret\npassword\n")
    (vault / "link.md").symlink_to(outside)
    with pytest.raises(SourceError):
        tools.get("link.md")


def test_get_returns_numbered_lines_as_on_disk(tools, vault):
    lines = file_lines(vault, "storage/storage.md")       # CRLF note with frontmatter
    out = tools.get("storage/storage.md", 2, 4)
    assert out["path"] == "storage/storage.md" and out["title"] == "Storage"
    assert out["total_lines"] == len(lines)
    assert [r["line"] for r in out["lines"]] == [2, 3, 4]
    assert [r["text"] for r in out["lines"]] == lines[1:4]
    assert out["truncated"] is False and out["next_start_line"] is None
    whole = tools.get("storage/storage.md", 5, 10_000)     # an end past the file is clamped
    assert whole["end_line"] == len(lines) and whole["lines"][-1]["text"] == lines[-1]


def test_get_caps_lines_and_says_where_to_go_on(tools, vault, monkeypatch):
    write(vault, "big.md", "# Big\n" + "".join(f"row {i}\n" for i in range(2, 1001)))
    write(vault, "wide.md", "# Wide\n" + "w" * (T.MAX_LINE_CHARS + 50) + "\nend\n")
    out = tools.get("big.md")        # indexed first: the note is new
    assert len(out["lines"]) == T.MAX_GET_LINES and out["truncated"] is True
    assert out["end_line"] == T.MAX_GET_LINES and out["next_start_line"] == T.MAX_GET_LINES + 1
    nxt = tools.get("big.md", out["next_start_line"])
    assert nxt["lines"][0] == {"line": T.MAX_GET_LINES + 1, "text": f"row {T.MAX_GET_LINES + 1}"}
    wide = tools.get("wide.md")
    assert wide["truncated"] is True and wide["lines"][1]["text"].endswith(T.MARK)
    assert len(wide["lines"][1]["text"]) == T.MAX_LINE_CHARS + len(T.MARK)
    assert wide["next_start_line"] is None          # every line came back, one of them cut
    monkeypatch.setattr(T, "MAX_RESULT_CHARS", 500)
    small = tools.get("big.md")
    assert small["truncated"] is True and 10 < len(small["lines"]) < 60
    assert small["next_start_line"] == small["end_line"] + 1


def test_search_and_ask_are_capped_with_a_marker(tools, monkeypatch):
    full = tools.search("network", k=10)
    assert len(full["hits"]) >= 3
    monkeypatch.setattr(T, "MAX_TEXT_CHARS", 20)
    monkeypatch.setattr(T, "MAX_RESULT_CHARS", 300)
    out = tools.search("network", k=10)
    assert out["truncated"] is True
    assert out["omitted_hits"] == len(full["hits"]) - len(out["hits"]) > 0
    assert all(h["text"].endswith(T.MARK) for h in out["hits"] if len(h["text"]) > 20 + len(T.MARK) - 1)
    assert any(h["text"].endswith(T.MARK) for h in out["hits"])
    ans = tools.ask("how do I peer two virtual networks")
    assert ans["truncated"] is True and all(len(c["snippet"]) <= 20 + len(T.MARK) for c in ans["citations"])


def test_filters_accept_comma_strings_and_lists(tools):
    assert tag_list("azure, #networking") == ["azure", "networking"]
    assert tag_list(["dns", ""]) == ["dns"] and tag_list("") is None and tag_list([]) is None
    by_tag = tools.search("network", k=10, tag="storage")
    assert {h["path"] for h in by_tag["hits"]} == {"storage/storage.md"}
    by_folder = tools.search("network", k=10, folder="/ml/")
    assert {h["path"] for h in by_folder["hits"]} == {"ml/machine learning.md"}


def test_changed_notes_show_in_status_and_are_indexed_before_the_next_answer(tools, vault):
    assert tools.status()["changed_since_build"]["count"] == 0
    write(vault, "zoo.md", "## Quokka feeding\n\nThe quokka colony eats cucumber at seven.\n")
    (vault / "dns.md").unlink()
    path = write(vault, "networking.md", NETWORK_NOTE + "\nThe pangolin ledger is reconciled monthly.\n")
    touch_later(path)
    st = tools.status()
    assert st["ready"] is True
    assert {k: st["changed_since_build"][k] for k in ("added", "changed", "removed", "count")} == \
        {"added": ["zoo.md"], "changed": ["networking.md"], "removed": ["dns.md"], "count": 3}
    hits = tools.search("quokka cucumber", k=1)["hits"]
    assert hits[0]["path"] == "zoo.md"
    assert "dns.md" not in {h["path"] for h in tools.search("Namensauflösung DNS-Zone", k=10)["hits"]}
    assert tools.status()["changed_since_build"]["count"] == 0
    with pytest.raises(SourceError, match=NOT_INDEXED):      # deleted: out of the index with it
        tools.get("dns.md")


def test_refresh_every_throttles_the_check(vault, tmp_path, fake):
    svc = NotesService(vault, tmp_path / "index", embedder=fake)
    svc.open()
    lazy = NotesTools(svc, refresh_every=3600).opened()
    write(vault, "zoo.md", "## Quokka feeding\n\nThe quokka colony eats cucumber at seven.\n")
    assert "zoo.md" not in {h["path"] for h in lazy.search("quokka cucumber", k=3)["hits"]}
    assert note_changes(vault, tmp_path / "index")["added"] == ["zoo.md"]
    never = NotesTools(svc, refresh_every=None).opened()
    assert "zoo.md" not in {h["path"] for h in never.search("quokka cucumber", k=3)["hits"]}
    with pytest.raises(SourceError, match="not a note in the index"):     # on disk, but not indexed yet
        never.get("zoo.md")


def test_status_lists_at_most_max_listed_paths(tools, vault):
    for i in range(T.MAX_LISTED + 5):
        write(vault, f"new/n{i:02}.md", f"# Note {i}\n\ntext {i}\n")
    changes = tools.status()["changed_since_build"]
    assert changes["count"] == T.MAX_LISTED + 5 and len(changes["added"]) == T.MAX_LISTED
    assert changes["truncated"] is True


def test_calls_wait_for_a_background_open_and_report_its_failure(tmp_path, fake):
    missing = NotesTools(NotesService(tmp_path / "nothing", tmp_path / "index", embedder=fake))
    assert missing.status()["ready"] is False
    missing.open_in_background().join(30)
    st = missing.status()
    assert st["ready"] is False and "does not exist" in st["error"]
    with pytest.raises(T.NotReadyError, match="does not exist"):
        missing.search("anything")


def test_mcp_tools_in_process(tools, vault):
    """The MCP adapter: four read-only tools with output schemas; results are the tools' dicts; bad input and
    paths outside the notes are tool errors (is_error), not crashes."""
    from mcp import Client

    from azchat.apps.mcp import build_server

    async def session():
        async with Client(build_server(tools)) as client:
            listed = {t.name: t for t in (await client.list_tools()).tools}
            assert set(listed) == {"search", "ask", "get", "status"}
            for t in listed.values():
                assert t.annotations.read_only_hint is True and t.annotations.destructive_hint is False
                assert t.output_schema["type"] == "object"
            assert set(listed["search"].output_schema["properties"]) == {"query", "hits", "truncated",
                                                                         "omitted_hits"}
            r = await client.call_tool("search", {"query": "peer virtual networks", "k": 2})
            assert r.is_error is False and r.structured_content == tools.search("peer virtual networks", 2)
            assert len(r.content) == 1 and json.loads(r.content[0].text) == r.structured_content
            assert "\n  " not in r.content[0].text         # compact JSON for clients that read only text
            r = await client.call_tool("get", {"path": "networking.md", "start_line": 17, "end_line": 19})
            assert [x["text"] for x in r.structured_content["lines"]] == file_lines(vault, "networking.md")[16:19]
            for args in ({"query": ""}, {"query": "x", "k": 500}):
                r = await client.call_tool("search", args)
                assert r.is_error is True
            r = await client.call_tool("search", {"query": ""})
            assert "The query is empty" in r.content[0].text
            r = await client.call_tool("get", {"path": "../../etc/passwd"})
            assert r.is_error is True and "outside the notes folder" in r.content[0].text
            r = await client.call_tool("ask", {"question": "how do I peer two virtual networks", "tag": "azure"})
            assert r.is_error is False and r.structured_content["found"] is True
            r = await client.call_tool("status", {})
            assert r.structured_content["notes"] == 4

    anyio.run(session)


def test_a_call_during_a_long_first_build_says_so_instead_of_hanging(tmp_path, vault, monkeypatch):
    """MCP clients time out requests after ~60 s: a call waits at most OPEN_WAIT for the first build."""
    import threading

    from azchat.index.embedding import HashEmbedder

    gate = threading.Event()

    class SlowEmbedder(HashEmbedder):
        def embed(self, texts, progress=None):
            if progress:
                progress(0, len(texts))
            gate.wait(30)
            return super().embed(texts, progress)

    monkeypatch.setattr(T, "OPEN_WAIT", 0.5)
    slow = NotesTools(NotesService(vault, tmp_path / "index", embedder=SlowEmbedder()))
    opening = slow.open_in_background()
    try:
        with pytest.raises(T.NotReadyError, match="still being built"):
            slow.search("peer virtual networks")
    finally:
        gate.set()
    opening.join(30)
    assert slow.search("peer virtual networks", k=1)["hits"][0]["path"] == "networking.md"



def test_the_declared_shapes_are_the_keys_the_tools_return(tools, vault):
    """tools.py's TypedDicts (the MCP and OpenAPI schemas) restate the library's dataclasses and the service's
    status: they must name exactly the keys each call returns."""
    from typing import NotRequired, get_origin, get_type_hints

    def keys(shape, required_only: bool = False) -> set:
        hints = get_type_hints(shape, include_extras=True)
        return {k for k, t in hints.items() if not (required_only and get_origin(t) is NotRequired)}

    write(vault, "new/added.md", "# Added\n\nadded text\n")
    out = tools.search("peer virtual networks", k=2)
    assert set(out) == keys(T.SearchResult) and set(out["hits"][0]) == keys(T.HitDict)
    out = tools.ask("How do I peer two virtual networks?")
    assert set(out) == keys(T.AskResult, required_only=True) and keys(T.AskResult) - set(out) == {
        "mode", "model", "notice"}                              # those three come with mode="generative"
    assert set(out["citations"][0]) == keys(T.CitationDict)
    out = tools.get("networking.md", 1, 3)
    assert set(out) == keys(T.NoteLines) and set(out["lines"][0]) == keys(T.LineDict)
    out = tools.status()
    assert set(out) - {"pending"} == keys(T.StatusResult)    # "pending": the chat's counts, not declared
    assert set(out["progress"]) == keys(T.Progress) and set(out["changed_since_build"]) == keys(T.Changes)


def test_status_walks_the_notes_folder_once_for_both_change_reports(tools, vault, monkeypatch):
    import azchat.index.building as indexing
    import azchat.index.changes as changes

    write(vault, "new/added.md", "# Added\n\nadded text\n")
    touch_later(vault / "networking.md")
    walks = []
    real = indexing.scan_notes
    for module in (indexing, changes):      # the walks of a build and of the change reports
        monkeypatch.setattr(module, "scan_notes", lambda *a, **kw: walks.append(a) or real(*a, **kw))
    out = tools.status()
    assert len(walks) == 1
    listed = out["changed_since_build"]
    assert out["pending"] == {"added": 1, "changed": 1, "removed": 0} and listed["count"] == 2
    assert (listed["added"], listed["changed"]) == (["new/added.md"], ["networking.md"])


def test_open_and_refresh_log_without_an_extra_walk_of_the_notes(vault, tmp_path, fake, monkeypatch):
    import azchat.index.building as indexing
    import azchat.index.changes as changes

    logs = []
    tools = NotesTools(NotesService(vault, tmp_path / "index", embedder=fake), log=logs.append)
    tools.open_in_background().join(60)
    assert logs[-1] == f"Ready: 4 notes from {vault}."
    write(vault, "new/added.md", "# Added\n\nadded text\n")
    walks = []
    real = indexing.scan_notes
    for module in (indexing, changes):      # the walks of a build and of the change reports
        monkeypatch.setattr(module, "scan_notes", lambda *a, **kw: walks.append(a) or real(*a, **kw))
    assert tools.search("added text", k=1)["hits"][0]["path"] == "new/added.md"
    assert "Updating the index: 1 added." in logs and not any(m.startswith("azchat: ") for m in logs)
    assert len(walks) == 2          # one to see what changed, one in the incremental build; none after it
