"""Find the notes under a folder and read each one robustly into a Note (frontmatter, title, tags)."""
from __future__ import annotations

import datetime as _dt
import hashlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..errors import NotesNotFoundError
from .syntax import Fences
from ..types import Note

NOTE_SUFFIXES = (".md", ".markdown", ".mdx")
MAX_NOTE_BYTES = 20 * 1024 * 1024
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_H1 = re.compile(r"^#\s+(.+?)\s*#*\s*$")
_INLINE_TAG = re.compile(r"(?<![\w&/#])#([^\W\d][\w/-]*)", re.UNICODE)


@dataclass
class Skipped:
    path: str
    reason: str


def find_notes(root: Path) -> tuple[list[Path], list[Skipped]]:
    """Every note file under root (sorted), never leaving root; hidden folders and files are ignored."""
    root = Path(root)
    if not root.is_dir():
        raise NotesNotFoundError(f"Notes folder {root} does not exist or is not a folder.")
    real_root = root.resolve()
    found: list[Path] = []
    skipped: list[Skipped] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or not name.lower().endswith(NOTE_SUFFIXES):
                continue
            path = Path(dirpath) / name
            rel = relative_path(path, root)
            try:
                rel.encode("utf-8")
            except UnicodeEncodeError:   # undecodable bytes in a file or folder name
                skipped.append(Skipped(printable(rel), "the file name is not valid UTF-8; rename it"))
                continue
            if path.is_symlink():
                try:
                    problem = link_problem(path, real_root)
                except FileNotFoundError:
                    continue                 # vanished since the folder was listed
                if problem:
                    skipped.append(Skipped(rel, problem))
                    continue
            if not path.is_file():
                continue
            found.append(path)
    return found, skipped


def relative_path(path: Path, root: Path) -> str:
    p, r = os.fspath(path), os.fspath(root)
    prefix = r if r.endswith(os.sep) else r + os.sep
    if p.startswith(prefix) and os.sep == "/":     # a path found under root: no relpath (64k notes: seconds)
        return p[len(prefix):]
    return Path(os.path.relpath(path, root)).as_posix()


def printable(name: str) -> str:
    """A file name that may hold undecodable bytes (surrogate escapes), safe to print and store as JSON."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def link_problem(path: Path, root: Path) -> str | None:
    """Why the file at `path` (a path inside `root`) must not be read, judged by where its links lead; None
    when it may be. The one check for every reader (indexer, section reader, APIs): a link that is broken,
    loops, leaves the notes folder or reaches a hidden file or folder inside it (`.git/config`,
    `.private/x.md`) is refused, so hidden stays hidden however it is reached.
    FileNotFoundError when nothing is at `path` any more."""
    real_root = Path(root).resolve()
    try:
        real = Path(path).resolve(strict=True)
    except FileNotFoundError:
        if not os.path.lexists(path):
            raise
        return "broken or looping symlink"
    except (OSError, RuntimeError):
        return "broken or looping symlink"
    if not real.is_relative_to(real_root):
        return "symlink points outside the notes folder"
    if any(part.startswith(".") for part in real.relative_to(real_root).parts):
        return "symlink points to a hidden file"
    return None


def read_regular(path: Path, root: Path) -> bytes | str:
    """The bytes of a regular file inside root, or the reason it cannot be read.

    Checked at read time, not only at discovery, because the vault can change in between: a note replaced by
    a link out of the folder or to a hidden file is never read, and a FIFO or device never blocks a reader
    (it is opened non-blocking and refused before any read). FileNotFoundError when the file is gone."""
    problem = link_problem(path, root)
    if problem:
        return problem
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return "not a regular file"
        if st.st_size > MAX_NOTE_BYTES:
            return f"larger than {MAX_NOTE_BYTES // (1024 * 1024)} MB"
        data = fh.read(MAX_NOTE_BYTES + 1)
    if len(data) > MAX_NOTE_BYTES:
        return f"larger than {MAX_NOTE_BYTES // (1024 * 1024)} MB"
    return data


def decode(data: bytes) -> tuple[str, str | None]:
    """Bytes to text: UTF-8 (BOM allowed), UTF-16 with BOM, else cp1252/Latin-1. Returns (text, warning)."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace"), None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace"), None
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "not UTF-8; read as Windows-1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "not UTF-8; read as Latin-1"


