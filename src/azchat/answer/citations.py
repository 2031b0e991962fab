"""The streaming citation check of a written answer.

The model's answer is checked sentence by sentence while it streams in: a citation [n] that names no passage
is removed, a sentence left without a valid citation is left out (a heading or a "...:" line that introduces
cited sentences stays), a code block is kept only when a passage holds it verbatim, and the numbers are
renumbered in the order they are first cited.
"""
from __future__ import annotations

import re

from ..notes.syntax import fence_of
from ..types import Citation
from .prompt import REFUSAL

_CITE = re.compile(r"\[\s*(?:(?:passage|source|quote)\s*|\^)?(\d{1,3}(?:\s*(?:,|;|-|–|and)\s*"
                   r"(?:(?:passage|source)\s*)?\d{1,3})*)\s*\]", re.IGNORECASE)
_CITES = r"(?:\s*\[[^\[\]\n]{1,40}\])*"
# a sentence ends at . ! ? (closing quotes and citations after it belong to it) before a space and a character
# that is not a lowercase letter ("e.g. the" goes on)
_END = re.compile(r"[.!?]+[\"'”’)]*(" + _CITES + r")(\s+)(?=[^\s])")
# a sentence end that more text could still complete: "." at the end, maybe with quotes, citations, spaces
_PENDING = re.compile(r"[.!?]+[\"'”’)]*(?:\s*\[[^\[\]\n]{1,40}\])*(?:\s*\[[^\[\]\n]{0,40})?\s*\Z")
_OPEN_CITE = re.compile(r"\[[^\[\]\n]{0,40}\Z")
_RUN = re.compile(r"(?<![.!?])[.!?]")
_PENDING_WINDOW = 256              # ...looked for in the last this many characters (longer: at the line's end)
_PREFIX = re.compile(r"\s*(?:[-*+]\s+|\d{1,3}[.)]\s+|>\s*)?")
_SOURCES = re.compile(r"\s*(?:\*\*|#+\s*)?(?:sources?|references?|quellen)\s*:?\s*(?:\*\*)?\s*:?\s*", re.IGNORECASE)
_HEADING = re.compile(r"#{1,6}\s")


# what a written answer may not carry unless the cited notes do (a note's injected text must not forge a
# source or make a client that renders the markdown fetch a URL with passage text in it)
_CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", re.DOTALL)
_IMAGE = re.compile(r"!\[[^\]\n]*\]\s*[(\[]")
_LINK = re.compile(r"\]\(|\]\[[^\]\n]*\]|^\s*\[[^\]\n]+\]:\s*\S")
_HTML = re.compile(r"<\s*/?\s*[A-Za-z][\w:-]*(?:\s[^<>]*)?/?\s*>|<!--|<\?|<!\w|&#")
_URL = re.compile(r"(?:\b[A-Za-z][A-Za-z0-9+.-]{1,15}://|\bwww\.|\b(?:mailto|javascript|data|file|vbscript):)"
                  r"[^\s<>()\[\]`]*", re.IGNORECASE)
_NOTE_NAME = re.compile(r"[^\s`'\"<>()\[\]|*]*[\w-]\.(?:md|markdown|mdx)\b(?::\d+(?:-\d+)?)?", re.IGNORECASE)
_FILE_PATH = re.compile(r"(?<![\w/.])(?:~|\.{1,2})?/(?:[\w.-]+/)*[\w.-]*\w|\b[A-Za-z]:\\[^\s]+")


def _unsafe(text: str, passages: list[Citation]) -> str:
    """Why a sentence or line of the model's may not be shown ("" when it may): an image, a link or raw HTML,
    a URL or a file path that the passages it cites do not hold verbatim, or a note's file name that is
    none of theirs ("According to secrets/vault.md:1-9, ..."). Code spans are shown as code, so they count
    only for file names."""
    plain = _CITE.sub(" ", _CODE_SPAN.sub(" ", text))
    if _IMAGE.search(plain):
        return "image"
    if _HTML.search(plain):
        return "html"
    if any(_LINK.search(line) for line in plain.split("\n")):
        return "link"
    quoted = "\n".join(p.snippet for p in passages)
    for m in _URL.finditer(plain):
        if m.group(0).rstrip(".,;:!?'\"") not in quoted:
            return "url"
    for m in _FILE_PATH.finditer(plain):
        if m.group(0) not in quoted:
            return "path"
    names = [p.path for p in passages]
    for m in _NOTE_NAME.finditer(text):
        name = m.group(0).split(":")[0].lstrip("./")
        if not any(n.endswith(name) and (len(n) == len(name) or not n[-len(name) - 1].isalnum()) for n in names):
            return "file name"
    return ""


