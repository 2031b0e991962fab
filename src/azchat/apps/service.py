"""NotesService: one notes folder + its index, kept open for a long-running front end (chat UI, watch mode).

Questions go to the current Retriever; a rebuild runs in a background thread and, when it is done, a new
Retriever is swapped in under a lock, so questions keep being answered from the old index meanwhile.
No UI code here.
"""
from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Iterator

from .. import config
from . import inputs
from ..notes.referring import refers_back
from ..errors import AzchatError, IndexLockedError, InputError
from ..notes.sections import Section, read_section
from ..types import Answer, BuildStats, Hit, follow_up_line


_FOLLOW_START = ("and ", "what about", "how about", "und ", "und was", "was ist mit", "also ")


def is_follow_up(question: str) -> bool:
    """A short question that points back at the conversation (pronouns, "and ...", "what about ...")."""
    q = question.strip().lower()
    words = re.findall(r"[\w']+", q)
    if not words or len(words) > 10:
        return False
    return q.startswith(_FOLLOW_START) or refers_back(q)


class NotesService:
    def __init__(self, notes_dir=None, index_dir=None, model: str | None = None, embedder=None,
                 reranker=None):
        from ..index.changes import notes_dir as resolve_notes

        self.notes_dir = Path(resolve_notes(notes_dir, index_dir))
        self.index_dir = Path(config.index_dir(index_dir))
        self.model = model
        self.reranker = reranker       # a cross-encoder's name, "off", or None: $AZCHAT_RERANKER (rerank.py)
        self._embedder = embedder
        self._lock = threading.Lock()          # guards _retriever and the rebuild state
        self._retriever = None
        self._thread: threading.Thread | None = None
        self._progress: tuple[int, int] = (0, 0)
        self._phase = ""
        self._last_stats: BuildStats | None = None
        self._last_error = ""

    # -- opening -------------------------------------------------------------------------------
    def open(self, log=None, progress=None, wait_seconds: float = 30.0, busy_ok: bool = False
             ) -> BuildStats | None:
        """Build or update the index when it is missing or stale, then open it. Returns the build's stats.
        busy_ok: when another indexer holds the lock and an index exists, answer from that index (the CLI)."""
        from ..index.changes import check_notes_or_index

        check_notes_or_index(self.notes_dir, self.index_dir)
        stats = self.update(log=log, progress=progress, wait_seconds=wait_seconds, busy_ok=busy_ok)
        self._swap(self._open_retriever())
        return stats

    def update(self, log=None, progress=None, wait_seconds: float = 30.0, busy_ok: bool = False
               ) -> BuildStats | None:
        """Index the notes changed since the last build, in this thread; None when nothing changed (or, with
        busy_ok, another indexer is at work and an index exists). The one check-then-build of every surface."""
        from ..index.changes import is_stale
        from ..index.store import CURRENT

        if not self.notes_dir.is_dir() or not is_stale(self.notes_dir, self.index_dir):
            return None
        if log:
            log(f"Updating the index in {self.index_dir} from {self.notes_dir} ...")
        have_index = (self.index_dir / CURRENT).exists()
        try:
            stats = self._build(progress=progress, log=log, wait_seconds=0.0 if busy_ok and have_index
                                else wait_seconds)
        except IndexLockedError:
            if not (busy_ok and have_index):
                raise
            if log:
                log("Another azchat indexer is updating the index; answering from the current index.")
            return None
        self._last_stats = stats
        return stats

    def _embedder_for_build(self):
        if self._embedder is not None:
            return self._embedder
        r = self._retriever
        if r is not None and self.model is None:
            return r.embedder            # keep the model the index was built with: incremental update
        from ..index.embedding import load_embedder

        self._embedder = load_embedder(self.model, self.index_dir)   # its ONNX export when there is one
        return self._embedder

    def _build(self, full: bool = False, progress=None, log=None, wait_seconds: float = 30.0) -> BuildStats:
        from ..index.building import build_index

        embedder = self._embedder
        if embedder is None and self._retriever is not None and self.model is None:
            embedder = self._retriever.embedder     # keep the model the index was built with
        # embedder None: build_index picks the index's ONNX export and makes it when missing, so the next
        # start (azchat mcp, serve) answers without importing torch
        return build_index(self.notes_dir, self.index_dir, full=full, model=self.model, embedder=embedder,
                           progress=progress, log=log, wait_seconds=wait_seconds)

    def _open_retriever(self):
        from ..answer.asking import Retriever

        embedder = self._embedder
        if embedder is None and self._retriever is not None:
            embedder = self._retriever.embedder
        if embedder is None and self.model is not None:
            embedder = self._embedder_for_build()
        old = self._retriever
        reranker = old.reranker if old is not None and old.reranker is not None else self.reranker
        return Retriever(self.index_dir, embedder=embedder, reranker=reranker)   # a reranker loaded once

    def reload(self) -> None:
        """Open the index as it is on disk now (after another indexer, e.g. watch mode, updated it)."""
        self._swap(self._open_retriever())

    def _swap(self, retriever) -> None:
        with self._lock:
            self._retriever = retriever

    @property
    def retriever(self):
        with self._lock:
            r = self._retriever
        if r is None:
            raise AzchatError("The index is not open yet.")
        return r

    # -- questions -----------------------------------------------------------------------------
    def search(self, query: str, k: int = 10, tags=None, folder=None) -> list[Hit]:
        query, k = inputs.text(query, "query"), inputs.k(k)
        tags, folder = inputs.tags(tags), inputs.folder(folder)
        return self.retriever.search(query, k=k, tags=tags, folder=folder)

    def ask(self, question: str, tags=None, folder=None, previous: list[str] | None = None,
            mode: str = "extractive", on_text=None) -> Answer:
        """Answer the question; in a conversation (`previous` questions, oldest first) a short question that
        refers back ("and how do I delete it?") and finds nothing alone is read together with the last one.
        mode="generative": your model writes the answer from the same passages (answer/written.py), streamed
        to on_text(piece) when given; it falls back to the quotes with a notice."""
        mode = inputs.mode(mode)
        answer = self._extractive(question, tags, folder, previous)
        if mode == "extractive":
            return answer
        from ..answer.written import write_answer

        return write_answer(answer, on_text=on_text)

    def write(self, answer: Answer, stream: bool = True) -> Iterator[str | Answer]:
        """The written answer for an extractive one, as it arrives: the checked text piece by piece, then
        (always last) the Answer (the quotes with a notice when the model's answer cannot be used). The one
        way every surface gets a written answer."""
        from ..answer.written import stream_answer

        yield from stream_answer(answer, stream=stream)

    def _extractive(self, question, tags, folder, previous) -> Answer:
        question = inputs.text(question, "question")
        tags, folder = inputs.tags(tags), inputs.folder(folder)
        r = self.retriever
        answer = r.ask(question, tags=tags, folder=folder)
        if answer.found or not previous or not is_follow_up(question):
            return answer
        context = previous[-1]
        combined = r.ask(f"{context} {question}", tags=tags or None, folder=folder or None)
        if not combined.found:
            return answer
        combined.question, combined.read_as = question, context
        combined.answer = f"{follow_up_line(context)}\n\n" + combined.answer
        return combined

    def check_filters(self, tags=None, folder=None) -> None:
        """InputError (one sentence, with what exists) when a tag or folder filter can match no note: a typo
        is a mistake to name, not an empty result."""
        problem = self.retriever.filter_problem(tags, folder) if tags or folder else ""
        if problem:
            raise InputError(problem)

    def note_changes(self) -> dict[str, list[str]] | None:
        """The notes added, changed or removed since the last build; None when the index must be rebuilt."""
        from ..index.changes import note_changes

        return note_changes(self.notes_dir, self.index_dir) if self.notes_dir.is_dir() else None

    @property
    def manifest(self) -> dict:
        return self.retriever.manifest

    def note_title(self, path: str) -> str:
        """The title of an indexed note ("" when it has no chunks), read from the index's columns."""
        table = self.retriever.chunks
        rows = table.rows_of_path(path)
        return table.title(int(rows[0])) if len(rows) else ""

    def section(self, path: str, line: int) -> Section:
        """The whole section around a cited line; only notes that are in the index can be read (the index is
        asked before the disk, so no error tells which other files exist)."""
        path, line = inputs.note_path(path), inputs.whole(line, "line", 1)
        return read_section(self.notes_dir, path, line, manifest=self.retriever.manifest)

    def tags(self) -> list[str]:
        return self.retriever.tags()

    def folders(self) -> list[str]:
        return self.retriever.folders()

    def suggested_questions(self, n: int = 4) -> list[str]:
        """Example questions drawn from the notes' section headings, one per note, spread over the notes."""
        chunks = self.retriever.chunks
        seen_notes, out = set(), []
        picks = []
        for c in chunks:
            parts = [p.strip() for p in c.heading.split(">")]
            if len(parts) < 2 or c.path in seen_notes:
                continue
            topic = parts[1]
            words = topic.split()
            if not 2 <= len(words) <= 5 or any(ch in topic for ch in ":?()[]|/") or topic == c.title:
                continue
            seen_notes.add(c.path)
            picks.append(topic)
        if not picks:
            return out
        step = max(1, len(picks) // n)
        for topic in picks[::step][:n]:
            out.append(f"What do my notes say about {topic}?")
        return out

    # -- rebuild -------------------------------------------------------------------------------
    @property
    def rebuilding(self) -> bool:
        t = self._thread
        return t is not None and t.is_alive()

    def start_rebuild(self, full: bool = False) -> bool:
        """Start an incremental (or full) rebuild in the background. False when one is already running."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return False
            self._progress, self._phase, self._last_error = (0, 0), "scanning notes", ""
            self._thread = threading.Thread(target=self._rebuild, args=(full,), name="azchat-rebuild",
                                            daemon=True)
            self._thread.start()
        return True

    def rebuild(self, full: bool = False) -> BuildStats | None:
        """Rebuild in the background and wait for it; returns its stats (None when it failed)."""
        self.start_rebuild(full)
        self.wait()
        return self._last_stats if not self._last_error else None

    @property
    def last_error(self) -> str:
        """Why the last rebuild failed ("" when it did not), as status()["error"] says, without its stat walk."""
        return self._last_error

    def wait(self, timeout: float | None = None) -> None:
        t = self._thread
        if t is not None:
            t.join(timeout)

    def _rebuild(self, full: bool) -> None:
        def progress(done: int, total: int) -> None:
            self._progress, self._phase = (done, total), "embedding"

        def log(message: str) -> None:
            self._phase = message

        try:
            stats = self._build(full=full, progress=progress, log=log)
            self._phase = "opening the new index"
            retriever = self._open_retriever()
            self._swap(retriever)
            self._last_stats = stats
            self._phase = ""
        except AzchatError as exc:
            self._last_error, self._phase = str(exc), ""
        except Exception as exc:    # a failed rebuild must leave the old index serving
            self._last_error, self._phase = f"Rebuild failed: {exc}", ""

    # -- status --------------------------------------------------------------------------------
    def status(self, changes: dict[str, list[str]] | None = None) -> dict:
        """`changes`: indexing.note_changes' result when the caller has it already (its counts are "pending"),
        so the notes folder is walked once."""
        with self._lock:
            r = self._retriever
        manifest = r.manifest if r is not None else {}
        done, total = self._progress
        last = self._last_stats
        return {
            "notes_dir": str(self.notes_dir),
            "index_dir": str(self.index_dir),
            "notes": len(manifest.get("notes", {})),
            "chunks": manifest.get("chunk_count", 0),
            "built_at": manifest.get("built_at", ""),
            "model": manifest.get("model", ""),
            "reranker": getattr(getattr(r, "reranker", None), "name", None),   # None: no reranking
            "rebuilding": self.rebuilding,
            "phase": self._phase if self.rebuilding else "",
            "progress": {"done": done, "total": total},
            "last_build": last.to_dict() if last is not None else None,
            "error": self._last_error,
            "pending": None if self.rebuilding else (
                self.pending_changes() if changes is None else {k: len(v) for k, v in changes.items()}),
            "checked_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }

    def pending_changes(self) -> dict | None:
        """Notes added, touched or removed since the last build (stat only): {"added", "changed",
        "removed"}; None when unknown (no index yet, other chunking rules, the notes folder unreadable)."""
        from ..index.changes import pending_changes

        try:
            return pending_changes(self.notes_dir, self.index_dir)
        except (OSError, AzchatError):
            return None
