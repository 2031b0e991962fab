"""`azchat mcp` for real: the SDK's own client starts it as a subprocess over stdio on a test vault indexed with
the real model, lists the tools and calls each; line numbers are checked against the file, stdout must carry
nothing but JSON-RPC, an edit to a note shows up in the next search, and the server exits when stdin closes."""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time

import anyio
import pytest

from conftest import NETWORK_NOTE, REPO, assert_span, file_lines, write

pytestmark = pytest.mark.slow

ENV = {"PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1"}
BIG = "# Big note\n\n" + "".join(f"line {i} of the big note about lighthouses\n" for i in range(3, 1201))


def copy_vault(real_index, tmp_path):
    notes, index, _ = real_index
    shutil.copytree(notes, tmp_path / "notes")      # copy2 keeps mtimes: the copied index is not stale
    shutil.copytree(index, tmp_path / "index")
    return tmp_path / "notes", tmp_path / "index"


def test_mcp_over_stdio_with_the_sdk_client(real_index, tmp_path):
    from mcp import Client, StdioServerParameters

    notes, index = copy_vault(real_index, tmp_path)
    write(notes, "big.md", BIG)              # new since the build: indexed (with its logs) while serving
    write(notes, "binary.md", b"\x00\x01 not text \xff" * 40)     # a file the index skips
    wire = tmp_path / "stdout.jsonl"
    server = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "azchat", "mcp", "--notes", str(notes),
                                               "--index", str(index)])
    params = StdioServerParameters(command="sh", args=["-c", f"{server} | tee {shlex.quote(str(wire))}"],
                                   env=ENV, cwd=str(tmp_path))

    async def session():
        with open(tmp_path / "stderr.txt", "w") as errlog:
            async with Client(params, read_timeout_seconds=300) as client:
                await run_checks(client, notes)

    async def run_checks(client, notes):
        listed = {t.name: t for t in (await client.list_tools()).tools}
        assert set(listed) == {"search", "ask", "get", "status"}
        assert all(t.annotations.read_only_hint is True for t in listed.values())

        async def call(name, **args):
            calls.append(name)
            return await client.call_tool(name, args)

        for _ in range(600):      # status answers at once; the other tools wait at most 45 s for the build
            if (await call("status")).structured_content["ready"]:
                break
            await anyio.sleep(0.5)
        else:
            pytest.fail("the index never became ready")

        # search: the CLI's hit shape, line spans that are the file's own lines
        r = await call("search", query="how do I peer two virtual networks", k=3)
        assert r.is_error is False
        out = r.structured_content
        assert set(out) == {"query", "hits", "truncated", "omitted_hits"} and len(out["hits"]) == 3
        top = out["hits"][0]
        assert set(top) == {"rank", "path", "title", "heading", "start_line", "end_line", "score", "text"}
        assert top["path"] == "networking.md" and top["heading"].endswith("Peering")
        for h in out["hits"]:
            assert_span(notes, h["path"], h["start_line"], h["end_line"], h["text"].splitlines()[0])

        # get: the same lines, numbered as on disk
        r = await call("get", path=top["path"], start_line=top["start_line"], end_line=top["end_line"])
        got = r.structured_content
        lines = file_lines(notes, top["path"])
        assert [x["line"] for x in got["lines"]] == list(range(top["start_line"], top["end_line"] + 1))
        assert [x["text"] for x in got["lines"]] == lines[top["start_line"] - 1:top["end_line"]]
        assert got["total_lines"] == len(lines) and got["truncated"] is False

        # caps: a 1200-line note comes back 400 lines at a time, with where to go on
        r = await call("get", path="big.md")
        big = r.structured_content
        assert len(big["lines"]) == 400 and big["truncated"] is True and big["next_start_line"] == 401
        assert big["lines"][-1] == {"line": 400, "text": "line 400 of the big note about lighthouses"}
        chunks = (await call("status")).structured_content["chunks"]
        assert chunks > 50                       # so that k=50 has 50 hits to give
        r = await call("search", query="lighthouses", k=50)
        found = r.structured_content
        assert r.is_error is False and len(found["hits"]) + found["omitted_hits"] == 50
        assert found["truncated"] is (found["omitted_hits"] > 0)     # what the size cap left out is said
        assert [h["rank"] for h in found["hits"]] == list(range(1, len(found["hits"]) + 1))

        # ask: an extractive answer with citations inside the file
        r = await call("ask", question="how do I peer two virtual networks")
        ans = r.structured_content
        assert ans["found"] is True and ans["citations"]
        for c in ans["citations"]:
            assert 1 <= c["start_line"] <= c["end_line"] <= len(file_lines(notes, c["path"]))

        # bad input and paths outside the notes folder: tool errors with a sentence, the server lives on
        outside = tmp_path / "outside.md"
        outside.write_text("# Outside\nsecret\n")
        not_indexed = "is not a note in the index: use a path that search returns."
        bad = [("search", {"query": ""}, "The query is empty: give a few words to search for."),
               ("search", {"query": "vnet", "k": 100000}, "k must be between 1 and 50, not 100000."),
               ("search", {"query": "vnet", "k": 51}, "k must be between 1 and 50, not 51."),
               ("search", {"query": "x" * 2001}, "The query is 2001 characters long; at most 2000 are allowed."),
               ("ask", {"question": "   "}, "The question is empty: give a few words to ask."),
               ("ask", {"question": "y" * 2001}, "The question is 2001 characters long; at most 2000 are allowed."),
               ("get", {"path": "../outside.md"}, "'../outside.md' is outside the notes folder or hidden."),
               ("get", {"path": str(outside)}, "is outside the notes folder: only paths relative to it are allowed."),
               ("get", {"path": "nope.md"}, "'nope.md' " + not_indexed),
               ("get", {"path": "binary.md"}, "'binary.md' " + not_indexed),
               ("get", {"path": "networking.md", "start_line": 9999}, "start_line 9999 is past the end of"),
               ("search", {"query": "vnet", "k": "lots"}, "validation error for searchArguments\nk\n")]
        for name, args, message in bad:
            r = await client.call_tool(name, args)
            calls.append(name)
            assert r.is_error is True, (name, args)
            assert message in r.content[0].text, (name, args, r.content[0].text)

        # status, and an edit that shows up in the next search
        st = (await call("status")).structured_content
        assert st["ready"] is True and st["notes"] == 5 and st["changed_since_build"]["count"] == 0
        note = notes / "networking.md"
        write(notes, "networking.md", NETWORK_NOTE + "\n## Wildlife\n\nThe quokka colony eats cucumber.\n")
        os.utime(note, ns=(time.time_ns(), time.time_ns() + 2_000_000_000))
        st = (await call("status")).structured_content
        assert st["changed_since_build"]["changed"] == ["networking.md"]
        r = await call("search", query="quokka colony cucumber", k=1)
        hit = r.structured_content["hits"][0]
        assert hit["path"] == "networking.md" and "quokka" in hit["text"]
        assert_span(notes, hit["path"], hit["start_line"], hit["end_line"], "quokka colony")
        assert (await call("status")).structured_content["changed_since_build"]["count"] == 0

    calls: list[str] = []
    anyio.run(session)
    # stdout carried only protocol: every line one JSON-RPC message (the build's logs went to stderr), and
    # one reply to each request: initialize, list_tools and every tool call above, in order
    sent = [json.loads(line) for line in wire.read_text().splitlines()]
    assert all(m["jsonrpc"] == "2.0" for m in sent)
    replies = [m for m in sent if "id" in m and ("result" in m or "error" in m)]
    assert len(replies) == len(calls) + 2
    assert [m["id"] for m in replies] == list(range(replies[0]["id"], replies[0]["id"] + len(replies)))


def test_mcp_answers_initialize_while_indexing_and_exits_when_stdin_closes(tmp_path):
    """No index yet: initialize is answered while the first build runs; closing stdin ends the process."""
    notes = tmp_path / "notes"
    write(notes, "networking.md", NETWORK_NOTE)
    proc = subprocess.Popen([sys.executable, "-m", "azchat", "mcp", "--notes", str(notes), "--index",
                             str(tmp_path / "index")], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=open(tmp_path / "stderr.txt", "w"), env={**os.environ, **ENV})
    try:
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                           "clientInfo": {"name": "test", "version": "1"}}}
        proc.stdin.write((json.dumps(init) + "\n").encode())
        proc.stdin.flush()
        reply = json.loads(proc.stdout.readline())
        assert reply["id"] == 1 and reply["result"]["serverInfo"]["name"] == "azchat"
        proc.stdin.write(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}\n')
        status = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "status", "arguments": {}}}
        proc.stdin.write((json.dumps(status) + "\n").encode())
        proc.stdin.flush()
        st = json.loads(proc.stdout.readline())["result"]["structuredContent"]
        assert st["ready"] is False and st["notes"] == 0     # the model is still loading: answered anyway
        proc.stdin.close()
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