def _norm(text: str) -> str:
    return " ".join(text.split())


def _outside_code(line: str, pos: int) -> bool:
    return line.count("`", 0, pos) % 2 == 0


class CitationCheck:
    """Checks the model's text as it streams: feed() pieces, then finish(); each returns the text that is
    ready to show. `order` holds the passage numbers in the order they were first cited (citation n is
    passage order[n-1])."""

    def __init__(self, passages: list[Citation]):
        self.count = len(passages)
        self._texts = [[_norm(l) for l in p.snippet.split("\n") if l.strip()] for p in passages]
        self.order: list[int] = []
        self.dropped = self.invented = self.kept = 0
        self.refused = False
        self.ended = False             # the model began its own "Sources:" list; the rest is ignored
        self.text = ""                 # everything returned so far
        self._any = False              # something was written (self.text lags behind within one feed)
        self._buf = ""
        self._line_start = True
        self._prefix = ""              # the current line's list marker, written before its first kept sentence
        self._line_out = False         # something of the current line was written
        self._line_units = 0           # sentences seen on the current line
        self._line_kept = 0
        self._newlines = 0             # line breaks owed before the next written text
        self._held: list[str] = []     # headings and "...:" lines, written before the next kept sentence
        self._code: list[str] | None = None    # the lines of an open code fence
        self._last_cited: set[int] = set()
        self.claims: dict[int, list[str]] = {}     # passage -> the kept sentences (or code lines) citing it
        self.unsafe = 0                # parts left out for a link, image, HTML or file name (_unsafe)
        self._passages = list(passages)
        # the partial line is scanned once, not again for every piece: sentence ends before _scan are settled;
        # _ticks backticks lie in _buf[:_tick_pos] (code spans: a "." inside one ends nothing)
        self._scan = self._tick_pos = self._ticks = 0

    # the stream ---------------------------------------------------------------------------------
    def feed(self, piece: str) -> str:
        if self.refused or self.ended:
            return ""
        start = len(self._buf)         # a newline can only be in the new piece
        self._buf += piece
        out: list[str] = []
        while not self.refused and not self.ended:
            nl = self._buf.find("\n", start)
            if nl >= 0:
                line, self._buf = self._buf[:nl], self._buf[nl + 1:]
                self._rescan()
                start = 0
                out.append(self._line(line, final=True))
                continue
            out.append(self._line(None, final=False))
            break
        return self._emit("".join(out))

    def finish(self) -> str:
        out = ""
        if not self.refused and not self.ended:
            line, self._buf = self._buf, ""
            self._rescan()
            out = self._line(line, final=True)
            if self._code is not None:        # a fence the model never closed
                out += self._close_code()
        return self._emit(out)

    def _emit(self, text: str) -> str:
        self.text += text
        return text

    # lines and sentences ------------------------------------------------------------------------
    def _rescan(self) -> None:
        """The buffer starts afresh (a new line, or the rest after a sentence): scan it from its start."""
        self._scan = self._tick_pos = self._ticks = 0

    def _ends(self, text: str, partial: bool):
        """The sentence ends (_END matches) in text that lie outside code spans; in a partial line from where
        the last scan of the buffer left off (each character is scanned about once, however small the pieces)."""
        if not partial:
            ticks = 0
            last = 0
            for m in _END.finditer(text):
                ticks += text.count("`", last, m.start())
                last = m.start()
                if ticks % 2 == 0:
                    yield m
            return
        for m in _END.finditer(text, self._scan):
            if _OPEN_CITE.match(text, m.end()):
                break                  # "e.g. [2": the citation may still grow this sentence end; later
            self._ticks += text.count("`", self._tick_pos, m.start())
            self._tick_pos = m.start()
            self._scan = m.end()
            if self._ticks % 2 == 0:
                yield m

    def _settle(self, text: str) -> None:
        """After a partial scan: resume the next one at the first sentence end that more text could still
        complete (a "." at the end, maybe with quotes, citations or spaces after it), else at the end."""
        for run in _RUN.finditer(text, max(self._scan, len(text) - _PENDING_WINDOW)):
            if _PENDING.match(text, run.start()):
                self._scan = run.start()
                return
        self._scan = len(text)

    def _line(self, line: str | None, final: bool) -> str:
        """Process a whole line (final) or what has arrived of the current one (line None: the buffer)."""
        partial = line is None
        text = self._buf if partial else line
        if self._code is not None:
            if partial:
                return ""
            if fence_of(text):
                return self._close_code()
            self._code.append(text)
            return ""
        if self._line_start:
            if partial:
                if next(self._ends(text, partial=True), None) is None:
                    self._settle(text)
                    return ""                           # not one whole sentence yet: what kind of line is it?
                self._rescan()                          # the line's kind is known: its sentences from the start
            if not partial and _SOURCES.fullmatch(text):
                self.ended = True                       # the model's own list of sources: ours follows
                return ""
            if fence_of(text):
                if partial:
                    return ""
                self._code = [text]
                return ""
            if _HEADING.match(text.lstrip()):
                if partial:
                    return ""
                self._hold_line(text.strip(), heading=True)
                return ""
            self._prefix = _PREFIX.match(text).group(0)
            text = text[len(self._prefix):]
            if partial:
                self._buf = text
            self._line_start = False
        out: list[str] = []
        pos = 0
        for m in self._ends(text, partial):
            if m.start() < pos:
                continue
            if text[m.end()].islower() or (not m.group(1).strip() and _abbreviation(text, m.start())):
                continue
            out.append(self._sentence(text[pos:m.end(1)]))
            pos = m.end()
        rest = text[pos:]
        if partial:
            if pos:                                     # the rest is the buffer now: its own positions
                self._scan = max(self._scan - pos, 0)
                self._tick_pos = self._ticks = 0        # code spans are counted from the rest's start
            self._buf = rest
            self._settle(rest)
            return "".join(out)
        if rest.strip():
            out.append(self._sentence(rest.strip(), last=True))
        out.append(self._end_line(text))
        return "".join(out)

    def _end_line(self, text: str) -> str:
        if self._line_out:
            self._newlines = 1
        elif not text.strip() and not self._line_units and not self._prefix.strip() and self._newlines:
            self._newlines = 2                          # a blank line after written text: a paragraph break
        self._line_start, self._line_out, self._prefix = True, False, ""
        self._line_units = self._line_kept = 0
        return ""

    def _sentence(self, sentence: str, last: bool = False) -> str:
        sentence = sentence.strip()
        if not sentence:
            return ""
        self._line_units += 1
        if not self.kept and not self._any and _norm(sentence).upper().strip(".!").startswith(REFUSAL):
            self.refused = True
            return ""
        cited = self._valid_citations(sentence)
        if cited and _unsafe(sentence, [self._passages[k - 1] for k in cited]):
            self.unsafe += 1                  # a link, image, HTML or a file name the cited notes do not hold
            self._held = [h for h in self._held if h.startswith("#")]
            return ""
        checked = self._cite(sentence)
        if checked is None:
            if last and self._line_units == 1 and sentence.endswith(":"):
                self._hold_line(self._prefix + sentence, heading=False)
            else:
                self._dropped()
            return ""
        unsafe_held = [h for h in self._held if _unsafe(h, self._passages)]
        if unsafe_held:                       # a heading or "...:" line with one: left out, the sentence stays
            self.unsafe += len(unsafe_held)
            self._held = [h for h in self._held if h not in unsafe_held]
        return self._write(checked)

    def _valid_citations(self, sentence: str) -> list[int]:
        """The passage numbers the sentence cites that exist (what _cite keeps), without numbering them."""
        found: list[int] = []
        for m in _CITE.finditer(sentence):
            if _outside_code(sentence, m.start()):
                found += [k for k in _numbers(m.group(1)) if 1 <= k <= self.count]
        return list(dict.fromkeys(found))

    def _dropped(self) -> None:
        """A part left out: the "...:" line that introduced it goes too (a heading stays for what follows)."""
        self.dropped += 1
        self._held = [h for h in self._held if h.startswith("#")]

    def _hold_line(self, text: str, heading: bool) -> None:
        if heading:
            self._held = []
        self._held.append(text)
        self._line_start, self._prefix = True, ""

    def _write(self, text: str) -> str:
        """Written text: owed line breaks, held lines, the line's list marker, then the sentence."""
        out = []
        if self._held:
            for held in self._held:
                if self._any or out:
                    out.append("\n" * (2 if held.startswith("#") else max(self._newlines, 1)))
                out.append(held)
                self._newlines = 1
            self._held = []
        if not self._line_out:
            if self._any or out:
                out.append("\n" * max(self._newlines, 1))
            out.append(self._prefix)
        else:
            out.append(" ")
        out.append(text)
        self._line_out, self._newlines, self._any = True, 0, True
        self.kept += 1
        return "".join(out)

    def _cite(self, sentence: str) -> str | None:
        """The sentence with its citations renumbered and invented ones removed; None when none is valid."""
        matches = [m for m in _CITE.finditer(sentence) if _outside_code(sentence, m.start())]
        valid_any = False
        pieces, pos, cited = [], 0, set()
        for m in matches:
            numbers = _numbers(m.group(1))
            good = [k for k in numbers if 1 <= k <= self.count]
            self.invented += len(numbers) - len(good)
            valid_any = valid_any or bool(good)
            before = sentence[pos:m.start()]
            if not good and (m.end() == len(sentence) or not sentence[m.end()].isalnum()):
                before = before.rstrip(" \t")          # "it works [9]." -> "it works."
            pieces.append(before)
            pieces.append("".join(f"[{self._number(k)}]" for k in dict.fromkeys(good)))
            cited.update(self._number(k) for k in good)
            pos = m.end()
        if not valid_any:
            return None
        for m in matches:
            for k in dict.fromkeys(_numbers(m.group(1))):
                if 1 <= k <= self.count:
                    self.claims.setdefault(k, []).append(_norm(_CITE.sub(" ", sentence)))
        pieces.append(sentence[pos:])
        out = "".join(pieces)
        self._last_cited = cited
        return out.strip()

    def _number(self, passage: int) -> int:
        if passage not in self.order:
            self.order.append(passage)
        return self.order.index(passage) + 1

    def _close_code(self) -> str:
        block, self._code = self._code or [], None
        self._line_start, self._prefix = True, ""
        body = [_norm(l) for l in block[1:] if l.strip()]
        source = next((k for k, lines in enumerate(self._texts, start=1)
                       if body and all(any(_holds(l, b) for l in lines) for b in body)), None)
        if source is None:
            if body:
                self._dropped()
            return ""
        n = self._number(source)
        self.claims.setdefault(source, []).extend(l for l in block[1:] if l.strip())
        fence = fence_of(block[0])[0]
        lines = [block[0].strip()] + [l for l in block[1:]] + [fence]
        marker = "" if n in self._last_cited else f"\n[{n}]"
        saved_prefix, self._prefix = self._prefix, ""
        out = self._write("\n".join(lines) + marker)
        self._prefix = saved_prefix
        self._line_out, self._newlines = False, 1
        self._last_cited = {n}
        return out


_ABBREVIATIONS = {"e.g", "i.e", "etc", "vs", "z.b", "d.h", "u.a", "bzw", "ca", "usw", "nr", "dr", "mr", "ms", "vgl"}


def _abbreviation(text: str, dot: int) -> bool:
    """The period at `dot` ends an abbreviation ("e.g.", "z.B.", "etc."), not a sentence."""
    word = re.search(r"(\S+)$", text[:dot])
    return bool(word) and word.group(1).lower().lstrip("(") in _ABBREVIATIONS


def _holds(passage_line: str, code_line: str) -> bool:
    """A passage line holds a line of the model's code block: the same, or a long enough part of it (a
    command quoted inside a sentence, without its "$ " prompt)."""
    return code_line == passage_line or (len(code_line) >= 12 and code_line in passage_line)


def _numbers(group: str) -> list[int]:
    out: list[int] = []
    for part in re.split(r"\s*(?:,|;|and)\s*", group):
        bounds = [int(x) for x in re.findall(r"\d+", part)]
        if len(bounds) == 2 and 0 < bounds[1] - bounds[0] < 10:
            out.extend(range(bounds[0], bounds[1] + 1))
        else:
            out.extend(bounds)
    return out
