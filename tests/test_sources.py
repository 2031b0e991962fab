"""Reading cited sections back safely (sources.py), rendering them as inert text (render.py), and the
NotesService that the chat UI uses (rebuild in the background, swap when ready). Fake embedder: fast."""
import os
import re
import subprocess
import sys
import threading

import pytest

from azchat.config import auth_from_env
from azchat.index.embedding import HashEmbedder
from azchat.errors import AzchatError, SourceError
from azchat.apps.render import chat_markdown, esc, md_text, sources_html
from azchat.apps.service import NotesService
from azchat.notes.sections import read_section, resolve_note_path
from azchat.types import Answer, Citation, Hit

from conftest import NETWORK_NOTE, REPO, STORAGE_NOTE_CRLF, file_lines, write

XSS = ('<script>window.__pwned=1</script> <img src=x onerror="window.__pwned=2"> '
       '[click](javascript:window.__pwned=3) ${window.__pwned=4} <a href="javascript:alert(1)">a</a>')


# -- path safety -------------------------------------------------------------------------------
@pytest.fixture
def outside(tmp_path):
    """A notes folder plus a secret note beside it (outside), and links that try to reach it."""
    notes = tmp_path / "notes"
    write(notes, "networking.md", NETWORK_NOTE)
    write(notes, "sub/inner.md", "# Inner\n\nInside.\n")
    secret = write(tmp_path, "secret.md", "# Secret\n\nTOP SECRET\n")
    write(tmp_path, "private/other.md", "# Other\n\nALSO SECRET\n")
    os.symlink(secret, notes / "link-out.md")
    os.symlink(tmp_path / "private", notes / "linkdir")
    os.symlink(notes / "sub" / "inner.md", notes / "link-in.md")
    return notes


@pytest.mark.parametrize("rel", [
    "../secret.md", "sub/../../secret.md", "/etc/passwd", str("/") + "etc/hosts.md", "~/secret.md",
    "..\\secret.md", "sub\\..\\..\\secret.md", "link-out.md", "linkdir/other.md", ".hidden/x.md",
    "./networking.md", "networking.md\x00.md", "", "   ", "missing.md", "sub", "sub/", "networking.txt",
])
def test_paths_outside_the_notes_folder_or_not_notes_are_refused(outside, rel):
    with pytest.raises(SourceError):
        resolve_note_path(outside, rel)
    with pytest.raises(SourceError):
        read_section(outside, rel, 1)


def test_absolute_path_to_a_real_note_is_refused_too(outside):
    with pytest.raises(SourceError, match="outside"):
        resolve_note_path(outside, str(outside / "networking.md"))


def test_symlink_inside_the_folder_and_normal_paths_are_allowed(outside):
    assert resolve_note_path(outside, "link-in.md") == (outside / "sub" / "inner.md").resolve()
    assert read_section(outside, "sub/inner.md", 3).text == "# Inner\n\nInside."


# -- sections ----------------------------------------------------------------------------------
def test_section_spans_heading_to_next_heading_of_same_level(vault):
    lines = file_lines(vault, "networking.md")
    peering = lines.index("### Peering") + 1          # 1-based
    nsg = lines.index("## NSG") + 1
    sec = read_section(vault, "networking.md", peering + 2)
    assert (sec.heading, sec.start_line, sec.end_line) == ("Peering", peering, nsg - 1)
    assert sec.text.startswith("### Peering") and "Microsoft backbone" in sec.text
    # an H2 section contains its H3 subsections
    vnets = lines.index("## Virtual Networks") + 1
    sec = read_section(vault, "networking.md", vnets + 2)
    assert (sec.start_line, sec.end_line) == (vnets, nsg - 1) and "### Peering" in sec.text


def test_section_ignores_hash_lines_inside_code_and_reaches_the_end(vault):
    lines = file_lines(vault, "networking.md")
    nsg = lines.index("## NSG") + 1
    write(vault, "code.md", "## Setup\n\n```bash\n# not a heading\necho hi\n```\n\nAfter the code.\n## Next\nx\n")
    sec = read_section(vault, "code.md", 8)
    assert (sec.heading, sec.start_line, sec.end_line) == ("Setup", 1, 8)
    sec = read_section(vault, "networking.md", nsg)
    assert sec.end_line == len(lines) and sec.text.endswith("```")


def test_section_line_numbers_in_a_crlf_note_and_above_the_first_heading(vault):
    sec = read_section(vault, "storage/storage.md", 8)
    assert (sec.heading, sec.start_line, sec.end_line) == ("Redundancy", 6, 10)
    assert "three copies" in sec.text and "\r" not in sec.text
    sec = read_section(vault, "storage/storage.md", 2)          # frontmatter: no heading above
    assert sec.heading == "" and sec.start_line == 1 and sec.end_line == 5


