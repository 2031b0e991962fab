"""What changed since the last build, by stat only: whether the index is stale, which notes were added, changed
or removed, and why an existing index cannot be updated in place; and the notes folder to read when none is given
(notes_dir: the one the index was built from)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import ChunkSettings, env_or, index_dir
from ..errors import AzchatError, NotesNotFoundError
from .embedding import Embedder, prefixes, recorded_prefixes
from .notetable import notes_of, scan_notes
from .store import CURRENT, read_manifest


def _stat(path: Path):
    try:
        st = path.stat()
        return st.st_mtime_ns, st.st_size
    except OSError:
        return None


def incompatibility(manifest: dict, embedder: Embedder, settings: ChunkSettings) -> str:
    """Why an existing index cannot be updated in place ("" when it can)."""
    if manifest.get("embedder") != embedder.name:
        return f"the model changed ({manifest.get('embedder')} -> {embedder.name})"
    if manifest.get("dim") != embedder.dim:
        return "the embedding dimension changed"
    if recorded_prefixes(manifest) != prefixes(embedder):
        return f"the model's query/passage prefixes changed ({recorded_prefixes(manifest)} -> {prefixes(embedder)})"
    if manifest.get("chunker") != settings.to_dict():
        return "the chunker settings changed"
    return ""


def check_notes_or_index(notes_dir, index_dir) -> None:
    """NotesNotFoundError when there is neither a notes folder nor an index built from one: nothing to answer
    from. An index alone is enough (its notes folder may be on a disk that is not mounted now)."""
    if not Path(notes_dir).is_dir() and not (Path(index_dir) / CURRENT).exists():
        raise NotesNotFoundError(f"Notes folder {notes_dir} does not exist or is not a folder.")


def is_stale(notes_dir, index_dir) -> bool:
    """True when a note was added, removed or touched since the last build (stat only, no reading)."""
    changes = note_changes(notes_dir, index_dir, stop_early=True)
    return changes is None or any(changes.values())


def note_changes(notes_dir, index_dir, stop_early: bool = False) -> dict[str, list[str]] | None:
    """The notes added, changed (touched) and removed since the last build, by stat only, as
    {"added", "changed", "removed"} lists of paths relative to the notes folder; None when there is no index
    or it was built with older chunking rules (everything needs building). `stop_early`: stop at the first."""
    manifest = read_manifest(Path(index_dir))
    if manifest is None or manifest.get("chunker") != ChunkSettings().to_dict():
        return None   # no index, or one built with older chunking/tokenization rules
    _, rels, stats, _ = scan_notes(Path(notes_dir))
    names, same = notes_of(manifest).match(rels, stats)   # compared with the notes table's stat column
    known = set(names)
    skipped = manifest.get("skipped", {})
    out: dict[str, list[str]] = {"added": [], "changed": [], "removed": []}
    for i in np.flatnonzero(~same).tolist():
        rel, st = rels[i], stats[i]
        if rel not in known:
            bad = skipped.get(rel)
            if bad and st == (bad.get("mtime_ns"), bad.get("size")):
                continue          # a file skipped last time (binary, unreadable) and untouched since
            out["added"].append(rel)
        else:
            out["changed"].append(rel)
        if stop_early and (out["added"] or out["changed"]):
            return out
    out["removed"] = sorted(known.difference(rels))
    return out


def pending_changes(notes_dir, index_dir) -> dict[str, int] | None:
    """note_changes counted: {"added", "changed", "removed"} numbers of notes (a touched note may turn out
    unchanged when read); None when everything needs building."""
    changes = note_changes(notes_dir, index_dir)
    return None if changes is None else {k: len(v) for k, v in changes.items()}



# -- the notes folder an index was built from -------------------------------------------------------
def notes_dir(value=None, index=None) -> Path:
    """The notes folder: given, else AZCHAT_NOTES, else the folder the index was built from (while it exists:
    a moved checkout falls back), else ./notes. So `azchat ask` after `azchat index --notes ~/vault` reads
    ~/vault, and never rebuilds that index from whatever ./notes happens to be."""
    chosen = env_or(value, "AZCHAT_NOTES", None)
    if chosen is not None:
        return Path(chosen)
    built_from = _built_from(index_dir(index))
    return built_from if built_from is not None and built_from.is_dir() else Path("notes")


def _built_from(index: Path) -> Path | None:
    """The notes folder an index's manifest records (None without a readable index)."""
    if not (index / "CURRENT").is_file():
        return None
    try:
        recorded = (read_manifest(index) or {}).get("notes_dir")
    except (AzchatError, OSError, ValueError):
        return None
    return Path(recorded) if isinstance(recorded, str) and recorded else None
