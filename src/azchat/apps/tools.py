"""The agent tools behind the REST API and the MCP server: search, ask, get, status over a NotesService.

One place for what both front ends promise: the CLI's `--json` shapes, the input checks of every surface
(inputs.py) before any waiting, size caps with a "truncated" marker, indexed notes only and strictly inside the
notes folder (sources.indexed_lines: the index is asked before the disk), and an incremental index update
before answering when notes changed. No HTTP or MCP code here.
"""
from __future__ import annotations

import threading
import time
from typing import get_type_hints

from typing_extensions import NotRequired, TypedDict   # pydantic (MCP output schemas, OpenAPI) wants these before 3.12

from . import inputs
from ..errors import AzchatError, InputError
from .inputs import MAX_K, MAX_QUERY_CHARS  # noqa: F401 (the caps live in inputs.py, for every surface)
from ..notes.sections import MAX_SECTION_LINES, indexed_lines
from ..types import Citation, Hit
MAX_TEXT_CHARS = 4000       # one hit's text, one citation's snippet, the answer
MAX_LINE_CHARS = 2000       # one line returned by get
MAX_GET_LINES = MAX_SECTION_LINES
MAX_RESULT_CHARS = 40_000   # a whole result: ~10k tokens, well under Claude Code's 25k-token tool output limit
MAX_LISTED = 20             # paths listed per kind in status' changed_since_build
MARK = " […truncated]"
OPEN_WAIT = 45.0            # seconds a call waits for the index to open before it says "still being built"


# -- the shapes (the CLI's --json shapes plus the "truncated" marker); MCP and OpenAPI schemas come from these --
def _shape_of(cls: type) -> type:
    """A TypedDict with a dataclass's fields: what its to_dict() returns, as a schema (one list of fields)."""
    return TypedDict(f"{cls.__name__}Dict", get_type_hints(cls))


HitDict = _shape_of(Hit)
CitationDict = _shape_of(Citation)


class SearchResult(TypedDict):
    query: str
    hits: list[HitDict]
    truncated: bool          # a hit's text ends in " […truncated]", or trailing hits were left out
    omitted_hits: int        # hits left out to keep the result under the size cap


class AskResult(TypedDict):
    question: str
    answer: str
    found: bool
    citations: list[CitationDict]
    truncated: bool
    mode: NotRequired[str]       # with mode="generative": the answer's mode ("extractive" when it fell back),
    model: NotRequired[str]      # the model's name,
    notice: NotRequired[str]     # and why it fell back or what the citation check left out ("" when nothing)


class LineDict(TypedDict):
    line: int
    text: str


class NoteLines(TypedDict):
    path: str
    title: str
    start_line: int
    end_line: int            # the last line returned
    total_lines: int
    lines: list[LineDict]
    truncated: bool          # fewer lines than asked for (cap), or a line's text was cut
    next_start_line: int | None   # where to continue when lines were left out


class Changes(TypedDict):
    count: int
    added: list[str]
    changed: list[str]
    removed: list[str]
    truncated: bool          # more paths than listed
    rebuild_needed: bool     # no usable index: everything will be built


class Progress(TypedDict):
    done: int
    total: int


class StatusResult(TypedDict):
    ready: bool              # the index is open
    notes_dir: str
    index_dir: str
    notes: int
    chunks: int
    built_at: str
    model: str
    reranker: str | None     # the cross-encoder reranking the hits, None when off
    rebuilding: bool
    phase: str
    progress: Progress
    last_build: dict | None
    error: str
    checked_at: str
    changed_since_build: Changes


ToolInputError = InputError    # the caller's input is wrong: HTTP 400, an MCP tool error (inputs.py checks it)


class NotReadyError(AzchatError):
    """The index is not open yet or could not be opened: HTTP 503."""


def _cut(text: str, limit: int) -> tuple[str, bool]:
    if len(text) <= limit:
        return text, False
    return text[:limit] + MARK, True


tag_list = inputs.tags


def _fit(items: list[dict], budget: int) -> tuple[list[dict], int]:
    """The leading items whose JSON-ish size stays within budget characters, and how many were left out."""
    kept, used = [], 0
    for item in items:
        size = sum(len(str(v)) + len(k) + 6 for k, v in item.items())
        if kept and used + size > budget:
            break
        kept.append(item)
        used += size
    return kept, len(items) - len(kept)