def looks_binary(data: bytes) -> bool:
    head = data[:8192]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return False
    return b"\x00" in head


def split_lines(text: str) -> list[str]:
    lines = _LINE_BREAK.split(text)
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def read_note(path: Path, root: Path, data: bytes | None = None) -> Note | Skipped:
    """Read one file into a Note, or say why it was skipped."""
    rel = relative_path(path, root)
    try:
        if data is None:
            data = read_regular(path, root)
            if isinstance(data, str):
                return Skipped(rel, data)
    except FileNotFoundError:
        return Skipped(rel, "vanished while indexing")
    except OSError as exc:
        return Skipped(rel, f"unreadable: {exc.strerror or exc}")
    if looks_binary(data):
        return Skipped(rel, "not a text file (binary content)")
    text, enc_warning = decode(data)
    lines = split_lines(text)
    warnings = [enc_warning] if enc_warning else []
    metadata, body_start, fm_warning = parse_frontmatter(lines)
    if fm_warning:
        warnings.append(fm_warning)
    title = _title(metadata, lines, body_start, path)
    return Note(
        path=rel,
        title=title,
        lines=lines,
        body_start=body_start,
        tags=_merge_unique(_as_list(metadata.get("tags")) + inline_tags(lines[body_start:])),
        aliases=_as_list(metadata.get("aliases") or metadata.get("alias")),
        metadata=_plain(metadata),
        content_hash=hashlib.sha256(data).hexdigest(),
        warnings=warnings,
    )


def parse_frontmatter(lines: list[str]) -> tuple[dict, int, str | None]:
    """(metadata, index of first body line, warning). A broken block is a warning, never fatal."""
    if not lines or lines[0].strip() != "---":
        return {}, 0, None
    end = next((i for i in range(1, len(lines)) if lines[i].strip() in ("---", "...")), None)
    if end is None:
        return {}, 0, "frontmatter block is never closed; read as text"
    import frontmatter
    import yaml

    block = "\n".join(["---", *lines[1:end], "---", ""])
    try:
        meta = frontmatter.loads(block).metadata
    except (yaml.YAMLError, ValueError, TypeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return {}, end + 1, f"invalid YAML frontmatter ignored: {first}"
    if not isinstance(meta, dict):
        return {}, end + 1, "frontmatter is not a mapping; ignored"
    return meta, end + 1, None


def _title(meta: dict, lines: list[str], body_start: int, path: Path) -> str:
    title = meta.get("title")
    if isinstance(title, (str, int, float)) and str(title).strip():
        return str(title).strip()
    fences = Fences()
    for line in lines[body_start:]:
        m = None if fences.feed(line) else _H1.match(line)
        if m:
            return m.group(1).strip()
    name = path.name
    for suffix in NOTE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def inline_tags(lines: list[str]) -> list[str]:
    tags: list[str] = []
    fences = Fences()
    for line in lines:
        if fences.feed(line) or re.match(r"^#{1,6}\s", line):
            continue
        tags.extend(_INLINE_TAG.findall(line))
    return tags


def _as_list(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip().lstrip("#") for v in re.split(r"[,\s]+", value) if v.strip()]
    if isinstance(value, (list, tuple, set)):
        return [str(v).strip().lstrip("#") for v in value if v is not None and str(v).strip()]
    return [str(value)]


def _merge_unique(items: list[str]) -> list[str]:
    seen: dict[str, str] = {}
    for item in items:
        seen.setdefault(item.lower(), item)
    return list(seen.values())


def _plain(value):
    """Frontmatter values as JSON-safe data (dates become ISO strings)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    if isinstance(value, (_dt.date, _dt.datetime, _dt.time)):
        return value.isoformat()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def iter_notes(root: Path) -> Iterator[Note | Skipped]:
    paths, skipped = find_notes(root)
    yield from skipped
    for path in paths:
        yield read_note(path, root)
