"""The `azchat` command: parse flags, call the library, print text or JSON. No retrieval logic here."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__, config
from .errors import AzchatError, NotesNotFoundError


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--notes", help="notes folder (default ./notes, or $AZCHAT_NOTES)")
    p.add_argument("--index", help="index folder (default ./index, or $AZCHAT_INDEX)")
    p.add_argument("--model", help="embedding model: name or folder (default: bundled all-MiniLM-L6-v2, "
                                   "or $AZCHAT_MODEL)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tag", action="append", default=[], help="only notes with this tag (repeatable)")
    p.add_argument("--folder", help="only notes under this folder of the notes folder")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="azchat", description="Ask questions of your markdown notes.")
    parser.add_argument("--version", action="version", version=f"azchat {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("index", help="build or update the index (only changed notes are re-embedded)")
    _common(p)
    p.add_argument("--full", action="store_true", help="rebuild everything from scratch")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("search", help="show the best matching passages")
    _common(p)
    _filters(p)
    p.add_argument("query")
    p.add_argument("-k", type=int, default=10, help="number of hits (default 10)")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("ask", help="answer a question from your notes, with citations")
    _common(p)
    _filters(p)
    p.add_argument("question")
    p.set_defaults(func=cmd_ask)
    return parser


def _say(args, message: str) -> None:
    print(message, file=sys.stderr)


def _build(args, quiet: bool = False):
    from .indexing import build_index
    from .progress import ProgressBar

    return build_index(args.notes, args.index, full=getattr(args, "full", False), model=args.model,
                       progress=ProgressBar("Embedding"), log=lambda m: _say(args, m))


def _retriever(args):
    """Open the index, building or updating it first when it is missing or stale."""
    from .indexing import is_stale
    from .retrieval import Retriever

    notes, index = config.notes_dir(args.notes), config.index_dir(args.index)
    if not notes.is_dir() and not (index / "CURRENT").exists():
        raise NotesNotFoundError(f"Notes folder {notes} does not exist or is not a folder.")
    embedder = _prefetched_embedder(args, index)
    if notes.is_dir() and is_stale(notes, index):
        _say(args, f"Updating the index in {index} from {notes} ...")
        _build(args)
    if embedder is None and args.model:
        from .embedding import load_embedder

        embedder = load_embedder(args.model, index)
    return Retriever(index, embedder=embedder)


def _prefetched_embedder(args, index):
    """The index's ONNX embedder, its session already loading in the background; None if there is none."""
    from .embedding import light_enabled, load_embedder
    from .store import read_manifest

    if not light_enabled():
        return None
    try:
        manifest = read_manifest(index)
        embedder = load_embedder(args.model or (manifest or {}).get("model"), index) if manifest else None
    except AzchatError:
        return None    # the Retriever says what is wrong
    return embedder.prefetch() if hasattr(embedder, "prefetch") else None


def cmd_index(args) -> int:
    stats = _build(args)
    if args.json:
        print(json.dumps(stats.to_dict(), ensure_ascii=False))
        return 0
    print(f"{stats.notes} notes, {stats.chunks} chunks: {stats.added} added, {stats.updated} updated, "
          f"{stats.removed} removed, {stats.unchanged} unchanged; {stats.embedded} chunks embedded "
          f"in {stats.seconds:.1f}s.")
    for s in stats.skipped:
        print(f"  skipped {s['path']}: {s['reason']}")
    for w in stats.warnings:
        print(f"  warning {w['path']}: {w['message']}")
    return 0


def cmd_search(args) -> int:
    hits = _retriever(args).search(args.query, k=args.k, tags=args.tag or None, folder=args.folder)
    if args.json:
        print(json.dumps({"query": args.query, "hits": [h.to_dict() for h in hits]}, ensure_ascii=False))
        return 0
    if not hits:
        print("No matching passages.")
    for h in hits:
        where = f"{h.path}:{h.start_line}-{h.end_line}"
        print(f"{h.rank:>2}. {h.score:.3f}  {h.title}" + (f" › {h.heading}" if h.heading else "") + f"\n    {where}")
        preview = " ".join(h.text.split())
        print(f"    {preview[:200]}{'…' if len(preview) > 200 else ''}")
    return 0


def cmd_ask(args) -> int:
    answer = _retriever(args).ask(args.question, tags=args.tag or None, folder=args.folder)
    if args.json:
        print(json.dumps(answer.to_dict(), ensure_ascii=False))
    else:
        print(answer.answer)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except AzchatError as exc:
        print(f"azchat: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("azchat: interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
