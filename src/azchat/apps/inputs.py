"""Input checks for every surface (CLI, chat and its API, REST, MCP): one place for the caps and for the
one-sentence errors (InputError: CLI exit 2, HTTP 400, an MCP tool error, a chat error)."""
from __future__ import annotations

from ..errors import InputError

MAX_K = 50                  # hits per search
MAX_QUERY_CHARS = 2000      # a question longer than this is not a question


def text(value, name: str = "query") -> str:
    """A query or question: a non-blank string of at most MAX_QUERY_CHARS characters, stripped."""
    if not isinstance(value, str) or not value.strip():
        verb = "search for" if name == "query" else "ask"
        raise InputError(f"The {name} is empty: give a few words to {verb}.")
    value = value.strip()
    if len(value) > MAX_QUERY_CHARS:
        raise InputError(f"The {name} is {len(value)} characters long; at most {MAX_QUERY_CHARS} are allowed.")
    return value


def whole(value, name: str, low: int, high: int | None = None) -> int:
    """A whole number in [low, high] (high None: no upper bound); digit strings are accepted ("5")."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    elif isinstance(value, float) and value.is_integer():
        value = int(value)                  # Gradio's number inputs arrive as floats
    if not isinstance(value, int) or isinstance(value, bool):
        raise InputError(f"{name} must be a whole number, not {value!r}.")
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise InputError(f"{name} must be {bounds}, not {value}.")
    return value


def k(value) -> int:
    """How many hits a search returns: 1..MAX_K."""
    return whole(value, "k", 1, MAX_K)


def tags(tag) -> list[str] | None:
    """Tags as a list: None, one tag, a list, or a comma-separated string ("azure, networking")."""
    if tag is None or tag == "":
        return None
    items = [tag] if isinstance(tag, str) else tag
    if not isinstance(items, (list, tuple)) or not all(isinstance(t, str) for t in items):
        raise InputError(f"tag must be a tag or a list of tags, not {tag!r}.")
    out = [p.strip().lstrip("#") for t in items for p in t.split(",") if p.strip().lstrip("#")]
    if any(len(t) > MAX_QUERY_CHARS for t in out):
        raise InputError(f"A tag is longer than {MAX_QUERY_CHARS} characters.")
    return out or None


def folder(value) -> str | None:
    """A folder of the notes folder, or None for all of them."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InputError(f"folder must be a folder path, not {value!r}.")
    if len(value) > MAX_QUERY_CHARS:
        raise InputError(f"The folder is {len(value)} characters long; at most {MAX_QUERY_CHARS} are allowed.")
    return value.strip().strip("/") or None


def note_path(value) -> str:
    """A note's path as search returns it (relative to the notes folder)."""
    if not isinstance(value, str) or not value.strip():
        raise InputError("No note path was given: use a path from search, e.g. 'folder/note.md'.")
    if len(value) > MAX_QUERY_CHARS:
        raise InputError(f"The note path is {len(value)} characters long; at most {MAX_QUERY_CHARS} are allowed.")
    return value.strip()


def mode(value) -> str:
    """The answer's mode: extractive (the default) or generative."""
    if value in (None, ""):
        return "extractive"
    if value not in ("extractive", "generative"):
        raise InputError(f"mode must be 'extractive' or 'generative', not {value!r}.")
    return value