def test_section_refuses_lines_that_do_not_exist_and_truncates_long_sections(vault):
    n = len(file_lines(vault, "networking.md"))
    for line in (0, -1, n + 1):
        with pytest.raises(SourceError, match="no line"):
            read_section(vault, "networking.md", line)
    write(vault, "long.md", "## Long\n" + "".join(f"line {i}\n" for i in range(50)))
    sec = read_section(vault, "long.md", 3, max_lines=10)
    assert sec.truncated and (sec.start_line, sec.end_line) == (1, 10)


FENCED_NOTE = """## Setup

Install the frobnicator before the first deployment.
```
```python
# not a heading
frobnicate --cache warm --quokka #nottag
```

## Rollback

Rollback restores the previous release.
"""


def test_a_fence_line_with_an_info_string_inside_a_bare_block_is_code_for_every_reader(vault, tmp_path):
    """`##`/```` ``` ````/```` ```python ````/`# not a heading`: the ```` ```python ```` line is code inside the
    open block, not its end. Search, the answer's citation and "show the whole section" name the same lines."""
    write(vault, "fenced.md", FENCED_NOTE)
    svc = NotesService(vault, tmp_path / "index", embedder=HashEmbedder(dim=1024))
    svc.open()
    hit = next(h for h in svc.search("frobnicate cache warm quokka", k=5) if h.path == "fenced.md")
    assert (hit.heading, hit.start_line, hit.end_line) == ("Setup", 1, 8)
    answer = svc.ask("How do I frobnicate the cache warm with quokka?")
    cited = [c for c in answer.citations if c.path == "fenced.md"]
    assert answer.found and cited and all(1 <= c.start_line <= c.end_line <= 8 for c in cited)
    for line in [hit.start_line, *(c.start_line for c in cited), 6]:
        sec = svc.section("fenced.md", line)
        assert (sec.heading, sec.start_line, sec.end_line) == ("Setup", 1, 9), line
    assert svc.section("fenced.md", 10).heading == "Rollback"
    from azchat.notes.reading import read_note
    note = read_note(vault / "fenced.md", vault)
    assert note.title == "fenced" and "nottag" not in note.tags     # no H1 and no tag out of the code block


def test_a_link_to_a_hidden_file_inside_the_folder_is_neither_indexed_nor_shown(vault, tmp_path):
    write(vault, ".private/secret.md", "# Diary\n\nquuxdiary hidden words\n")
    write(vault, ".git/config", "[remote]\nurl = quuxremote\n")
    os.symlink(".private/secret.md", vault / "x.md")
    os.symlink(".git/config", vault / "config.md")
    os.symlink(".private", vault / "diary")                      # a folder link: its notes are hidden too
    svc = NotesService(vault, tmp_path / "index", embedder=HashEmbedder())
    stats = svc.open()
    reasons = {s["path"]: s["reason"] for s in stats.skipped}
    assert reasons["x.md"] == reasons["config.md"] == "symlink points to a hidden file"
    assert not {"x.md", "config.md", "diary/secret.md"} & set(svc.retriever.manifest["notes"])
    assert all(h.path not in ("x.md", "config.md") for h in svc.search("quuxdiary quuxremote", k=10))
    for rel in ("x.md", "config.md", "diary/secret.md"):
        with pytest.raises(SourceError, match="is not a note in the index") as exc:   # asked before the disk
            svc.section(rel, 1)
        assert "quux" not in str(exc.value)
        with pytest.raises(SourceError, match="hidden file"):
            resolve_note_path(vault, rel)
        with pytest.raises(SourceError, match="hidden file"):
            read_section(vault, rel, 1)


def test_the_section_reader_never_waits_on_a_fifo_swapped_in_after_the_check(vault, monkeypatch):
    """The path check passed, then the note became a FIFO with no writer: the read is refused at once."""
    import azchat.notes.sections as sources

    os.unlink(vault / "networking.md")
    os.mkfifo(vault / "networking.md")
    monkeypatch.setattr(sources, "resolve_note_path", lambda notes_dir, rel: vault / rel)   # checked earlier
    outcome = []

    def read():
        try:
            sources.read_section(vault, "networking.md", 1)
        except SourceError as exc:
            outcome.append(str(exc))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(10)
    if reader.is_alive():                      # unblock the hung reader before failing
        with open(vault / "networking.md", "w"):
            pass
        pytest.fail("the section reader blocked on a FIFO")
    assert outcome and "not a regular file" in outcome[0]


