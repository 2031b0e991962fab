"""Crash safety: SIGKILL at random points of a build, damaged index files, two indexers at once."""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from azchat import build_index
from azchat.apps.cli import main
from azchat.index.embedding import HashEmbedder
from azchat.errors import IndexCorruptError, IndexLockedError
from azchat import Retriever
from azchat.index.store import build_lock, current_folder, load_generation

from conftest import REPO, write

# A real build in a child process. The harness (not azchat) slows embedding and every fsync a little, so a
# kill at a random moment lands anywhere: reading notes, embedding, writing files, renaming, swapping CURRENT.
CHILD = textwrap.dedent("""
    import random, sys, time
    import bm25s, faiss                      # imported before "ready": the kill should hit the build itself
    import azchat.index.store as store
    from azchat import build_index
    from azchat.index.embedding import HashEmbedder

    real_fsync = store.fsync_file
    def slow_fsync(path):
        time.sleep(random.uniform(0, 0.015))
        real_fsync(path)
    store.fsync_file = slow_fsync

    class SlowEmbedder(HashEmbedder):
        def embed(self, texts, progress=None):
            time.sleep(random.uniform(0, 0.08))
            return super().embed(texts, progress)

    notes, index, wait = sys.argv[1], sys.argv[2], float(sys.argv[3])
    print("ready", flush=True)
    if len(sys.argv) > 4:        # fork server: every "go" forks one build, "reap" collects it after the kill
        import os
        for line in sys.stdin:
            if line.strip() == "go":
                pid = os.fork()
                if pid == 0:
                    random.seed(os.getpid())
                    build_index(notes, index, embedder=SlowEmbedder(), wait_seconds=wait)
                    os._exit(0)
                print(pid, flush=True)
            elif line.strip() == "reap":
                _, status = os.waitpid(pid, 0)
                print("killed" if os.WIFSIGNALED(status) else f"exit {os.waitstatus_to_exitcode(status)}",
                      flush=True)
            else:
                break
        sys.exit(0)
    if sys.stdin.readline().strip() != "go":
        sys.exit(0)
    stats = build_index(notes, index, embedder=SlowEmbedder(), wait_seconds=wait, log=lambda m: print(m, flush=True))
    print("done", stats.added, stats.updated, stats.removed, flush=True)
""")

VERSION = re.compile(r"ver_(\d+)")


def _note(name: str, version: int) -> str:
    return (f"# {name}\n\n## Part one\n\n{name} first part text ver_{version} about networks and storage.\n\n"
            f"## Part two\n\nsecond part of {name} ver_{version} with more words.\n")


def _index_state(index: Path, fake: HashEmbedder) -> dict[str, int]:
    """{path: version} of the live index; asserts each note is whole and vectors match their chunks."""
    gen = load_generation(index)
    state: dict[str, set[int]] = {}
    for row, chunk in enumerate(gen.chunks):
        versions = {int(v) for v in VERSION.findall(chunk.text)}
        state.setdefault(chunk.path, set()).update(versions)
        np.testing.assert_allclose(gen.vectors[row], fake.embed([chunk.embed_text])[0], atol=1e-3)
    assert all(len(v) == 1 for v in state.values()), state      # never half old, half new
    return {path: v.pop() for path, v in state.items()}


