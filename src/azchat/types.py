"""Plain data passed between the stages: notes -> chunks -> hits -> answers."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Note:
    """One markdown file as read from disk."""

    path: str                      # relative to the notes folder, "/" separators
    title: str
    lines: list[str]               # the file's lines as on disk (no line endings)
    body_start: int                # 0-based index of the first line after frontmatter
    tags: list[str] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)
    content_hash: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def folder(self) -> str:
        return self.path.rsplit("/", 1)[0] if "/" in self.path else ""

    @property
    def description(self) -> str:
        """The frontmatter's one-line summary (`description`, `summary` or `excerpt`); a template placeholder
        that repeats its own key ("description: description") is no summary."""
        for key in ("description", "summary", "excerpt"):
            value = self.metadata.get(key)
            if isinstance(value, str) and value.strip() and value.strip().lower() != key:
                return " ".join(value.split())
        return ""


@dataclass
class Chunk:
    """A heading-aware piece of a note; what gets embedded and retrieved."""

    id: str
    path: str
    title: str
    heading: str                   # heading path, "Networking > NSG"
    start_line: int                # 1-based, inclusive, in the file on disk
    end_line: int
    text: str                      # raw text of the span (a substring of those lines)
    embed_text: str                # what the embedder sees: title, heading, cleaned body
    search_text: str               # what BM25 sees
    tags: list[str] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)

    @property
    def folder(self) -> str:
        return self.path.rsplit("/", 1)[0] if "/" in self.path else ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Chunk":
        return cls(**d)


@dataclass
class Hit:
    """A retrieved chunk with its citation fields."""

    rank: int
    path: str
    title: str
    heading: str
    start_line: int
    end_line: int
    score: float
    text: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Citation:
    """A numbered source quoted in an answer."""

    n: int
    path: str
    title: str
    heading: str
    start_line: int
    end_line: int
    snippet: str

    @property
    def location(self) -> str:
        if self.start_line == self.end_line:
            return f"{self.path}:{self.start_line}"
        return f"{self.path}:{self.start_line}-{self.end_line}"

    def source_line(self) -> str:
        """The answer's line for this source: "[n] title › heading — path:lines" (the one spelling of it)."""
        heading = f" › {self.heading}" if self.heading and self.heading != self.title else ""
        return f"[{self.n}] {self.title}{heading} — {self.location}"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Part:
    """One piece of an answer's body as it is shown: a quoted unit of a note (extractive) or the text the model
    wrote (written), with the citation it ends with."""

    text: str
    n: int | None = None        # the citation number the piece ends with ("[n]"); None for written text
    style: str = "text"         # text | code (one command line, shown as code) | block (lines kept, indented
                                # under their bullet: a list, a table, code with its explanation) | written


@dataclass
class Answer:
    """An answer as every surface renders it: the whole text (`answer`, what the CLI prints and the JSON
    carries) and its structure (intro, parts, citations) for renderers that show more than text.

    A written answer (answer/written.py) is an Answer too, with written=True: mode "generative" when the
    model's checked text is shown; when it could not be used, mode stays "extractive" (the quotes are shown)
    and `notice` and `failure` say why."""

    question: str
    answer: str
    found: bool
    citations: list[Citation] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    intro: str = ""                    # "From your notes:", "Written by <model> from your notes:"
    parts: list[Part] = field(default_factory=list)
    read_as: str = ""                  # a follow-up question was read together with this earlier question
    # when a written answer was asked for (written=True; answer/written.py):
    written: bool = False
    mode: str = "extractive"           # the answer shown: "generative" (the model's checked text) or the quotes
    model: str = ""                    # the model's name
    notice: str = ""                   # one line: why it fell back to the quotes, or what the check left out
    failure: str = ""                  # why it fell back: config|timeout|connection|auth|model|status|refused|
                                       # uncited|error ("" when it did not)
    dropped: int = 0                   # sentences left out because they cited no passage
    invented: int = 0                  # citation numbers removed because no passage has them
    unsafe: int = 0                    # parts left out for a link, image, HTML, URL or file name

    def to_dict(self) -> dict:
        out = {
            "question": self.question,
            "answer": self.answer,
            "found": self.found,
            "citations": [c.to_dict() for c in self.citations],
        }
        if self.written:
            out.update(mode=self.mode, model=self.model, notice=self.notice)
        return out


def follow_up_line(earlier: str) -> str:
    """The line above an answer to a follow-up question that was read together with the earlier one."""
    return f"(Read as a follow-up to: {earlier})"


def answer_text(intro: str, parts: list[Part], citations: list[Citation]) -> str:
    """The one plain-text form of an answer: the intro, one bullet per quoted part ending in its [n] (a written
    part as the model wrote it), then the sources, one line each."""
    body = []
    for part in parts:
        if part.style == "written":
            body.append(part.text)
            continue
        shown = {"code": f"`{part.text}`", "block": "\n  ".join(part.text.split("\n"))}.get(part.style, part.text)
        body.append(f"- {shown} [{part.n}]")
    return f"{intro}\n\n" + "\n".join(body) + "\n\nSources:\n" + "\n".join(c.source_line() for c in citations)


@dataclass
class BuildStats:
    """What an index build did; the shape of `azchat index --json`."""

    notes: int = 0
    chunks: int = 0
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    skipped: list[dict] = field(default_factory=list)    # {"path", "reason"}
    warnings: list[dict] = field(default_factory=list)   # {"path", "message"}
    seconds: float = 0.0
    embedded: int = 0
    full_rebuild_reason: str = ""

    def to_dict(self) -> dict:
        return {
            "notes": self.notes, "chunks": self.chunks, "added": self.added,
            "updated": self.updated, "removed": self.removed, "unchanged": self.unchanged,
            "skipped": self.skipped, "warnings": self.warnings,
            "seconds": round(self.seconds, 3), "embedded": self.embedded,
            "full_rebuild_reason": self.full_rebuild_reason,
        }
