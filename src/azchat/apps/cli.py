"""The `azchat` command: parse flags, call the library, print text or JSON. No retrieval logic here."""
from __future__ import annotations

import argparse
import json
import sys
import time

from .. import config
from . import inputs
from ..errors import AzchatError, InputError
from .cli_args import LOCK_WAIT, build_parser as _parser

def _say(message: str) -> None:
    """A progress or status line for the person at the terminal: stderr, so stdout stays the result."""
    print(message, file=sys.stderr)


def _build(args, wait: float | None = None):
    from ..index.building import build_index
    from ..progress import ProgressBar

    wait = getattr(args, "wait", LOCK_WAIT) if wait is None else wait
    if getattr(args, "ray_workers", None) is not None and getattr(args, "ray", None) is None:
        raise InputError("--ray-workers goes with --ray.")
    if getattr(args, "ray", None) is not None:
        from ..index.ray_build import build_on_ray

        return build_on_ray(args.notes, args.index, address=args.ray, workers=args.ray_workers, log=_say,
                            full=args.full, model=args.model, progress=ProgressBar("Embedding"),
                            wait_seconds=wait)
    return build_index(args.notes, args.index, full=getattr(args, "full", False), model=args.model,
                       progress=ProgressBar("Embedding"), log=_say, wait_seconds=wait)


def _service(args):
    """The notes service of the CLI's commands, opened: the index built or updated first when it is missing or
    stale (when another indexer holds the lock, answers come from the current index)."""
    from ..progress import ProgressBar
    from .service import NotesService

    index = config.index_dir(args.index)
    service = NotesService(args.notes, args.index, model=args.model, reranker=args.reranker,
                           embedder=_prefetched_embedder(args, index))
    service.open(log=_say, progress=ProgressBar("Embedding"), wait_seconds=getattr(args, "wait", LOCK_WAIT),
                 busy_ok=True)
    return service


def _prefetched_embedder(args, index):
    """The index's ONNX embedder, its session already loading in the background; None if there is none."""
    from ..index.embedding import light_enabled, load_embedder
    from ..index.store import read_manifest

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
    ray = getattr(stats, "ray", None)     # --ray: where and how the chunks were embedded
    if args.json:
        print(json.dumps({**stats.to_dict(), **({"ray": ray} if ray is not None else {})}, ensure_ascii=False))
        return 0
    _print_build(stats)
    if ray is not None:
        from ..index.ray_build import ray_summary

        print(ray_summary(ray), flush=True)
    return 0


def _print_build(stats, prefix: str = "") -> None:
    """One build's summary line, then each skipped file and warning (`azchat index` and `azchat watch`)."""
    print(f"{prefix}{stats.notes} notes, {stats.chunks} chunks: {stats.added} added, {stats.updated} updated, "
          f"{stats.removed} removed, {stats.unchanged} unchanged; {stats.embedded} chunks embedded "
          f"in {stats.seconds:.1f}s.", flush=True)
    for s in stats.skipped:
        print(f"  skipped {s['path']}: {s['reason']}", flush=True)
    for w in stats.warnings:
        print(f"  warning {w['path']}: {w['message']}", flush=True)


def _filtered(service, args):
    """The service, once --tag and --folder are known to match some note (else a one-sentence error)."""
    service.check_filters(args.tag or None, args.folder)
    return service


def cmd_search(args) -> int:
    inputs.text(args.query, "query")             # the checks and caps of every surface (inputs.py)
    args.k = inputs.k(args.k)
    args.tag, args.folder = inputs.tags(args.tag) or [], inputs.folder(args.folder)
    hits = _filtered(_service(args), args).search(args.query, k=args.k, tags=args.tag or None,
                                                  folder=args.folder)
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
    inputs.text(args.question, "question")
    args.tag, args.folder = inputs.tags(args.tag) or [], inputs.folder(args.folder)
    if args.llm:
        return _ask_written(args)
    answer = _filtered(_service(args), args).ask(args.question, tags=args.tag or None, folder=args.folder)
    if args.json:
        print(json.dumps(answer.to_dict(), ensure_ascii=False))
    else:
        print(answer.answer)
    return 0


def _ask_written(args) -> int:
    """`ask --llm`: the model's checked text streams to the terminal, then the sources; a fallback to the
    quotes says why on stderr. With --json: one request, the `ask --json` shape plus mode, model, notice."""
    service = _filtered(_service(args), args)
    streamed: list[str] = []

    def show(piece: str) -> None:
        streamed.append(piece)
        print(piece, end="", flush=True)

    answer = service.ask(args.question, tags=args.tag or None, folder=args.folder, mode="generative",
                         on_text=None if args.json else show)
    if args.json:
        print(json.dumps(answer.to_dict(), ensure_ascii=False))
        return 0
    shown = "".join(streamed)
    if answer.mode == "generative" and answer.answer.startswith(shown):
        print(answer.answer[len(shown):])      # the rest after what streamed: the sources
        if answer.notice:
            _say(f"azchat: {answer.notice}")
        return 0
    if shown:                                  # fell back after streaming began: the quotes on a new line,
        print()                                # the reason before them
    if answer.notice:
        _say(f"azchat: {answer.notice}")
    print(answer.answer)
    return 0


