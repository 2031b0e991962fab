"""Watch mode: saves, renames and deletes reach the index after a short debounce; temp files never do."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from azchat.index.embedding import HashEmbedder
from azchat.errors import IndexLockedError
from azchat import Retriever
from azchat.index.store import build_lock, load_generation
from azchat.index.watch import Watcher, is_note_path

from conftest import CTRL_C_REACHES_CHILD, REPO, write

DEBOUNCE = 0.3


def wait_for(condition, timeout: float = 20.0):
    """Poll until condition() is truthy (the watcher works in its own thread); fail after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout}s")


def indexed(index: Path) -> dict[str, str]:
    try:
        gen = load_generation(index)
    except Exception:
        return {}
    out: dict[str, str] = {}
    for c in gen.chunks:
        out[c.path] = out.get(c.path, "") + c.text + "\n"
    return out


@pytest.fixture
def watching(vault, tmp_path):
    updates, errors = [], []
    w = Watcher(vault, tmp_path / "index", embedder=HashEmbedder(), debounce=DEBOUNCE,
                on_update=updates.append, on_error=errors.append)
    w.start()
    wait_for(lambda: updates)                       # the initial build
    yield w, vault, tmp_path / "index", updates, errors
    w.stop()


def test_create_modify_rename_delete_reach_the_index(watching):
    w, notes, index, updates, errors = watching
    assert updates[0].added == 4

    write(notes, "new note.md", "# New\n\nquuxcreated text\n")
    wait_for(lambda: "quuxcreated" in indexed(index).get("new note.md", ""))

    (notes / "new note.md").write_text("# New\n\nquuxmodified text\n")
    wait_for(lambda: "quuxmodified" in indexed(index).get("new note.md", ""))
    assert "quuxcreated" not in indexed(index)["new note.md"]

    os.rename(notes / "new note.md", notes / "renamed.md")
    wait_for(lambda: "renamed.md" in indexed(index) and "new note.md" not in indexed(index))

    (notes / "renamed.md").unlink()
    wait_for(lambda: "renamed.md" not in indexed(index))

    os.rename(notes / "storage", notes / "archive")        # a whole folder moves
    wait_for(lambda: "archive/storage.md" in indexed(index) and "storage/storage.md" not in indexed(index))

    (notes / "sub").mkdir()
    write(notes, "sub/deep.md", "# Deep\n\nquuxdeep\n")       # a note in a folder created after the start
    wait_for(lambda: "quuxdeep" in indexed(index).get("sub/deep.md", ""))
    assert not errors


def test_an_atomic_save_through_a_temp_file_is_seen(watching):
    w, notes, index, updates, errors = watching
    tmp = notes / ".networking.md.tmp123"
    tmp.write_text("# Networking\n\nquuxatomic replaced by rename\n")
    os.replace(tmp, notes / "networking.md")
    wait_for(lambda: "quuxatomic" in indexed(index).get("networking.md", ""))


@pytest.mark.parametrize("name", [".#note.md", "note.md~", "note.md.swp", ".note.md.swp", "4913", "note.tmp",
                                  "#note.md#", ".obsidian/workspace.md", ".trash/old.md", "image.png",
                                  "sub/.hidden/x.md", "../outside.md"])
def test_temp_hidden_and_foreign_files_are_ignored(name, tmp_path):
    assert not is_note_path(str(tmp_path / name), str(tmp_path))
    w = Watcher(tmp_path, tmp_path / "index", embedder=HashEmbedder())
    w.notify(str(tmp_path / name))
    assert not w._dirty


@pytest.mark.parametrize("name", ["note.md", "Sub Folder/Ä & b.markdown", "x.MDX"])
def test_notes_are_watched(name, tmp_path):
    assert is_note_path(str(tmp_path / name), str(tmp_path))


def test_a_burst_of_saves_becomes_one_build_and_temp_files_none(vault, tmp_path):
    updates = []
    w = Watcher(vault, tmp_path / "index", embedder=HashEmbedder(), debounce=0.6, on_update=updates.append)
    with w:
        wait_for(lambda: updates)
        builds, reported = w.builds, len(updates)
        for name in (".#a.md", "a.md~", "4913", "b.md.swp", ".obsidian/ws.md", "pic.png"):
            write(vault, name, "temp quuxtemp\n")
        for i in range(10):
            write(vault, f"burst/n{i}.md", f"# N{i}\n\nquuxburst {i}\n")
        wait_for(lambda: len(updates) > reported)       # on_update runs after the build has finished
        assert len([p for p in indexed(tmp_path / "index") if p.startswith("burst/")]) == 10
        assert w.builds == builds + 1 and updates[-1].added == 10
        assert "quuxtemp" not in "".join(indexed(tmp_path / "index").values())


def test_a_note_written_in_pieces_is_indexed_once_whole(vault, tmp_path):
    seen = []
    index = tmp_path / "index"

    def on_update(stats):
        seen.append(indexed(index).get("slow.md"))

    w = Watcher(vault, index, embedder=HashEmbedder(), debounce=0.6, on_update=on_update)
    with w:
        wait_for(lambda: seen)
        with open(vault / "slow.md", "w") as fh:
            for part in range(5):
                fh.write(f"line {part} quuxpart{part}\n")
                fh.flush()
                time.sleep(0.1)
        wait_for(lambda: "quuxpart4" in (indexed(index).get("slow.md") or ""))
    assert [s for s in seen if s is not None and "quuxpart4" not in s] == []    # never half a note


