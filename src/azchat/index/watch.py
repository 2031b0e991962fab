"""Keep the index fresh while notes change: file events -> debounce -> one incremental build -> on_update.

    with Watcher("notes", "index", on_update=lambda stats: ...) as w:
        w.wait()          # until stop() or Ctrl-C

Editors' temp and swap files, hidden folders and non-note files are ignored. A burst of events (a save that
writes a temp file and renames it, a git checkout) becomes one build once nothing has happened for `debounce`
seconds and every changed file has kept its size and mtime across that window (no half-written notes).
A periodic stat check catches anything the file events missed (e.g. an overflowing inotify queue).
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Callable

from ..config import ChunkSettings, index_dir as default_index
from .changes import notes_dir as default_notes
from .embedding import Embedder
from ..errors import AzchatError, NotesNotFoundError
from ..notes.reading import NOTE_SUFFIXES
from ..types import BuildStats

TEMP_SUFFIXES = ("~", ".swp", ".swo", ".swx", ".tmp", ".temp", ".part", ".crdownload", ".bak", ".orig", ".kate-swp")
TEMP_NAMES = frozenset({"4913"})          # vim's write test file


def is_note_path(path, root) -> bool:
    """True when a path under root is a note azchat indexes (not hidden, not an editor's temp file)."""
    rel = os.path.relpath(os.fsdecode(path), os.fsdecode(root))
    parts = Path(rel).parts
    if not parts or parts[0] == ".." or any(p.startswith(".") for p in parts):
        return False
    name = parts[-1]
    if name in TEMP_NAMES or name.startswith(("#", "~$")) or name.endswith(TEMP_SUFFIXES):
        return False
    return name.lower().endswith(NOTE_SUFFIXES)


def is_folder_path(path, root) -> bool:
    rel = os.path.relpath(os.fsdecode(path), os.fsdecode(root))
    parts = Path(rel).parts
    return bool(parts) and parts[0] != ".." and not any(p.startswith(".") for p in parts)


def _stamp(path: str):
    try:
        st = os.stat(path)
        return st.st_size, st.st_mtime_ns
    except OSError:
        return None


class Watcher:
    """Watches a notes folder and rebuilds the index (incrementally) after changes settle.

    on_update(stats) is called after the first build and whenever the live index changed (a build of ours, or
    another indexer's, noticed by the periodic check), from the watcher's thread;
    on_error(exc) after a build that failed with an AzchatError (the watcher keeps going).
    """

    def __init__(self, notes_dir=None, index_dir=None, *, model: str | None = None,
                 embedder: Embedder | None = None, settings: ChunkSettings = ChunkSettings(),
                 debounce: float = 1.0, rescan_seconds: float = 60.0, lock_wait: float = 600.0,
                 max_delay: float = 30.0,
                 on_update: Callable[[BuildStats], None] | None = None,
                 on_error: Callable[[Exception], None] | None = None,
                 log: Callable[[str], None] | None = None, progress=None, polling: bool = False):
        self.notes_dir = default_notes(notes_dir, index_dir)
        self.index_dir = default_index(index_dir)
        if not self.notes_dir.is_dir():
            raise NotesNotFoundError(f"Notes folder {self.notes_dir} does not exist or is not a folder.")
        self._root = str(self.notes_dir.resolve())
        self.model, self.embedder, self.settings = model, embedder, settings
        self.debounce, self.rescan_seconds, self.lock_wait = debounce, rescan_seconds, lock_wait
        self.max_delay = max_delay           # a file written non-stop still gets indexed this often
        self.on_update, self.on_error = on_update, on_error
        self.log = log or (lambda msg: None)
        self.progress = progress
        self.polling = polling
        self.builds = 0                      # builds run (changed or not)
        self.last_stats: BuildStats | None = None
        self._cond = threading.Condition()
        self._pending: dict[str, object] = {}   # path -> (size, mtime) when its last event arrived
        self._dirty = False
        self._last_event = 0.0
        self._first_event = 0.0
        self._stop = threading.Event()
        self._observer = None
        self._thread: threading.Thread | None = None
        self._crashed: BaseException | None = None
        self._seen_live: str | None = None

    # -- events ---------------------------------------------------------------------------------
    def notify(self, *paths: str, folder: bool = False) -> None:
        """Record a change to these paths (called by the file observer; usable directly too)."""
        relevant = [p for p in paths if p and (is_folder_path(p, self._root) if folder
                                               else is_note_path(p, self._root))]
        if not relevant:
            return
        with self._cond:
            for p in relevant:
                self._pending[p] = None if folder else _stamp(p)
            if not self._dirty:
                self._first_event = time.monotonic()
            self._dirty = True
            self._last_event = time.monotonic()
            self._cond.notify_all()

    def _handler(self):
        from watchdog.events import FileSystemEventHandler

        watcher = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event):
                kind = event.event_type
                if kind in ("opened", "closed_no_write", "closed"):
                    return
                paths = [event.src_path, getattr(event, "dest_path", "") or ""]
                paths = [os.fsdecode(p) for p in paths if p]
                if event.is_directory:
                    if kind in ("moved", "deleted", "created"):   # a folder of notes came, went or moved
                        watcher.notify(*paths, folder=True)
                    return
                watcher.notify(*paths)

        return Handler()

    # -- life cycle -----------------------------------------------------------------------------
    def start(self, initial_build: bool = True) -> "Watcher":
        """Start watching (and bring the index up to date first, in the watcher's thread)."""
        if self.embedder is None:
            from .embedding import load_embedder

            self.embedder = load_embedder(self.model)   # loaded once, reused by every build
        self._observer = self._make_observer()
        self._observer.start()
        with self._cond:
            self._dirty = initial_build
            self._last_event = 0.0
        self._thread = threading.Thread(target=self._run, name="azchat-watch", daemon=True)
        self._thread.start()
        return self

    def _make_observer(self):
        from watchdog.observers.polling import PollingObserver

        if not self.polling:
            from watchdog.observers import Observer

            try:
                observer = Observer()
                observer.schedule(self._handler(), self._root, recursive=True)
                return observer
            except OSError as exc:       # e.g. the inotify watch limit on a huge vault
                self.log(f"File events unavailable ({exc}); polling the notes folder instead.")
        observer = PollingObserver(timeout=max(self.debounce, 0.5))
        observer.schedule(self._handler(), self._root, recursive=True)
        return observer

    def stop(self, timeout: float = 30.0) -> None:
        """Stop watching; a build in progress is finished first (it is never cut off half-way)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout)
        if self._thread is not None:
            self._thread.join(timeout)

    def wait(self) -> None:
        """Block until stop() is called (or Ctrl-C, which is re-raised for the caller to handle)."""
        while not self._stop.wait(0.5):
            if self._crashed is not None:
                raise self._crashed

    def __enter__(self) -> "Watcher":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- the build loop -------------------------------------------------------------------------
    def _settled(self) -> bool:
        """Wait until no event came for `debounce` seconds and the changed files stopped changing.
        Returns False when stopping."""
        while not self._stop.is_set():
            with self._cond:
                now = time.monotonic()
                if now - self._first_event >= self.max_delay and self._first_event:
                    self._pending.clear()           # never settles (a log written non-stop): index it now
                    self._dirty = False
                    return True
                quiet = now - self._last_event
                if quiet < self.debounce:
                    self._cond.wait(self.debounce - quiet)
                    continue
                pending = dict(self._pending)
            moving = [p for p, stamp in pending.items() if stamp is not None and _stamp(p) != stamp]
            if not moving:
                with self._cond:
                    if time.monotonic() - self._last_event >= self.debounce:
                        self._pending.clear()
                        self._dirty = False
                        return True
                continue
            with self._cond:     # still being written without events (or events were missed): wait again
                for p in moving:
                    self._pending[p] = _stamp(p)
                self._last_event = time.monotonic()
        return False

    def _run(self) -> None:
        try:
            last_check = time.monotonic()
            while not self._stop.is_set():
                with self._cond:
                    if not self._dirty:
                        self._cond.wait(min(1.0, self.rescan_seconds))
                if self._stop.is_set():
                    break
                if not self._dirty:
                    if time.monotonic() - last_check >= self.rescan_seconds:
                        last_check = time.monotonic()
                        if self._stale():
                            self.log("Notes changed without file events; updating the index.")
                            self.build()
                        elif self._live() != self._seen_live:    # `azchat index` ran beside us
                            self.build()
                    continue
                if self._settled():
                    self.build()
                    last_check = time.monotonic()
        except BaseException as exc:    # surfaces in wait(); a watcher must not die silently
            self._crashed = exc

    def _stale(self) -> bool:
        from .changes import is_stale

        try:
            return is_stale(self.notes_dir, self.index_dir)
        except AzchatError:
            return True

    def build(self) -> BuildStats | None:
        """One incremental build now; calls on_update when the index changed. Errors go to on_error."""
        from .building import build_index

        try:
            stats = build_index(self.notes_dir, self.index_dir, embedder=self.embedder, settings=self.settings,
                                progress=self.progress, log=self.log, wait_seconds=self.lock_wait)
        except AzchatError as exc:
            self.log(f"Index update failed: {exc}")
            if self.on_error:
                self.on_error(exc)
            return None
        except Exception as exc:    # keep watching for months: one bad moment is not fatal
            self.log(f"Index update failed: {type(exc).__name__}: {exc}")
            if self.on_error:
                self.on_error(exc)
            return None
        self.builds += 1
        self.last_stats = stats
        live = self._live()
        if live != self._seen_live or self.builds == 1:     # a new generation (ours or another indexer's)
            self._seen_live = live
            if self.on_update:
                try:
                    self.on_update(stats)
                except Exception as exc:   # e.g. the app could not open the new index: report, keep watching
                    self.log(f"Could not use the updated index: {type(exc).__name__}: {exc}")
                    if self.on_error:
                        self.on_error(exc)
        return stats

    def _live(self) -> str | None:
        """What CURRENT says now (None when unreadable): changes whenever any indexer swaps the index."""
        try:
            return (self.index_dir / "CURRENT").read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None