def cmd_serve(args) -> int:
    from ..progress import ProgressBar
    from .service import NotesService

    auth = config.auth_from_env()     # a malformed AZCHAT_AUTH fails before any work
    from .editor import template_from_env

    template_from_env()               # and so does a malformed AZCHAT_EDITOR_URL
    if args.workers is not None:      # N processes for /api and /mcp, the chat in one of its own (workers.py)
        from .workers import serve

        return serve(args, auth)
    if args.chat_port is not None or args.no_chat:
        raise AzchatError("--chat-port and --no-chat go with --workers.")
    if args.share and auth is None:
        raise AzchatError("--share would publish every note on a public link: set AZCHAT_AUTH=user:password "
                          "first.")
    service = NotesService(args.notes, args.index, model=args.model, reranker=args.reranker)
    service.open(log=_say, progress=ProgressBar("Embedding"))
    _say("Starting the chat ...")
    from .ui import launch

    if args.host not in ("127.0.0.1", "localhost", "::1") and auth is None:
        _say(f"Warning: listening on {args.host} without a password; set AZCHAT_AUTH=user:password.")

    def ready(url: str) -> None:
        if args.json:
            print(json.dumps({"url": url, "host": args.host, "port": args.port, "auth": auth is not None,
                              "share": args.share, **service.status()}, ensure_ascii=False), flush=True)
        else:
            print(f"azchat is ready at {url} (Ctrl+C to stop)", flush=True)

    watcher = None
    if args.watch:
        from ..index.watch import Watcher

        watcher = Watcher(args.notes, args.index, model=args.model, log=_say,
                          embedder=service.retriever.embedder,     # the index's model, loaded once
                          on_update=lambda stats: service.reload())
        watcher.start(initial_build=False)
        _say(f"Watching {watcher.notes_dir} for changes.")
    from .gate import HostCheck, allowed_hosts_from_env
    from .server import serve_kwargs
    from .tools import NotesTools

    # the REST API (/api) and MCP over HTTP (/mcp); without --watch they index changed notes before answering
    tools = NotesTools(service, refresh_every=None if args.watch else 2.0, log=_say).opened()
    try:
        hosts = HostCheck(args.host, allowed_hosts_from_env())      # the names the Gate answers to
        launch(service, host=args.host, port=args.port, share=args.share, on_ready=ready,
               app_kwargs=serve_kwargs(tools, auth, args.host, hosts), hosts=hosts)
    finally:
        if watcher is not None:
            watcher.stop()
    return 0


def cmd_mcp(args) -> int:
    from .mcp import serve_stdio

    return serve_stdio(args.notes, args.index, model=args.model)


def cmd_watch(args) -> int:
    from ..index.watch import Watcher

    def report(stats) -> None:
        if args.json:
            print(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **stats.to_dict()},
                             ensure_ascii=False), flush=True)
            return
        _print_build(stats, prefix=f"{time.strftime('%H:%M:%S')} ")

    from ..progress import ProgressBar

    bar: dict = {"bar": None, "last": (0, 0)}

    def progress(done: int, total: int) -> None:   # a fresh bar (rate, eta) for every build
        last_done, last_total = bar["last"]
        if bar["bar"] is None or done < last_done or last_done >= last_total:
            bar["bar"] = ProgressBar("Embedding")
        bar["last"] = (done, total)
        bar["bar"](done, total)

    watcher = Watcher(args.notes, args.index, model=args.model, debounce=args.debounce, polling=args.polling,
                      on_update=report, log=_say, progress=progress)
    watcher.start()
    _say(f"Watching {watcher.notes_dir} for changes (index: {watcher.index_dir}); Ctrl-C stops.")
    try:
        watcher.wait()
    except KeyboardInterrupt:
        pass
    finally:
        watcher.stop()
    _say("Stopped watching.")
    return 0


def cmd_eval(args) -> int:
    from . import evaluation as ev
    args.k = inputs.whole(args.k, "k", 1)
    if bool(args.questions) == bool(args.beir):
        raise ev.EvalInputError("Give either a questions file or --beir DIR, not both or neither.")
    if args.beir:
        from ..progress import ProgressBar
        from .beir import evaluate_beir

        result = evaluate_beir(args.beir, args.work, model=args.model, k=args.k, log=_say,
                               progress=ProgressBar("Embedding"), modes=("lexical", "dense", "hybrid"),
                               reranker=args.reranker)
        if args.json:
            print(json.dumps(result, ensure_ascii=False))
        else:
            print(f"{result['documents']} documents, {result['queries']} queries")
            for mode in ("lexical", "dense", "hybrid"):
                m = result[mode]
                print(f"  {mode:<8} nDCG@{args.k} {m[f'ndcg@{args.k}']:.4f}   recall@100 {m['recall@100']:.4f}")
        return 0
    questions = ev.split_questions(ev.load_questions(args.questions), args.split)
    mode = "extractive"
    if args.llm:
        from ..answer.llm import load_config

        if load_config() is None:
            raise ev.EvalInputError("eval --llm needs a model endpoint: set AZCHAT_LLM_BASE_URL and "
                                    "AZCHAT_LLM_MODEL, or AZURE_OPENAI_* (see the README).")
        mode = "generative"
    retriever = _filtered(_service(args), args).retriever
    result = ev.evaluate_questions(retriever, questions, k=args.k, tags=args.tag or None, folder=args.folder,
                                   mode=mode)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return 0
    print(ev.format_summary(result["summary"]))
    groups = ev.format_groups(result)
    if groups:
        print(groups)
    return 0


def build_parser() -> argparse.ArgumentParser:
    return _parser({"index": cmd_index, "search": cmd_search, "ask": cmd_ask, "serve": cmd_serve, "mcp": cmd_mcp,
                    "watch": cmd_watch, "eval": cmd_eval})


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
