"""A written answer from your own model, cited like the quotes: the call (the prompt is prompt.py's, the
citation check citations.py's).

The model gets the question and the numbered passages ask() found, quoted as data between <passage> tags with
an instruction that they are untrusted quotes. Its answer is checked sentence by sentence while it streams in:
a citation [n] that names no passage is removed, a sentence left without a valid citation is left out (a
heading or a "...:" line that introduces cited sentences stays), a code block is kept only when a passage holds
it verbatim, and the numbers are renumbered in the order they are first cited. The citations keep the
extractive shape (path, heading, line span, snippet), narrowed to the passage lines the cited sentences come
from when each sentence has one clear line, else the whole passage.

When retrieval refuses ("not in your notes") the model is not called. When no endpoint is configured, or the
call fails, times out or the model declines, the extractive answer comes back with a one-line notice.

For other front ends: `write_answer(answer)` (one call, no streaming) and `stream_answer(answer)` (the checked
text piece by piece, then the finished written Answer) take the extractive Answer of `Retriever.ask`.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Callable, Iterator

from ..errors import AzchatError
from ..notes.syntax import Fences
from ..types import Answer, Citation, Part, answer_text
from .citations import CitationCheck, _norm
from .prompt import build_messages, select_passages

MODES = ("extractive", "generative")
MAX_TOKENS = 1024                  # the most tokens the model may write for one answer


GeneratedAnswer = Answer   # the old name of a written answer: an Answer with written=True


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise AzchatError(f"Unknown answer mode {mode!r}: use 'extractive' or 'generative'.")
    return mode


# -- the citations' lines ---------------------------------------------------------------------------
def narrow(passage: Citation, claims: list[str]) -> Citation:
    """The citation narrowed to the lines its sentences come from: for each sentence, the passage line that
    shares most of its words (at least half of them, and two), a code line its whole fenced block. The whole
    passage when any sentence has no such line (a paraphrase, or words from several lines)."""
    from ..index.analysis import tokenize

    lines = passage.snippet.split("\n")
    tokens = [set(tokenize(line)) for line in lines]
    blocks = _fenced_blocks(lines)
    first = last = None
    for claim in claims:
        words = set(tokenize(claim))
        if not words:
            continue
        shared = [len(words & t) for t in tokens]
        best = max(range(len(lines)), key=lambda i: (shared[i], -i))
        if shared[best] < max(2, len(words) / 2):
            return passage
        a, b = blocks.get(best, (best, best))
        first, last = (a, b) if first is None else (min(first, a), max(last, b))
    if first is None:
        return passage
    return dataclasses.replace(passage, start_line=passage.start_line + first, end_line=passage.start_line + last,
                               snippet="\n".join(lines[first:last + 1]))


def _fenced_blocks(lines: list[str]) -> dict[int, tuple[int, int]]:
    """Each line inside a closed fenced code block (syntax.Fences' reading) -> (first, last) content line of
    its block."""
    out: dict[int, tuple[int, int]] = {}
    fences = Fences()
    start = None
    for i, line in enumerate(lines):
        if not fences.feed(line):
            continue
        if start is None:
            start = i + 1
        elif not fences.in_code:
            for j in range(start, i):
                out[j] = (start, i - 1) if i > start else (j, j)
            start = None
    return out


# -- the call ---------------------------------------------------------------------------------------
class _Declined(Exception):
    """The endpoint says the model refused (a refusal field, or a content filter)."""


def _strip_thinking(pieces: Iterator[str]) -> Iterator[str]:
    """Drop a leading <think>...</think> block (reasoning models served by Ollama or llama.cpp)."""
    head: str | None = ""
    try:
        for piece in pieces:
            if head is None:
                yield piece
                continue
            head += piece
            stripped = head.lstrip()
            if "<think>".startswith(stripped):
                continue                                 # could still become <think>
            if not stripped.startswith("<think>"):
                yield head
                head = None
                continue
            end = stripped.find("</think>")
            if end >= 0:
                rest = stripped[end + len("</think>"):].lstrip()
                head = None
                if rest:
                    yield rest
        if head and not head.lstrip().startswith("<think>"):
            yield head
    finally:
        pieces.close()


def _call(config, messages: list[dict], stream: bool) -> Iterator[str]:
    """The model's text, piece by piece; raises _Declined, the SDK's errors or LLMConfigError."""
    from .llm import client_for

    client = client_for(config)
    extra = {"max_tokens": MAX_TOKENS}           # a written answer is a few sentences; a runaway one stops here
    if config.temperature is not None:
        extra["temperature"] = config.temperature
    if not stream:
        reply = client.chat.completions.create(model=config.model, messages=messages, **extra)
        choice = reply.choices[0] if reply.choices else None
        if choice is None or getattr(choice.message, "refusal", None) or choice.finish_reason == "content_filter":
            raise _Declined()
        yield choice.message.content or ""
        return
    response = client.chat.completions.create(model=config.model, messages=messages, stream=True, **extra)
    try:
        for chunk in response:
            if not chunk.choices:
                continue
            choice = chunk.choices[0]
            delta = choice.delta
            if (delta is not None and getattr(delta, "refusal", None)) or choice.finish_reason == "content_filter":
                raise _Declined()
            if delta is not None and delta.content:
                yield delta.content
    finally:
        response.close()


def _reason(exc: BaseException, config) -> tuple[str, str]:
    """(failure kind, one line for the user) for an exception from the call; never contains the key."""
    from .llm import LLMConfigError, redact

    if isinstance(exc, _Declined):
        return "refused", "the model declined to answer"
    if isinstance(exc, LLMConfigError):
        return "config", str(exc).rstrip(".")
    import openai

    host = config.host
    if isinstance(exc, openai.APITimeoutError):
        kind, text = "timeout", f"{host} did not answer within {config.timeout:g} s"
    elif isinstance(exc, openai.APIConnectionError):
        kind, text = "connection", f"cannot reach {host}"
    elif isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
        kind, text = "auth", f"{host} refused the API key (HTTP {exc.status_code})"
        if not config.api_key:
            text = f"{host} wants an API key (HTTP {exc.status_code}) and AZCHAT_LLM_API_KEY is not set"
    elif isinstance(exc, openai.NotFoundError):
        kind, text = "model", f"{host} has no model or deployment named {config.model!r} (HTTP 404)"
    elif isinstance(exc, openai.APIStatusError):
        body = getattr(exc, "body", None)
        detail = body.get("message") if isinstance(body, dict) else None
        if not isinstance(detail, str):
            detail = re.sub(r"^Error code: \d+ - ", "", str(getattr(exc, "message", "") or ""))
        detail = _norm(detail)[:160]
        kind, text = "status", f"{host} answered HTTP {exc.status_code}" + (f": {detail}" if detail else "")
    else:
        detail = _norm(str(exc))[:160]
        kind, text = "error", f"{type(exc).__name__} from {host}" + (f": {detail}" if detail else "")
    return kind, redact(text, config)


def _fallback(answer: Answer, config, kind: str, reason: str) -> Answer:
    reason = _norm(reason)
    return _quotes(answer, model=config.model if config is not None else "", failure=kind,
                   notice=f"No written answer: {reason}; showing the quotes from your notes instead.")


def _quotes(answer: Answer, **fields) -> Answer:
    """The extractive answer as the result of a written one that was not (or could not be) written."""
    return dataclasses.replace(answer, citations=list(answer.citations), hits=list(answer.hits),
                               parts=list(answer.parts), written=True, mode="extractive", **fields)


def written_header(model: str) -> str:
    """The first line of a written answer (the extractive one starts "From your notes:")."""
    return f"Written by {model} from your notes:\n\n"


def stream_answer(answer: Answer, config=None, stream: bool = True) -> Iterator[str | Answer]:
    """The written answer for an extractive Answer: yields the checked text as it arrives, then (always last)
    the finished Answer (written=True). `config` defaults to the environment's (llm.load_config)."""
    from .llm import LLMConfigError, load_config

    if config is None:
        try:
            config = load_config()
        except LLMConfigError as exc:
            yield _fallback(answer, None, "config", str(exc).rstrip("."))
            return
    if config is None:
        yield _fallback(answer, None, "config", "no model endpoint is configured (set AZCHAT_LLM_BASE_URL and "
                                                "AZCHAT_LLM_MODEL, or AZURE_OPENAI_*; see the README)")
        return
    if not answer.found or not answer.hits:      # "not in your notes": the model is not asked
        yield _quotes(answer, model=config.model)
        return
    passages = select_passages(answer)
    check = CitationCheck(passages)
    header = written_header(config.model)       # shown with the first checked text, not before
    pieces = _strip_thinking(_call(config, build_messages(answer.question, passages), stream))
    try:
        while not check.refused:
            try:
                piece = next(pieces)
            except StopIteration:
                break
            except Exception as exc:   # the endpoint's failure, whatever its kind, becomes the notice
                yield _fallback(answer, config, *_reason(exc, config))
                return
            shown = check.feed(piece)
            if shown:
                yield header + shown
                header = ""
    finally:
        pieces.close()
    shown = check.finish()
    if shown:
        yield header + shown
    if check.refused:
        yield _fallback(answer, config, "refused", "the model found no answer in the passages")
        return
    if not check.kept:
        yield _fallback(answer, config, "uncited", "the model's answer cited none of the passages")
        return
    citations = [narrow(dataclasses.replace(passages[k - 1], n=n), check.claims.get(k, []))
                 for n, k in enumerate(check.order, start=1)]
    problems = []
    if check.dropped:
        problems.append(f"left out {check.dropped} part{'s' if check.dropped != 1 else ''} that cited no "
                        f"passage")
    if check.unsafe:
        problems.append(f"left out {check.unsafe} part{'s' if check.unsafe != 1 else ''} with a link, image, "
                        f"HTML or file name that the cited notes do not hold")
    if check.invented:
        problems.append(f"removed {check.invented} citation{'s' if check.invented != 1 else ''} of passages "
                        f"that do not exist")
    notice = ("Checked the model's answer: " + " and ".join(problems) + ".") if problems else ""
    intro, parts = written_header(config.model).strip(), [Part(check.text, style="written")]
    yield Answer(answer.question, answer_text(intro, parts, citations), True, citations,
                 list(answer.hits), intro, parts, written=True, mode="generative", model=config.model,
                 notice=notice, dropped=check.dropped, invented=check.invented, unsafe=check.unsafe)


def write_answer(answer: Answer, config=None, on_text: Callable[[str], None] | None = None) -> Answer:
    """The written answer in one call: streamed to `on_text` piece by piece when given, else one request
    without streaming. The one-line hook for front ends: `write_answer(retriever.ask(question)).to_dict()`."""
    for item in stream_answer(answer, config, stream=on_text is not None):
        if isinstance(item, Answer):
            return item
        if on_text is not None:
            on_text(item)
    raise AssertionError("stream_answer ends with the answer")   # pragma: no cover


def answer_in_mode(answer: Answer, mode: str, on_text: Callable[[str], None] | None = None) -> Answer:
    """Retriever.ask's hook: the extractive answer as it is, or the written one."""
    if check_mode(mode) == "extractive":
        return answer
    return write_answer(answer, on_text=on_text)
