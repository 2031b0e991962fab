"""`azchat serve --watch` for real (subprocess, real model): a note saved into the vault is answered by the
running chat without a restart, a deleted one stops being cited, and the server stops promptly on a signal."""
from __future__ import annotations

import signal
import subprocess
import time

import pytest

from conftest import GERMAN_NOTE, NETWORK_NOTE, eventually, start_serve, write

pytestmark = pytest.mark.slow

QUOKKA_NOTE = """---
title: Balcony animals
tags: [pets]
---
## Quokka feeding

The quokka colony on the balcony gets three slices of cucumber every morning at seven.
"""
QUESTION = "How many slices of cucumber does the quokka colony get?"


def stop(proc, sig, name: str) -> int:
    """Send the signal; the exit code once the server stopped, or fail the test after 30 s."""
    proc.send_signal(sig)
    try:
        return proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"azchat serve --watch did not stop within 30 s of {name}")


def cited(answer: dict) -> set[str]:
    return {c["path"] for c in answer["citations"]} if answer["found"] else set()


def test_serve_watch_answers_a_new_note_forgets_a_deleted_one_and_stops_on_ctrl_c(tmp_path):
    from gradio_client import Client

    notes = tmp_path / "notes"
    write(notes, "networking.md", NETWORK_NOTE)
    write(notes, "dns.md", GERMAN_NOTE)
    proc, ready, err = start_serve(tmp_path, notes, "--watch")
    url = ready["url"]
    try:
        client = Client(url, download_files=False, verbose=False)
        search = lambda: {h["path"] for h in client.predict("quokka cucumber", 5, api_name="/search")["hits"]}
        ask = lambda: client.predict(QUESTION, api_name="/ask")

        assert "pets/balcony.md" not in cited(ask()) and "pets/balcony.md" not in search()
        status = client.predict(api_name="/status")
        assert status["notes"] == 2

        write(notes, "pets/balcony.md", QUOKKA_NOTE)
        answer = eventually(lambda: (a := ask())["found"] and "pets/balcony.md" in cited(a) and a)
        assert answer, f"the new note never reached the chat:\n{err.read_text()[-2000:]}"
        assert "three slices of cucumber" in answer["answer"]
        c = next(c for c in answer["citations"] if c["path"] == "pets/balcony.md")
        assert (c["heading"], c["start_line"]) == ("Quokka feeding", 7)
        assert "pets/balcony.md" in search()
        assert client.predict(api_name="/status")["notes"] == 3
        assert client.predict("pets/balcony.md", 7, api_name="/section")["heading"].endswith("Quokka feeding")

        (notes / "pets" / "balcony.md").unlink()
        gone = eventually(lambda: "pets/balcony.md" not in search() and "pets/balcony.md" not in cited(ask()))
        assert gone, f"the deleted note is still cited:\n{err.read_text()[-2000:]}"
        assert client.predict(api_name="/status")["notes"] == 2
        assert client.predict("peering two virtual networks", 1, api_name="/search")["hits"][0]["path"] \
            == "networking.md"                                       # the rest is still answered
    finally:
        code = stop(proc, signal.SIGINT, "Ctrl-C")   # the watcher is stopped, the server exits cleanly
    assert code == 0, err.read_text()[-2000:]
    assert "Traceback" not in err.read_text()


def test_serve_watch_stops_on_sigterm_while_a_build_is_pending(tmp_path):
    notes = tmp_path / "notes"
    write(notes, "networking.md", NETWORK_NOTE)
    proc, _, err = start_serve(tmp_path, notes, "--watch")
    write(notes, "pets/balcony.md", QUOKKA_NOTE)        # the watcher is debouncing or building now
    time.sleep(0.3)
    code = stop(proc, signal.SIGTERM, "SIGTERM")
    # SIGTERM stops it like Ctrl-C: the server closes, the watcher is stopped, exit 0 without a traceback
    assert code == 0, err.read_text()[-2000:]
    assert "Traceback" not in err.read_text()
    # the index is whole: it opens, with or without the note that was being added
    from azchat.index.store import load_generation

    gen = load_generation(tmp_path / "index")                  # checks every file against its checksum
    assert {c.path for c in gen.chunks} in ({"networking.md"}, {"networking.md", "pets/balcony.md"})
