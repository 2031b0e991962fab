"""End to end with the real bundled model: CLI in-process, JSON shapes, citations, incremental rebuild."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from azchat.apps.cli import main

from conftest import REPO, assert_span, write, write_fixture_vault

pytestmark = pytest.mark.slow


def run_cli(capsys, *argv) -> tuple[int, dict | str]:
    code = main(list(argv))
    out = capsys.readouterr().out
    try:
        return code, json.loads(out)
    except ValueError:
        return code, out


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    notes = root / "notes"
    write_fixture_vault(notes)
    assert main(["index", "--notes", str(notes), "--index", str(root / "index"), "--json"]) == 0
    return notes, root / "index"


def test_index_json_shape(built, capsys):
    notes, index = built
    code, out = run_cli(capsys, "index", "--notes", str(notes), "--index", str(index), "--json")
    assert code == 0
    assert {"notes", "chunks", "added", "updated", "removed", "unchanged", "skipped", "warnings",
            "seconds"} <= set(out)
    assert (out["notes"], out["unchanged"], out["added"]) == (4, 4, 0)
    # the first build wrote the refusal's word-frequency table beside the generations (once per index folder)
    from azchat.notes import language
    assert language.table_path(index).is_file()


def test_real_model_top_hit_and_citation_lines(built, capsys):
    notes, index = built
    code, out = run_cli(capsys, "search", "how do I connect two vnets to each other", "--notes", str(notes),
                        "--index", str(index), "--json", "-k", "3")
    assert code == 0 and out["query"].startswith("how do I")
    top = out["hits"][0]
    assert (top["path"], top["heading"]) == ("networking.md", "Networking Basics > Virtual Networks > Peering")
    assert (top["start_line"], top["end_line"]) == (17, 19)

    code, out = run_cli(capsys, "ask", "What does Azure Machine Learning's workspace do?", "--notes", str(notes),
                        "--index", str(index), "--json")
    assert code == 0 and out["found"] is True
    first = out["citations"][0]
    assert first["path"] == "ml/machine learning.md"
    assert "Centralized place to manage ML lifecycle" in first["snippet"]
    assert (first["start_line"], first["end_line"]) == (6, 6)
    for c in out["citations"]:
        assert_span(notes, c["path"], c["start_line"], c["end_line"], c["snippet"])


def test_german_question_and_crlf_note(built, capsys):
    notes, index = built
    _, out = run_cli(capsys, "ask", "Wie bekommt ein Dienst eine private IP-Adresse?", "--notes", str(notes),
                     "--index", str(index), "--json")
    assert out["found"] and out["citations"][0]["path"] == "dns.md"
    _, out = run_cli(capsys, "ask", "how many copies does locally redundant storage keep?", "--notes", str(notes),
                     "--index", str(index), "--json")
    c = out["citations"][0]
    assert c["path"] == "storage/storage.md" and c["start_line"] == 8
    assert_span(notes, c["path"], c["start_line"], c["end_line"], c["snippet"])


def test_unrelated_question_is_refused(built, capsys):
    notes, index = built
    _, out = run_cli(capsys, "ask", "what is a good recipe for lasagna", "--notes", str(notes),
                     "--index", str(index), "--json")
    assert out["found"] is False and out["citations"] == []


def test_ask_updates_a_stale_index_first(built, capsys, tmp_path):
    notes, index = built
    write(notes, "bastion.md", "# Bastion\n\nAzure Bastion gives RDP and SSH access through the browser.\n")
    try:
        _, out = run_cli(capsys, "ask", "How can I RDP through the browser?", "--notes", str(notes),
                         "--index", str(index), "--json")
        assert out["citations"][0]["path"] == "bastion.md"
    finally:
        (notes / "bastion.md").unlink()
        main(["index", "--notes", str(notes), "--index", str(index), "--json"])
        capsys.readouterr()


def test_errors_are_one_sentence_without_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run([sys.executable, "-m", "azchat", "ask", "x", "--notes", str(tmp_path / "missing"),
                           "--index", str(tmp_path / "idx")], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert proc.returncode == 2
    assert proc.stderr.startswith("azchat: Notes folder") and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "azchat", "index", "--notes", str(REPO / "notes"),
                           "--index", str(tmp_path / "idx"), "--model", "no-such/model"],
                          capture_output=True, text=True, cwd=tmp_path, env=env)
    assert proc.returncode == 5 and "Unknown model" in proc.stderr and "Traceback" not in proc.stderr


def test_shipped_notes_answer_about_azure_machine_learning(tmp_path, capsys):
    import shutil

    notes = tmp_path / "notes"
    shutil.copytree(REPO / "notes", notes)
    code, out = run_cli(capsys, "ask", "What is Azure Machine Learning used for?", "--notes", str(notes),
                        "--index", str(tmp_path / "index"), "--json")
    assert code == 0 and out["found"]
    assert any("Machine Learning" in c["path"] for c in out["citations"])
    for c in out["citations"]:
        assert_span(notes, c["path"], c["start_line"], c["end_line"], c["snippet"])
    # edit one note: exactly one note is updated, one chunk re-embedded, the rest unchanged
    code, out = run_cli(capsys, "index", "--notes", str(notes), "--index", str(tmp_path / "index"), "--json")
    assert out["unchanged"] == out["notes"] >= 13 and out["embedded"] == 0
    storage = notes / "az104 - Storage Accounts.md"
    storage.write_text(storage.read_text(encoding="utf-8") + "\nA closing line about immutable blob storage.\n",
                       encoding="utf-8")
    code, out = run_cli(capsys, "index", "--notes", str(notes), "--index", str(tmp_path / "index"), "--json")
    assert code == 0
    assert (out["updated"], out["added"], out["removed"], out["unchanged"]) == (1, 0, 0, out["notes"] - 1)
    assert 1 <= out["embedded"] <= 2
    code, out = run_cli(capsys, "search", "immutable blob storage closing line", "--notes", str(notes),
                        "--index", str(tmp_path / "index"), "--json", "-k", "1")
    assert out["hits"][0]["path"] == "az104 - Storage Accounts.md"
    assert_span(notes, out["hits"][0]["path"], out["hits"][0]["start_line"], out["hits"][0]["end_line"],
                "A closing line about immutable blob storage.")


def test_without_notes_the_index_reads_the_folder_it_was_built_from(built, capsys, tmp_path, monkeypatch):
    """`azchat index --notes ~/vault` then `azchat ask ...` in a folder that has some other ./notes: the
    question is answered from ~/vault, and the index is never rebuilt from ./notes."""
    notes, index = built
    monkeypatch.delenv("AZCHAT_NOTES", raising=False)
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "notes", "other.md", "# Sourdough\n\nFeed the starter with rye flour every morning.\n")
    _, out = run_cli(capsys, "ask", "How do I peer two virtual networks?", "--index", str(index), "--json")
    assert out["found"] and out["citations"][0]["path"] == "networking.md"
    _, out = run_cli(capsys, "search", "rye flour starter", "--index", str(index), "--json")
    assert all(h["path"] != "other.md" for h in out["hits"])
    # an edit in the recorded folder is picked up by a bare `azchat index`
    write(notes, "bastion.md", "# Bastion\n\nAzure Bastion gives RDP and SSH access through the browser.\n")
    try:
        _, stats = run_cli(capsys, "index", "--index", str(index), "--json")
        assert stats["added"] == 1 and stats["notes"] == len(list(notes.rglob("*.md")))
    finally:
        (notes / "bastion.md").unlink()
        main(["index", "--notes", str(notes), "--index", str(index), "--json"])
        capsys.readouterr()
    # given explicitly, another folder still wins
    _, stats = run_cli(capsys, "index", "--notes", str(tmp_path / "notes"), "--index", str(tmp_path / "idx2"),
                       "--json")
    assert stats["notes"] == 1


def test_a_blank_question_is_a_clear_error_and_an_early_exit_never_aborts(built, tmp_path):
    """A blank question is refused before anything loads; a folder filter that matches no note is refused just
    after the index opens, while the ONNX session is still being built in the background: a clear exit 2, not
    the SIGABRT (134) of a daemon thread killed inside onnxruntime."""
    notes, index = built
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    run = lambda *argv: subprocess.run([sys.executable, "-m", "azchat", *argv, "--notes", str(notes),  # noqa: E731
                                        "--index", str(index)], capture_output=True, text=True, env=env)
    for argv in (["ask", "  "], ["search", ""]):
        proc = run(*argv)
        assert proc.returncode == 2 and proc.stderr.startswith("azchat: The ") and "empty" in proc.stderr
    proc = run("ask", "how do I peer networks", "--folder", "no/such/folder", "--json")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("azchat: No note is in the folder 'no/such/folder'. Folders: ml, storage")
    proc = run("search", "peering", "--tag", "nosuchtag")
    assert proc.returncode == 2 and "No note has the tag 'nosuchtag'. Tags in your notes: " in proc.stderr
    proc = run("search", "peering", "-k", "0")
    assert proc.returncode == 2 and "k must be between 1 and 50, not 0." in proc.stderr