def test_on_update_lets_a_running_app_swap_its_retriever(vault, tmp_path):
    index = tmp_path / "index"
    fake = HashEmbedder()
    live: dict[str, Retriever] = {}
    w = Watcher(vault, index, embedder=fake, debounce=DEBOUNCE,
                on_update=lambda stats: live.__setitem__("r", Retriever(index, embedder=fake)))
    with w:
        wait_for(lambda: "r" in live)
        first = live["r"]
        write(vault, "bastion.md", "# Bastion\n\nquuxbastion gives browser RDP\n")
        wait_for(lambda: live["r"] is not first)
        assert live["r"].search("quuxbastion", k=1)[0].path == "bastion.md"


def test_a_failed_update_is_reported_and_the_watcher_keeps_going(vault, tmp_path):
    index = tmp_path / "index"
    updates, errors = [], []
    w = Watcher(vault, index, embedder=HashEmbedder(), debounce=DEBOUNCE, lock_wait=0.2,
                on_update=updates.append, on_error=errors.append)
    with w:
        wait_for(lambda: updates)
        with build_lock(index):                      # someone else holds the index
            write(vault, "one.md", "# One\n\nquuxone\n")
            wait_for(lambda: errors)
        assert isinstance(errors[0], IndexLockedError)
        write(vault, "two.md", "# Two\n\nquuxtwo\n")
        wait_for(lambda: {"one.md", "two.md"} <= set(indexed(index)))


def test_an_on_update_that_fails_is_reported_and_the_watcher_keeps_going(vault, tmp_path):
    """`serve --watch` reloads its index in on_update; one failed reload must not stop the watching."""
    index = tmp_path / "index"
    updates, errors, logged = [], [], []

    def on_update(stats):
        updates.append(stats)
        if len(updates) == 2:
            raise RuntimeError("cannot open the new index")

    w = Watcher(vault, index, embedder=HashEmbedder(), debounce=DEBOUNCE, on_update=on_update,
                on_error=errors.append, log=logged.append)
    with w:
        wait_for(lambda: len(updates) == 1)
        write(vault, "one.md", "# One\n\nquuxone\n")
        wait_for(lambda: errors)
        write(vault, "two.md", "# Two\n\nquuxtwo\n")
        wait_for(lambda: len(updates) == 3)
        assert w._crashed is None
    assert [str(e) for e in errors] == ["cannot open the new index"]
    assert any("cannot open the new index" in m for m in logged)


def test_changes_without_file_events_are_caught_by_the_periodic_check(vault, tmp_path):
    index = tmp_path / "index"
    updates = []
    w = Watcher(vault, index, embedder=HashEmbedder(), debounce=DEBOUNCE, rescan_seconds=0.5,
                on_update=updates.append)
    with w:
        wait_for(lambda: updates)
        w._observer.stop()                           # events are lost from now on
        w._observer.join()
        write(vault, "missed.md", "# Missed\n\nquuxmissed\n")
        wait_for(lambda: "missed.md" in indexed(index))


CLI_CHILD = textwrap.dedent("""
    import sys
    import azchat.index.embedding
    from azchat.index.embedding import HashEmbedder
    azchat.index.embedding.load_embedder = lambda model=None: HashEmbedder()
    from azchat.apps.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def test_cli_watch_prints_one_json_object_per_update_and_stops_cleanly_on_ctrl_c(vault, tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CLI_CHILD)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen([sys.executable, str(script), "watch", "--notes", str(vault), "--index",
                             str(tmp_path / "index"), "--json", "--debounce", "0.3"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            **CTRL_C_REACHES_CHILD)
    lines: list[dict] = []
    reader = threading.Thread(target=lambda: [lines.append(json.loads(l)) for l in proc.stdout], daemon=True)
    reader.start()
    try:
        wait_for(lambda: lines)
        assert lines[0]["added"] == 4 and "time" in lines[0]
        write(vault, "cli.md", "# CLI\n\nquuxcli\n")
        wait_for(lambda: len(lines) >= 2)
        assert (lines[1]["added"], lines[1]["notes"]) == (1, 5)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Stopped watching." in err and "Traceback" not in err


def test_an_index_swapped_by_another_indexer_is_reported(vault, tmp_path):
    from azchat import build_index

    index = tmp_path / "index"
    fake = HashEmbedder()
    updates = []
    w = Watcher(vault, index, embedder=fake, debounce=DEBOUNCE, rescan_seconds=0.5, on_update=updates.append)
    with w:
        wait_for(lambda: updates)
        w._observer.stop()
        w._observer.join()
        write(vault, "outside-run.md", "# Run\n\nquuxrun\n")
        build_index(vault, index, embedder=fake)         # `azchat index` in another terminal
        wait_for(lambda: len(updates) >= 2)
        assert "outside-run.md" in indexed(index)


def test_cli_watch_on_a_missing_folder_is_a_clear_error(tmp_path, capsys):
    from azchat.apps.cli import main

    code = main(["watch", "--notes", str(tmp_path / "missing"), "--index", str(tmp_path / "index")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("azchat: Notes folder") and "Traceback" not in err


def test_a_note_written_non_stop_is_still_indexed_after_max_delay(vault, tmp_path):
    index = tmp_path / "index"
    updates = []
    w = Watcher(vault, index, embedder=HashEmbedder(), debounce=0.5, max_delay=1.5, on_update=updates.append)
    with w:
        wait_for(lambda: updates)
        stop = threading.Event()

        def scribble():
            i = 0
            while not stop.is_set():
                with open(vault / "log.md", "a") as fh:
                    fh.write(f"entry {i} quuxlog\n")
                i += 1
                time.sleep(0.1)                      # never quiet for the 0.5 s debounce
        t = threading.Thread(target=scribble)
        t.start()
        try:
            wait_for(lambda: "quuxlog" in indexed(index).get("log.md", ""))
        finally:
            stop.set()
            t.join()
