"""The `azchat` command's flags: one parser, each subcommand's options and help (cli.py runs them)."""
from __future__ import annotations

import argparse
from typing import Callable

from .. import __version__
from . import inputs

LOCK_WAIT = 60.0   # seconds `azchat index` waits for another indexer before giving up


def _notes_and_index(p: argparse.ArgumentParser) -> None:
    p.add_argument("--notes", help="notes folder (default $AZCHAT_NOTES, else the folder the index was "
                                   "built from, else ./notes)")
    p.add_argument("--index", help="index folder (default ./index, or $AZCHAT_INDEX)")


def _common(p: argparse.ArgumentParser) -> None:
    _notes_and_index(p)
    p.add_argument("--model", help="embedding model: name or folder (default: bundled all-MiniLM-L6-v2, "
                                   "or $AZCHAT_MODEL)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def _reranker(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reranker", metavar="NAME",
                   help="rerank the best 30 passages with this cross-encoder: a folder, or a name already in the "
                        "local Hugging Face cache (default $AZCHAT_RERANKER, else off; 'off' turns it off; "
                        "none ships with azchat)")


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tag", action="append", default=[], help="only notes with this tag (repeatable)")
    p.add_argument("--folder", help="only notes under this folder of the notes folder")


def build_parser(commands: dict[str, Callable]) -> argparse.ArgumentParser:
    """The parser; each subcommand's `func` is commands[its name]."""
    parser = argparse.ArgumentParser(prog="azchat", description="Ask questions of your markdown notes.")
    parser.add_argument("--version", action="version", version=f"azchat {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("index", help="build or update the index (only changed notes are re-embedded)")
    _common(p)
    p.add_argument("--full", action="store_true", help="rebuild everything from scratch")
    p.add_argument("--wait", type=float, default=LOCK_WAIT, metavar="SECONDS",
                   help=f"when another indexer is running, wait this long for it (default {LOCK_WAIT:g})")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="embed the chunks on a Ray cluster (pip install \"azchat[ray]\"): no ADDRESS starts a local "
                        "one, 'auto' joins the one running here, or a cluster address")
    p.add_argument("--ray-workers", type=int, default=None, metavar="N",
                   help="with --ray: embedding actors (default: one per CPU of the cluster)")
    p.set_defaults(func=commands["index"])

    p = sub.add_parser("search", help="show the best matching passages")
    _common(p)
    _reranker(p)
    _filters(p)
    p.add_argument("query")
    p.add_argument("-k", default=10, help=f"number of hits, 1-{inputs.MAX_K} (default 10)")
    p.set_defaults(func=commands["search"])

    p = sub.add_parser("ask", help="answer a question from your notes, with citations")
    _common(p)
    _reranker(p)
    _filters(p)
    p.add_argument("question")
    p.add_argument("--llm", action="store_true", help="a written answer from your own model endpoint, cited "
                                                      "like the quotes (AZCHAT_LLM_* or AZURE_OPENAI_*; README)")
    p.set_defaults(func=commands["ask"])

    p = sub.add_parser("serve", help="open the chat in your browser (Gradio app and API)")
    _common(p)
    _reranker(p)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 exposes it to your network)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--share", action="store_true", help="also open a public Gradio share link")
    p.add_argument("--watch", action="store_true", help="update the index while notes change; the chat "
                                                        "answers from the new index without a restart")
    from .workers import worker_count

    p.add_argument("--workers", type=worker_count, metavar="N",
                   help="answer the REST API and MCP (/api, /mcp) from N processes sharing the index; the chat "
                        "then runs in a process of its own on --chat-port")
    p.add_argument("--chat-port", type=int, metavar="PORT", help="with --workers: the chat's port (default +1)")
    p.add_argument("--no-chat", action="store_true", help="with --workers: serve no chat, only /api and /mcp")
    p.set_defaults(func=commands["serve"])

    p = sub.add_parser("mcp", help="MCP server for AI agents over stdio (search, ask, get, status)")
    _notes_and_index(p)
    p.add_argument("--model", help="embedding model: name or folder (default: the index's, or $AZCHAT_MODEL)")
    p.set_defaults(func=commands["mcp"])

    p = sub.add_parser("watch", help="keep the index up to date while notes change (Ctrl-C stops)")
    _common(p)
    p.add_argument("--debounce", type=float, default=1.0, metavar="SECONDS",
                   help="wait until changes have settled this long before updating (default 1)")
    p.add_argument("--polling", action="store_true", help="poll the folder instead of using file events "
                                                          "(network drives)")
    p.set_defaults(func=commands["watch"])

    p = sub.add_parser("eval", help="measure retrieval and answer quality on a question set or a BEIR folder")
    _common(p)
    _reranker(p)
    _filters(p)
    p.add_argument("questions", nargs="?", help="JSONL: {question, gold_files, answer_terms} per line")
    p.add_argument("--beir", metavar="DIR", help="a BEIR folder (corpus.jsonl, queries.jsonl, qrels) instead")
    p.add_argument("--work", metavar="DIR", help="where --beir makes a private folder for this run's notes and "
                                                 "index, removed when it ends (default: the system temp dir)")
    p.add_argument("--split", choices=["all", "dev", "test"], default="all",
                   help="evaluate all questions, or the dev/test part (every third line is test)")
    p.add_argument("-k", default=10, help="with --beir: the depth of nDCG@k; with a question file: how many ranked "
                                          "notes each --json row lists (default 10)")
    p.add_argument("--llm", action="store_true", help="score the written answers of your own model endpoint "
                                                      "instead of the extractive ones")
    p.set_defaults(func=commands["eval"])
    return parser
