"""Read a cited section back from a note, safely: the path must stay strictly inside the notes folder."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

from ..errors import SourceError
from .reading import NOTE_SUFFIXES, decode, link_problem, looks_binary, read_regular, split_lines
from .syntax import Fences, heading_of

MAX_SECTION_LINES = 400


@dataclass
class Section:
    """The lines of a note under one heading (down to the next heading of the same or a higher level)."""

    path: str
    heading: str          # the heading line's text ("" when the line is above the first heading)
    start_line: int       # 1-based, inclusive
    end_line: int
    text: str
    truncated: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def check_note_path(rel: str) -> PurePosixPath:
    """The path as a relative note path, checked on its text alone (the disk is not asked): SourceError for
    an absolute path, `..`, hidden parts, NUL bytes, backslashes or a suffix that is not a note's."""
    if not isinstance(rel, str) or not rel.strip():
        raise SourceError("No note path was given.")
    if "\x00" in rel or "\\" in rel:
        raise SourceError(f"{rel!r} is not a valid note path.")
    pure = PurePosixPath(rel)
    if pure.is_absolute() or rel.startswith("~"):
        raise SourceError(f"{rel!r} is outside the notes folder: only paths relative to it are allowed.")
    if any(part in ("..", ".") for part in rel.split("/")) or any(p.startswith(".") for p in pure.parts):
        raise SourceError(f"{rel!r} is outside the notes folder or hidden.")
    if not rel.lower().endswith(NOTE_SUFFIXES):
        raise SourceError(f"{rel!r} is not a markdown note.")
    return pure


def require_indexed(rel: str, manifest: dict) -> None:
    """SourceError unless `rel` is a note in the index (manifest["notes"]). Asked before any file is opened,
    so that one sentence answers for every other file: missing, too big, binary or never indexed alike."""
    check_note_path(rel)
    if rel not in (manifest or {}).get("notes", {}):
        raise SourceError(f"{rel!r} is not a note in the index: use a path that search returns.")


def resolve_note_path(notes_dir, rel: str) -> Path:
    """The file for a path relative to the notes folder, or SourceError when it could leave the folder.

    Rejects what check_note_path rejects, and any symlink (of the file or a folder on the way) that the
    indexer refuses too (notes.link_problem): one that resolves outside the notes folder or to a hidden file
    inside it.
    """
    pure = check_note_path(rel)
    root = Path(notes_dir)
    try:
        real_root = root.resolve(strict=True)
        problem = link_problem(root / pure, real_root)
    except (OSError, RuntimeError):
        raise SourceError(f"The note {rel!r} does not exist in the notes folder.") from None
    if problem:            # the indexer's own reason: outside the folder, hidden, broken or looping
        raise SourceError(f"{rel!r} cannot be shown: {problem}.")
    target = (root / pure).resolve()
    if target == real_root or not target.is_file():
        raise SourceError(f"{rel!r} is not a file.")
    return target


def read_lines(notes_dir, rel: str) -> list[str]:
    """The note's lines as on disk (no line endings), read through resolve_note_path and the indexer's own
    read-time checks (notes.read_regular): a file swapped for a FIFO, a device or a link to a hidden file
    since it was checked is refused, never waited on."""
    resolve_note_path(notes_dir, rel)
    try:
        data = read_regular(Path(notes_dir) / PurePosixPath(rel), Path(notes_dir))
    except OSError as exc:
        raise SourceError(f"Cannot read {rel!r}: {exc.strerror or exc}.") from None
    if isinstance(data, str):
        raise SourceError(f"Cannot show {rel!r}: {data}.")
    if looks_binary(data):
        raise SourceError(f"{rel!r} is not a text file.")
    return split_lines(decode(data)[0])


def indexed_lines(notes_dir, rel: str, manifest: dict) -> list[str]:
    """read_lines for a note of the index only; the index is asked first (require_indexed)."""
    require_indexed(rel, manifest)
    return read_lines(notes_dir, rel)


def _heading_levels(lines: list[str]) -> list[int]:
    """Heading level of each line (0 for none), ignoring `#` lines inside code fences (read as the chunker
    reads them: syntax.Fences)."""
    fences = Fences()
    levels = []
    for raw in lines:
        h = None if fences.feed(raw) else heading_of(raw)
        levels.append(h[0] if h else 0)
    return levels


def read_section(notes_dir, rel: str, line: int, max_lines: int = MAX_SECTION_LINES,
                 manifest: dict | None = None) -> Section:
    """The whole section that contains 1-based `line` of the note at `rel` (with `manifest`: only a note of
    that index, asked before the file is opened)."""
    lines = read_lines(notes_dir, rel) if manifest is None else indexed_lines(notes_dir, rel, manifest)
    if not isinstance(line, int) or isinstance(line, bool) or not 1 <= line <= len(lines):
        raise SourceError(f"{rel!r} has no line {line} (it has {len(lines)}).")
    levels = _heading_levels(lines)
    start = line - 1
    while start > 0 and levels[start] == 0:
        start -= 1
    level = levels[start]
    end = start + 1
    while end < len(lines) and not (levels[end] and (level == 0 or levels[end] <= level)):
        end += 1
    heading = ""
    if level:
        h = heading_of(lines[start])
        heading = h[1] if h else lines[start].strip()
    truncated = end - start > max_lines
    if truncated:
        end = start + max_lines
    return Section(rel, heading, start + 1, end, "\n".join(lines[start:end]), truncated)


__all__ = ["Section", "SourceError", "check_note_path", "indexed_lines", "read_section", "read_lines",
           "require_indexed", "resolve_note_path"]

