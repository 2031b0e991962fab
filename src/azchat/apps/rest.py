"""The JSON REST API (/api/...) that `azchat serve` mounts beside the chat (server.py puts it together).

A thin adapter over tools.py: plain FastAPI routes, served outside Gradio's queue; errors are HTTP status codes
with a one-sentence {"detail"}. AZCHAT_AUTH and the Host/Origin check belong to the Gate (gate.py), in front of
every route of `azchat serve`; build_api's own password check guards the API when it is used on its own.
"""
from __future__ import annotations

import os
import threading
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from .. import __version__
from ..errors import AzchatError, IndexCorruptError, IndexNotFoundError, SourceError
from .gate import AUTH_HINT, CHALLENGE, credentials_ok
from .tools import (MAX_K, AskResult, NoteLines, NotesTools, NotReadyError, SearchResult, StatusResult,
                    ToolInputError)

class _Unauthorized(Exception):
    pass


def _status_for(exc: AzchatError) -> int:
    if isinstance(exc, ToolInputError):
        return 400
    if isinstance(exc, SourceError):
        return 404
    if isinstance(exc, (NotReadyError, IndexNotFoundError, IndexCorruptError)):
        return 503
    return 500


Tags = Annotated[list[str], Query(description="only notes with this tag (repeatable: any of them)")]
Folder = Annotated[str | None, Query(description="only notes under this folder")]
Mode = Annotated[Literal["extractive", "generative"], Query(
    description="generative: your model endpoint writes the answer from the cited passages (AZCHAT_LLM_*)")]


class AskBody(BaseModel):
    question: str = Field(description="a question in plain words")
    tag: str | list[str] | None = Field(None, description="only notes with this tag (or any of these)")
    folder: str | None = Field(None, description="only notes under this folder")
    mode: Literal["extractive", "generative"] = Field(
        "extractive", description="generative: your model endpoint writes the answer from the cited passages "
                                  "(AZCHAT_LLM_*; falls back to the quotes with a notice)")


def concurrency() -> int:
    """How many API calls retrieve at once (AZCHAT_API_CONCURRENCY, default: the CPU count); more wait their
    turn in order instead of all slowing each other down."""
    try:
        return max(1, int(os.environ.get("AZCHAT_API_CONCURRENCY", "")))
    except ValueError:
        return max(1, os.cpu_count() or 1)


def build_api(tools: NotesTools, auth: tuple[str, str] | None = None) -> FastAPI:
    """The REST API as its own FastAPI app (mounted at /api): /search, /ask, /notes/{path}, /status, /docs."""
    slots = threading.Semaphore(concurrency())

    def run(fn, *args):
        with slots:
            return fn(*args)

    def signed_in(request: Request) -> None:      # behind serve's Gate this holds already; standalone it guards
        if not request.scope.get("azchat.signed_in") and \
                not credentials_ok(request.headers.get("authorization"), auth):
            raise _Unauthorized()

    api = FastAPI(title="azchat API", version=__version__, dependencies=[Depends(signed_in)],
                  description="Search, ask and read your markdown notes: the JSON shapes of `azchat search|ask "
                              "--json`. Line numbers are 1-based and inclusive, as in the file on disk.")

    @api.exception_handler(_Unauthorized)
    def unauthorized(request, exc):
        return JSONResponse({"detail": AUTH_HINT}, status_code=401, headers={"WWW-Authenticate": CHALLENGE})

    @api.exception_handler(AzchatError)
    def azchat_error(request, exc: AzchatError):
        return JSONResponse({"detail": str(exc)}, status_code=_status_for(exc))

    @api.exception_handler(RequestValidationError)
    def bad_request(request, exc: RequestValidationError):
        err = (exc.errors() or [{}])[0]
        where = ".".join(str(p) for p in err.get("loc", ())[1:]) or "request"
        return JSONResponse({"detail": f"{where}: {err.get('msg', 'invalid value')}."}, status_code=400)

    errors = {400: {"description": "bad input, e.g. an empty query"}, 401: {"description": "AZCHAT_AUTH is set "
              "and the request has no or wrong credentials"}, 503: {"description": "the index is not ready"}}

    @api.get("/search", response_model=SearchResult, responses=errors,
             summary="The k best passages: `azchat search --json`")
    def search(q: Annotated[str, Query(description="what to look for")] = "",
               k: Annotated[int, Query(description=f"number of hits, 1-{MAX_K}")] = 10,
               tag: Tags = [], folder: Folder = None):
        return run(tools.search, q, k, tag, folder)

    @api.get("/ask", response_model=AskResult, responses=errors,
             summary="An answer quoted from the notes with citations: `azchat ask --json`")
    def ask_get(q: Annotated[str, Query(description="the question")] = "", tag: Tags = [],
                folder: Folder = None, mode: Mode = "extractive"):
        return run(tools.ask, q, tag, folder, mode)

    @api.post("/ask", response_model=AskResult, responses=errors, summary="The same as GET /ask, as JSON")
    def ask_post(body: AskBody):
        return run(tools.ask, body.question, body.tag, body.folder, body.mode)

    @api.get("/notes/{path:path}", response_model=NoteLines,
             responses={**errors, 404: {"description": "no such note in the index, or outside the notes folder"}},
             summary="A note's lines start..end (1-based, inclusive) with their numbers")
    def note(path: str, start: Annotated[int, Query(description="first line, 1-based")] = 1,
             end: Annotated[int | None, Query(description="last line, inclusive (default: the end)")] = None):
        return run(tools.get, path, start, end)

    @api.get("/status", response_model=StatusResult, summary="The index: notes, chunks, build, changes since")
    def status():
        return tools.status()

    return api