class NotesTools:
    """search / ask / get / status as plain dicts, over a NotesService that is opened by the caller (or in the
    background with open_in_background). Raises ToolInputError (bad input), SourceError (no such note, or
    outside the notes folder), NotReadyError (no index yet) — each with a one-sentence message.

    refresh_every: before answering, notes changed since the last build are indexed incrementally; the stat
    check runs at most once per this many seconds (0: before every call; None: never).
    """

    def __init__(self, service, refresh_every: float | None = 0.0, log=None):
        self.service = service
        self.refresh_every = refresh_every
        self.log = log or (lambda message: None)
        self._ready = threading.Event()
        self._open_error = ""
        self._open_progress = (0, 0)
        self._checked = float("-inf")
        self._refresh_lock = threading.Lock()

    # -- opening -------------------------------------------------------------------------------
    def opened(self) -> "NotesTools":
        """The service is already open (azchat serve opened it)."""
        self._ready.set()
        self._checked = time.monotonic()
        return self

    def open_in_background(self, progress=None) -> threading.Thread:
        """Open (build or update, then load) the index in a daemon thread; calls wait for it."""
        def track(done: int, total: int) -> None:
            self._open_progress = (done, total)
            if progress:
                progress(done, total)

        def run():
            try:
                self.service.open(log=self.log, progress=track)
                self._checked = time.monotonic()
                notes = len(self.service.manifest.get("notes", {}))
                self.log(f"Ready: {notes} notes from {self.service.notes_dir}.")
            except AzchatError as exc:
                self._open_error = str(exc)
            except Exception as exc:      # a tool call reports it; the server keeps answering the protocol
                self._open_error = f"Could not open the index: {exc}"
            finally:
                self._ready.set()
            if self._open_error:
                self.log(f"azchat: {self._open_error}")

        t = threading.Thread(target=run, name="azchat-open", daemon=True)
        t.start()
        return t

    def _wait_ready(self, timeout: float | None = None) -> None:
        """Wait for the background open, at most OPEN_WAIT seconds (under MCP clients' request timeouts)."""
        if not self._ready.wait(OPEN_WAIT if timeout is None else timeout):
            done, total = self._open_progress
            where = f" ({done}/{total} chunks embedded)" if total else ""
            raise NotReadyError(f"The index is still being built{where}; try again in a minute.")
        if self._open_error:
            raise NotReadyError(self._open_error)

    def refresh(self) -> None:
        """Index the notes changed since the last build (incrementally) when the last check is old enough."""
        self._wait_ready()
        if self.refresh_every is None or time.monotonic() - self._checked < self.refresh_every:
            return
        if not self._refresh_lock.acquire(blocking=False):
            return                      # another request is updating: answer from the current index
        try:
            self._checked = time.monotonic()
            svc = self.service
            if not svc.notes_dir.is_dir():
                return
            changes = svc.note_changes()
            if changes is not None and not any(changes.values()):
                return
            self.log(f"Updating the index: {self._describe(changes)}.")
            svc.rebuild()
            if svc.last_error:
                self.log(f"azchat: {svc.last_error}")
            self._checked = time.monotonic()
        finally:
            self._refresh_lock.release()

    @staticmethod
    def _describe(changes) -> str:
        if changes is None:
            return "the index needs a rebuild"
        return ", ".join(f"{len(v)} {k}" for k, v in changes.items() if v)

    def _check_filters(self, tags, folder) -> None:
        """A tag or folder no note has is a mistake to name (with what exists), not an empty result: an agent
        cannot tell a typo from "nothing matches"."""
        self.service.check_filters(tags, folder)        # ToolInputError is InputError

    # -- the tools -----------------------------------------------------------------------------
    def search(self, query, k=10, tag=None, folder=None) -> SearchResult:
        """`azchat search --json`: {"query", "hits": [{"rank", "path", "title", "heading", "start_line",
        "end_line", "score", "text"}]} plus "truncated" (a hit's text or trailing hits were cut)."""
        query, k = inputs.text(query, "query"), inputs.k(k)
        tags, folder = inputs.tags(tag), inputs.folder(folder)
        self.refresh()
        self._check_filters(tags, folder)
        hits = [h.to_dict() for h in self.service.search(query, k=k, tags=tags, folder=folder)]
        cut = False
        for h in hits:
            h["text"], c = _cut(h["text"], MAX_TEXT_CHARS)
            cut = cut or c
        hits, left_out = _fit(hits, MAX_RESULT_CHARS)
        return {"query": query, "hits": hits, "truncated": cut or left_out > 0, "omitted_hits": left_out}

    def ask(self, question, tag=None, folder=None, mode=None) -> AskResult:
        """`azchat ask --json`: {"question", "answer", "found", "citations": [{"n", "path", "title", "heading",
        "start_line", "end_line", "snippet"}]} plus "truncated"."""
        question, mode = inputs.text(question, "question"), inputs.mode(mode)
        tags, folder = inputs.tags(tag), inputs.folder(folder)
        self.refresh()
        self._check_filters(tags, folder)
        # mode="generative": your model writes it from the same passages (answer/written.py)
        out = self.service.ask(question, tags=tags, folder=folder, mode=mode).to_dict()
        out["answer"], cut = _cut(out["answer"], MAX_RESULT_CHARS // 2)
        for c in out["citations"]:
            c["snippet"], c_cut = _cut(c["snippet"], MAX_TEXT_CHARS)
            cut = cut or c_cut
        out["citations"], left_out = _fit(out["citations"], MAX_RESULT_CHARS // 2)
        out["truncated"] = cut or left_out > 0
        return out

    def get(self, path, start_line=1, end_line=None) -> NoteLines:
        """Lines start_line..end_line (1-based, inclusive, as on disk) of an indexed note: {"path", "title",
        "start_line", "end_line", "total_lines", "lines": [{"line", "text"}], "truncated", "next_start_line"}.
        At most MAX_GET_LINES lines and MAX_RESULT_CHARS characters; next_start_line says where to go on."""
        path = inputs.note_path(path)
        start = inputs.whole(1 if start_line is None else start_line, "start_line", 1)
        end = None if end_line is None else inputs.whole(end_line, "end_line", 1)
        self.refresh()
        # the index is asked before the disk: a file that is not an indexed note is never opened, so the
        # errors cannot tell which other files exist (SourceError for anything outside the notes, too)
        lines = indexed_lines(self.service.notes_dir, path, self.service.manifest)
        total = len(lines)
        if start > max(total, 1):
            raise ToolInputError(f"start_line {start} is past the end of {path!r} ({total} lines).")
        if end is not None and end < start:
            raise ToolInputError(f"end_line {end} is before start_line {start}.")
        want_end = total if end is None else min(end, total)
        stop = min(want_end, start + MAX_GET_LINES - 1)
        rows, used, cut = [], 0, stop < want_end
        for n in range(start, stop + 1):
            text, c = _cut(lines[n - 1], MAX_LINE_CHARS)
            if rows and used + len(text) + 16 > MAX_RESULT_CHARS:
                cut = True
                break
            rows.append({"line": n, "text": text})
            used += len(text) + 16
            cut = cut or c
        last = rows[-1]["line"] if rows else start - 1
        return {"path": path, "title": self.service.note_title(path), "start_line": start, "end_line": last, "total_lines": total,
                "lines": rows, "truncated": cut,
                "next_start_line": last + 1 if last < want_end else None}

    def status(self) -> StatusResult:
        """The index's status (notes, chunks, built_at, model, rebuild progress, as the chat's /status) and
        changed_since_build: the notes added, changed or removed since (not yet indexed)."""
        svc = self.service
        changes = svc.note_changes()
        out = {"ready": self._ready.is_set() and not self._open_error, **svc.status(changes)}
        if self._open_error:
            out["error"] = self._open_error
        elif not self._ready.is_set():
            out["phase"] = out["phase"] or "opening the index"
        listed = {"count": 0, "added": [], "changed": [], "removed": [], "truncated": False,
                  "rebuild_needed": changes is None}
        if changes is not None:
            for kind, paths in changes.items():
                listed["count"] += len(paths)
                listed[kind] = paths[:MAX_LISTED]
                listed["truncated"] = listed["truncated"] or len(paths) > MAX_LISTED
        out["changed_since_build"] = listed
        return out