class Child:
    def __init__(self, script: Path, notes: Path, index: Path, wait: float = 0.0):
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        self.proc = subprocess.Popen([sys.executable, str(script), str(notes), str(index), str(wait)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)

    def ready(self) -> None:
        assert self.proc.stdout.readline().strip() == "ready"

    def go(self) -> None:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()


@pytest.mark.parametrize("segments", [False, True])
def test_sigkill_at_random_points_never_breaks_the_index(tmp_path, segments, monkeypatch):
    """segments=True: every update is a small segment beside a base (segments.py), merged whenever the segment
    or the deleted base rows pass 16 rows, so kills also land in segment writes and merges."""
    if segments:
        monkeypatch.setenv("AZCHAT_SEGMENT_FROM", "0")
        monkeypatch.setenv("AZCHAT_SEGMENT_MAX_ROWS", "16")
    rng = random.Random(1234)
    notes, index = tmp_path / "notes", tmp_path / "index"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    fake = HashEmbedder()
    vault = {f"note{i}.md": 0 for i in range(12)}
    for name, v in vault.items():
        write(notes, name, _note(name, v))
    build_index(notes, index, embedder=fake)
    committed = dict(vault)
    assert _index_state(index, fake) == committed

    iterations, killed_mid_build, killed_while_writing, advanced = 40, 0, 0, 0
    based = merged = 0
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen([sys.executable, str(script), str(notes), str(index), "0", "fork-server"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    assert server.stdout.readline().strip() == "ready"

    def ask(command: str) -> str:
        server.stdin.write(command + "\n")
        server.stdin.flush()
        return server.stdout.readline().strip()

    for it in range(1, iterations + 1):
        # change the vault: edit a few notes, sometimes add or delete one
        for name in rng.sample(sorted(vault), 3):
            vault[name] = it
        if it % 5 == 0:
            vault[f"extra{it}.md"] = it
        if it % 7 == 0:
            gone = rng.choice(sorted(vault))
            del vault[gone]
            (notes / gone).unlink()
        for name, v in vault.items():
            write(notes, name, _note(name, v))
        expected_new = dict(vault)

        pid = int(ask("go"))
        time.sleep(rng.uniform(0.0, 0.45))
        if not (segments and it % 3 == 0):   # with segments every third build lands: segments and merges
            os.kill(pid, signal.SIGKILL)  # safe: the server has not reaped it, so the pid is still its child
        outcome = ask("reap")
        assert outcome in ("killed", "exit 0"), outcome
        killed_mid_build += outcome == "killed"

        if list(index.glob(".tmp-gen-*")) or len(list(index.glob("gen-*"))) > 2:
            killed_while_writing += 1                   # it died between its first write and the prune
        state = _index_state(index, fake)               # the index still opens, whole
        has_base = bool(load_generation(index).manifest.get("base"))
        based += has_base
        merged += not has_base
        assert state in (committed, expected_new), (it, state)
        advanced += state != committed
        committed = state
        r = Retriever(index, embedder=fake)
        top = r.search(f"ver_{max(state.values())}", k=3)
        assert top and VERSION.search(top[0].text)
    server.stdin.close()
    server.wait(timeout=30)
    server.stdout.close()

    print(f"segments {based} merged {merged}; {killed_mid_build} of {iterations} kills interrupted a build, "
          f"{killed_while_writing} while writing; "
          f"the index advanced {advanced} times")
    assert killed_mid_build >= iterations // 3 and killed_while_writing >= 3   # kills hit every phase
    final = build_index(notes, index, embedder=fake)    # the next build completes and catches up
    assert _index_state(index, fake) == vault
    assert final.notes == len(vault)
    gens = [p.name for p in index.glob("gen-*")]
    assert len(gens) <= (4 if segments else 2) and current_folder(index).name in gens   # + their bases
    if segments:
        assert based >= 3 and merged >= 3, (based, merged)      # both kinds of generation were live
    assert not list(index.glob(".tmp-*")) and not list(index.glob(".CURRENT.*"))


def _files_of(index: Path) -> list[str]:
    folder = current_folder(index)
    return ["CURRENT"] + sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif how == "flip":
        i = len(data) // 2
        path.write_bytes(data[:i] + bytes([data[i] ^ 0x20]) + data[i + 1:])
    else:
        path.write_bytes(b"")


@pytest.fixture
def built(tmp_path, vault):
    fake = HashEmbedder()
    build_index(vault, tmp_path / "pristine", embedder=fake)
    return vault, tmp_path / "pristine", fake


@pytest.mark.parametrize("how", ["truncate", "flip", "empty"])
def test_every_damaged_index_file_is_a_clear_error_and_a_rebuild_recovers(built, tmp_path, how, capsys,
                                                                          monkeypatch):
    vault, pristine, fake = built
    monkeypatch.setattr("azchat.index.embedding.load_embedder", lambda model=None, index_dir=None: fake)
    files = _files_of(pristine)
    assert {"CURRENT", "manifest.json", "chunks/text.bin", "chunks/text.off.npy", "vectors.npy", "dense.faiss"} <= set(files)
    assert any(f.startswith("bm25/") for f in files)
    for name in files:
        index = tmp_path / f"damaged-{how}-{name.replace('/', '_')}"
        shutil.copytree(pristine, index)
        target = index / name if name == "CURRENT" else index / current_folder(pristine).name / name
        _damage(target, how)

        with pytest.raises(IndexCorruptError, match=r"azchat index"):
            Retriever(index, embedder=fake)
        code = main(["search", "peering", "--notes", str(vault), "--index", str(index), "--json"])
        err = capsys.readouterr().err
        assert code == 3, (name, err)
        assert err.startswith("azchat: ") and "azchat index" in err and "Traceback" not in err
        assert err.count("\n") == 1, err                                  # one line

        stats = build_index(vault, index, embedder=fake)                 # no --full needed
        assert "unreadable" in stats.full_rebuild_reason, name
        assert Retriever(index, embedder=fake).search("peering", k=1)[0].path == "networking.md"


def test_an_index_without_checksums_still_opens(built, tmp_path):
    """Indexes written before checksums existed (no sha256 in the manifest or CURRENT) stay readable."""
    vault, pristine, fake = built
    folder = current_folder(pristine)
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["sha256"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (pristine / "CURRENT").write_text(folder.name + "\n")
    assert Retriever(pristine, embedder=fake).search("peering", k=1)[0].path == "networking.md"


def test_two_indexers_at_once_one_waits_and_the_index_is_whole(tmp_path):
    notes, index = tmp_path / "notes", tmp_path / "index"
    for i in range(20):
        write(notes, f"n{i}.md", _note(f"n{i}", 1))
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    a, b = Child(script, notes, index, wait=60), Child(script, notes, index, wait=60)
    a.ready(), b.ready()
    a.go(), b.go()
    outs = [p.proc.communicate(timeout=60) for p in (a, b)]
    assert [p.proc.returncode for p in (a, b)] == [0, 0], outs
    stdout = outs[0][0] + outs[1][0]
    assert "Waiting for another azchat indexer" in stdout
    assert sorted(line.split()[1] for line in stdout.splitlines() if line.startswith("done")) == ["0", "20"]
    assert _index_state(index, HashEmbedder()) == {f"n{i}.md": 1 for i in range(20)}


def test_a_second_indexer_that_will_not_wait_is_refused_clearly(vault, tmp_path, capsys, monkeypatch):
    index = tmp_path / "index"
    fake = HashEmbedder()
    monkeypatch.setattr("azchat.index.embedding.load_embedder", lambda model=None, index_dir=None: fake)
    build_index(vault, index, embedder=fake)
    write(vault, "new.md", "# New\n\nBastion hosts give browser RDP.\n")
    with build_lock(index):
        with pytest.raises(IndexLockedError):
            build_index(vault, index, embedder=fake)
        code = main(["index", "--notes", str(vault), "--index", str(index), "--wait", "0.3"])
        err = capsys.readouterr().err
        assert code == 4 and "Waiting for another azchat indexer" in err
        assert "Another azchat indexer is updating" in err and "Traceback" not in err
        # a question while someone else indexes is answered from the current index, with a note
        code = main(["search", "peering", "--notes", str(vault), "--index", str(index), "--json"])
        captured = capsys.readouterr()
        assert code == 0 and json.loads(captured.out)["hits"][0]["path"] == "networking.md"
        assert "answering from the current index" in captured.err
    assert main(["index", "--notes", str(vault), "--index", str(index), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["added"] == 1


def test_a_full_disk_or_unusable_index_folder_is_one_clear_sentence(vault, tmp_path, capsys, monkeypatch):
    fake = HashEmbedder()
    monkeypatch.setattr("azchat.index.embedding.load_embedder", lambda model=None, index_dir=None: fake)
    index = tmp_path / "index"
    build_index(vault, index, embedder=fake)
    before = current_folder(index)
    write(vault, "new.md", "# New\n\nquuxnew\n")
    import azchat.index.store as store

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(store.np, "save", full_disk)
    code = main(["index", "--notes", str(vault), "--index", str(index)])
    err = capsys.readouterr().err
    err = err.splitlines()[-1]
    assert code == 6 and err.startswith("azchat: Could not update the index") and "No space left" in err
    assert "previous index is unchanged" in err and "Traceback" not in err
    assert current_folder(index) == before and not list(index.glob(".tmp-*"))
    monkeypatch.undo()

    not_a_folder = tmp_path / "index-file"
    not_a_folder.write_text("I am a file")
    monkeypatch.setattr("azchat.index.embedding.load_embedder", lambda model=None, index_dir=None: fake)
    code = main(["index", "--notes", str(vault), "--index", str(not_a_folder)])
    err = capsys.readouterr().err
    assert code == 6 and err.startswith("azchat: Could not update the index") and err.count("\n") == 1


def test_a_reader_whose_generation_is_pruned_while_it_opens_reads_the_new_one(built, monkeypatch):
    """Two builds landing while a Retriever opens prune the generation it started reading (only the live and
    the previous one are kept): it opens the new live generation instead of failing."""
    vault, index, fake = built
    first = current_folder(index)
    from azchat.search import retrieval

    real_load, calls = retrieval.LexicalIndex.load, []

    def load_while_two_builds_land(folder, size):
        calls.append(folder)
        if len(calls) == 1:
            for i in range(2):
                write(vault, f"race-{i}.md", f"## Race {i}\n\nThe zebrafinch number {i} sings at dawn.\n")
                build_index(vault, index, embedder=fake)
            assert not first.exists()                      # pruned under the reader
        return real_load(folder, size)

    monkeypatch.setattr(retrieval.LexicalIndex, "load", load_while_two_builds_land)
    r = Retriever(index, embedder=fake)
    assert len(calls) == 2 and calls[0].parent == first
    assert r._gen.folder == current_folder(index) != first
    assert {c.path for c in r.chunks} >= {"race-0.md", "race-1.md"}
    assert r.search("zebrafinch sings at dawn", k=1)[0].path.startswith("race-")


def test_damage_found_while_opening_bm25_is_not_retried_when_no_build_landed(built, monkeypatch):
    vault, index, fake = built
    from azchat.search import retrieval

    calls = []

    def broken(folder, size):
        calls.append(folder)
        raise ValueError("bad bm25 params")

    monkeypatch.setattr(retrieval.LexicalIndex, "load", broken)
    with pytest.raises(IndexCorruptError, match=r"bad bm25 params.*azchat index"):
        Retriever(index, embedder=fake)
    assert len(calls) == 1


def test_a_build_killed_after_its_swap_leaves_a_generation_the_next_no_op_build_prunes(built, monkeypatch):
    vault, index, fake = built
    (vault / "extra.md").write_text("# Extra\n\nA second build so that a previous generation exists.\n")
    build_index(vault, index, embedder=fake)
    live, before = current_folder(index), sorted(p.name for p in index.glob("gen-*"))
    assert len(before) == 2
    # a third build killed between swapping CURRENT and pruning: its prune never ran
    monkeypatch.setattr("azchat.index.store.prune", lambda *a, **k: None)
    (vault / "extra.md").write_text("# Extra\n\nChanged once more, then the build dies before pruning.\n")
    build_index(vault, index, embedder=fake)
    monkeypatch.undo()
    (index / ".tmp-gen-crashed").mkdir()
    newest = current_folder(index)
    assert newest != live and len(list(index.glob("gen-*"))) == 3
    stats = build_index(vault, index, embedder=fake)     # nothing changed: no new generation, but it tidies
    assert stats.added == stats.updated == stats.removed == 0
    left = sorted(p.name for p in index.glob("gen-*"))
    assert left == sorted([newest.name, live.name])      # the live one and the one readers may still hold
    assert not list(index.glob(".tmp-gen-*"))
    assert "Changed once more" in " ".join(c.text for c in load_generation(index).chunks)