# -- rendering is inert ------------------------------------------------------------------------
def _answer(snippet: str, text: str, found: bool = True) -> Answer:
    hit = Hit(1, "x/evil.md", "Evil <b>title</b>", "Evil <b>title</b> > <img src=x onerror=alert(1)>", 3, 5,
              0.9, text)
    cit = Citation(1, hit.path, hit.title, hit.heading, 4, 4, snippet)
    body = f"From your notes:\n\n- {snippet} [1]\n\nSources:\n[1] {hit.title} — {cit.location}"
    return Answer("q", body, found, [cit] if found else [], [hit])


def test_sources_html_escapes_note_text_and_marks_only_with_our_tags():
    text = "## Evil\n\n" + XSS + "\nplain line"
    html_out = sources_html(_answer(XSS, text), lambda p, l: read_section_stub(text))
    tags = re.findall(r"<([^>]*)>", html_out)          # every "<" left in the output is one of ours
    assert {re.match(r"/?(\w+)", t).group(1) for t in tags} <= {"div", "span", "b", "code", "pre", "mark",
                                                               "details", "summary", "h2", "p", "button"}
    assert {a for t in tags for a in re.findall(r'\s([\w-]+)=', t)} <= {"class", "title", "type", "data-copy"}
    assert "${" not in html_out
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html_out
    assert html_out.count('<mark class="azchat-match">') == 2          # passage + whole section
    assert "x/evil.md:4" in html_out and "<details" in html_out


class read_section_stub:
    def __init__(self, text):
        self.path, self.start_line, self.end_line, self.text, self.truncated = "x/evil.md", 3, 5, text, False


def test_chat_markdown_shows_markup_literally():
    out = chat_markdown(_answer(XSS, XSS))
    assert "<" not in out and not re.search(r"(?<!\\)[\[\]`*_]", out)   # no tags; every bracket escaped
    assert r"\[click\](javascript" in out
    assert out.startswith("From your notes:") and "\n- " in out
    assert md_text("**bold** [x](y) `c` <i>") == r"\*\*bold\*\* \[x\](y) \`c\` &lt;i&gt;"


def test_esc_leaves_no_template_syntax():
    assert esc("${x}") == "&#36;&#123;x&#125;"


def test_not_found_answer_has_no_sources():
    out = sources_html(_answer("", "", found=False))
    assert "nothing in your notes" in out and "azchat-source\"" not in out


