"""The MCP server: the tools of tools.py (search, ask, get, status) for AI agents, over stdio (`azchat mcp`) or
streamable HTTP (mounted at /mcp by `azchat serve`). A thin adapter: checks, shapes and caps live in tools.py.

Over stdio only the protocol goes to stdout (the SDK moves fd 1 to stderr while it serves, so stray prints and
native libraries' logs cannot corrupt it); `initialize` is answered while the index opens in the background;
the server exits when stdin closes.
"""
from __future__ import annotations

import json
import sys
from typing import Annotated, Literal
from pydantic import Field

from mcp.server.mcpserver import MCPServer
from starlette.responses import JSONResponse
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations

from .. import __version__
from .gate import AUTH_HINT, CHALLENGE, credentials_ok
from ..errors import AzchatError
from .tools import MAX_GET_LINES, MAX_K, AskResult, NoteLines, NotesTools, SearchResult, StatusResult

INSTRUCTIONS = (
    "Search and quote the user's own markdown notes. `search` returns passages with path, heading and 1-based "
    "line ranges as on disk; `ask` returns an answer built from the notes' own sentences with numbered "
    "citations (found=false: the notes do not answer it); `get` reads a note's lines by range (use a hit's "
    "path, start_line and end_line, widen as needed). Cite as path:start_line-end_line. Results are capped in "
    "size; truncated=true says something was cut.")

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True,
                            open_world_hint=False)

Tag = Annotated[str | list[str] | None, Field(description="only notes with this tag (or any of these tags; "
                                                           "a list or comma-separated)")]
Folder = Annotated[str | None, Field(description="only notes under this folder of the notes folder, e.g. 'az104'")]


def _run(fn, *args) -> CallToolResult:
    """The tool's dict as structured content, and as compact JSON text for clients that read only text."""
    try:
        data = fn(*args)
    except AzchatError as exc:        # bad input, no such note, index not ready: an is_error result
        raise ToolError(str(exc)) from None
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


def build_server(tools: NotesTools) -> MCPServer:
    """An MCPServer with the four read-only tools over `tools`."""
    server = MCPServer("azchat", title="azchat: your markdown notes", version=__version__,
                       instructions=INSTRUCTIONS, log_level="WARNING")

    @server.tool(title="Search notes", annotations=READ_ONLY)
    def search(query: Annotated[str, Field(description="what to look for, in plain words")],
               k: Annotated[int, Field(description=f"number of passages, 1-{MAX_K}")] = 10,
               tag: Tag = None, folder: Folder = None) -> Annotated[CallToolResult, SearchResult]:
        """The k passages of the notes that best match the query (hybrid semantic + keyword search), each with
        path, title, heading, start_line/end_line (1-based, inclusive, as on disk), score and text."""
        return _run(tools.search, query, k, tag, folder)

    @server.tool(title="Ask the notes", annotations=READ_ONLY)
    def ask(question: Annotated[str, Field(description="a question in plain words")],
            tag: Tag = None, folder: Folder = None,
            mode: Annotated[Literal["extractive", "generative"], Field(
                description="generative: the user's own model endpoint writes the answer from the cited "
                            "passages, when one is configured")] = "extractive",
            ) -> Annotated[CallToolResult, AskResult]:
        """An answer quoted from the notes' own sentences with [n] markers and numbered citations (path,
        heading, line range). found=false means the notes do not answer the question."""
        return _run(tools.ask, question, tag, folder, mode)

    @server.tool(title="Read note lines", annotations=READ_ONLY, description=(
        f"Lines start_line..end_line of a note with their line numbers (1-based, as on disk), at most "
        f"{MAX_GET_LINES} lines a call; next_start_line says where to continue. Only notes in the index."))
    def get(path: Annotated[str, Field(description="a note's path relative to the notes folder, as search "
                                                    "returns it")],
            start_line: Annotated[int, Field(description="first line, 1-based")] = 1,
            end_line: Annotated[int | None, Field(description="last line, inclusive (default: to the end)")]
            = None) -> Annotated[CallToolResult, NoteLines]:
        return _run(tools.get, path, start_line, end_line)

    @server.tool(title="Index status", annotations=READ_ONLY)
    def status() -> Annotated[CallToolResult, StatusResult]:
        """The index: notes, chunks, when it was built, the model, and changed_since_build (notes added,
        changed or removed since; search, ask and get index them first)."""
        return _run(tools.status)

    return server


def serve_stdio(notes=None, index=None, model=None) -> int:
    """`azchat mcp`: open the index in the background and speak MCP on stdin/stdout until stdin closes."""
    from ..progress import ProgressBar
    from .service import NotesService

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    service = NotesService(notes, index, model=model)
    tools = NotesTools(service, refresh_every=0.0, log=log)
    server = build_server(tools)
    tools.open_in_background(progress=ProgressBar("Embedding", stream=sys.stderr))
    server.run("stdio")
    return 0


class McpEndpoint:
    """ASGI endpoint for /mcp: checks AZCHAT_AUTH, then hands the request to the MCP session manager."""

    def __init__(self, server, auth):
        self.server, self.auth = server, auth

    async def __call__(self, scope, receive, send) -> None:
        headers = dict(scope.get("headers") or [])
        header = headers.get(b"authorization", b"").decode("latin-1")
        if scope["type"] == "http" and not scope.get("azchat.signed_in") and not credentials_ok(header, self.auth):
            response = JSONResponse({"detail": AUTH_HINT}, status_code=401, headers={"WWW-Authenticate": CHALLENGE})
            await response(scope, receive, send)
            return
        await self.server.session_manager.handle_request(scope, receive, send)