def test_serve_share_without_a_password_refuses_before_any_work(vault, tmp_path, monkeypatch, capsys):
    from azchat.apps.cli import main

    monkeypatch.delenv("AZCHAT_AUTH", raising=False)
    code = main(["serve", "--share", "--notes", str(vault), "--index", str(tmp_path / "index")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert "public link" in err and "AZCHAT_AUTH=user:password" in err
    assert not (tmp_path / "index").exists()               # refused before building anything


def test_auth_setting():
    assert auth_from_env("") is None
    assert auth_from_env("me:pa:ss") == ("me", "pa:ss")
    for bad in ("nopassword", ":pw", "user:"):
        with pytest.raises(AzchatError, match="user:password"):
            auth_from_env(bad)


# -- the service -------------------------------------------------------------------------------
class GatedEmbedder(HashEmbedder):
    """Blocks embedding inside the rebuild thread until released, so a test can ask meanwhile."""

    def __init__(self):
        super().__init__()
        self.entered, self.release = threading.Event(), threading.Event()

    def embed(self, texts, progress=None):
        if threading.current_thread().name == "azchat-rebuild":
            self.entered.set()
            assert self.release.wait(30)
        return super().embed(texts, progress)


def test_service_answers_during_rebuild_and_swaps_in_the_new_index(vault, tmp_path):
    emb = GatedEmbedder()
    svc = NotesService(vault, tmp_path / "index", embedder=emb)
    stats = svc.open()
    assert stats.added == 4 and svc.status()["notes"] == 4
    assert svc.open() is None                                  # up to date: nothing rebuilt
    write(vault, "new/kubernetes.md", "## AKS\n\nZebrafish clusters run container workloads on nodes.\n")
    old = svc.retriever
    assert svc.start_rebuild()
    assert emb.entered.wait(30)
    assert svc.rebuilding and not svc.start_rebuild()          # one rebuild at a time
    st = svc.status()
    assert st["rebuilding"] is True and "Embedding 1 chunks" in st["phase"]
    from azchat.apps.render import status_html
    assert "Rebuilding" in status_html(st) and "4 notes" in status_html(st)
    # the old index keeps answering while the rebuild is blocked
    assert svc.ask("How do I peer two virtual networks?").found
    assert all(h.path != "new/kubernetes.md" for h in svc.search("zebrafish clusters", k=10))
    assert svc.retriever is old
    emb.release.set()
    svc.wait(30)
    assert not svc.rebuilding and svc.retriever is not old
    st = svc.status()
    assert (st["notes"], st["error"], st["last_build"]["added"], st["last_build"]["unchanged"]) == (5, "", 1, 4)
    assert svc.search("zebrafish clusters", k=1)[0].path == "new/kubernetes.md"
    assert "new" in svc.folders()
    # the folder filter applies inside the search: the new note, the best match without it, is left out
    assert svc.search("zebrafish clusters storage", k=1)[0].path == "new/kubernetes.md"
    hits = svc.search("zebrafish clusters storage", k=5, folder="storage")
    assert hits and {h.path for h in hits} == {"storage/storage.md"}


def test_service_section_only_for_indexed_notes_and_failed_rebuild_keeps_serving(vault, tmp_path):
    svc = NotesService(vault, tmp_path / "index", embedder=HashEmbedder())
    svc.open()
    assert svc.section("networking.md", 17).heading == "Peering"
    write(vault, "later.md", "## Later\n\nNot indexed yet.\n")
    with pytest.raises(SourceError, match="not a note in the index"):
        svc.section("later.md", 1)
    with pytest.raises(SourceError):
        svc.section("../notes/networking.md", 1)
    assert svc.suggested_questions(2) and all(q.endswith("?") for q in svc.suggested_questions(2))
    # a rebuild that fails (notes folder gone) reports the error and keeps the old index
    moved = vault.rename(tmp_path / "gone")
    assert svc.rebuild() is None
    assert "does not exist" in svc.status()["error"]
    assert svc.ask("How do I peer two virtual networks?").found
    moved.rename(vault)


def test_importing_the_library_and_cli_does_not_import_gradio():
    code = ("import sys, azchat, azchat.apps.cli, azchat.apps.service, azchat.apps.render, azchat.notes.sections;"
            "azchat.apps.cli.build_parser().parse_args(['serve']);"
            "print('gradio' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO / "src")}).stdout
    assert out.split() == ["False", "False"]


class StubRetriever:
    """Finds an answer only when the question mentions peering; records what it was asked."""

    def __init__(self):
        self.asked = []

    def ask(self, question, tags=None, folder=None):
        self.asked.append(question)
        found = "peering" in question.lower()
        return Answer(question, ("From your notes: " if found else "I could not find ") + question, found)


def test_follow_up_questions_are_read_with_the_previous_one_only_when_they_refer_back(tmp_path):
    from azchat.apps.service import is_follow_up

    svc = NotesService(tmp_path, tmp_path / "index")
    svc._retriever = stub = StubRetriever()
    ans = svc.ask("and how do I delete it?", previous=["What is VNet peering?"])
    assert ans.found and ans.question == "and how do I delete it?"
    assert ans.answer.startswith("(Read as a follow-up to: What is VNet peering?)")
    assert stub.asked[-1] == "What is VNet peering? and how do I delete it?"
    # a new topic is not glued to the last question: the notes' silence is reported as it is
    ans = svc.ask("What is the best recipe for banana bread with walnuts?", previous=["What is VNet peering?"])
    assert not ans.found and len(stub.asked) == 3
    assert not svc.ask("and how do I delete it?").found           # no conversation yet
    assert svc.ask("peering costs?", previous=["x"]).answer == "From your notes: peering costs?"
    assert is_follow_up("Und wie lösche ich das?") and is_follow_up("what about the firewall?")
    assert not is_follow_up("How do I configure a network security group for my web servers today?")


def test_cli_and_service_refuse_a_missing_notes_folder_alike(tmp_path, capsys):
    """One check (changes.check_notes_or_index): no notes folder and no index gives the same clear error."""
    from azchat.apps.cli import main
    from azchat.errors import NotesNotFoundError

    missing = tmp_path / "no-notes"
    with pytest.raises(NotesNotFoundError, match="does not exist or is not a folder") as exc:
        NotesService(missing, tmp_path / "index", embedder=HashEmbedder()).open()
    assert main(["search", "peering", "--notes", str(missing), "--index", str(tmp_path / "index")]) == 2
    assert capsys.readouterr().err.strip() == f"azchat: {exc.value}"
    assert not (tmp_path / "index").exists()


def test_one_list_of_words_that_refer_back():
    """service.is_follow_up and the answer's "this command ..." rule read the same words (referring.py)."""
    from azchat.notes.referring import opens_referring_back, refers_back
    from azchat.apps.service import is_follow_up

    assert opens_referring_back("The above command lists every port.") and opens_referring_back("Damit läuft es.")
    assert not opens_referring_back("Install the package first.")
    assert refers_back("und was passiert hier?") and is_follow_up("und was passiert hier?")
    assert is_follow_up("Is the above free?") and not is_follow_up("Is the cloud shell free?")
