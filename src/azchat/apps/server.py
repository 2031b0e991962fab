"""What `azchat serve` puts in front of the chat: the REST API at /api (rest.py), MCP over streamable HTTP at
/mcp (mcp.py), and the Gate (gate.py) in front of every route."""
from __future__ import annotations

from .gate import Gate, HostCheck, allowed_hosts_from_env
from .tools import NotesTools


def serve_kwargs(tools: NotesTools, auth: tuple[str, str] | None, host: str,
                 hosts: HostCheck | None = None) -> dict:
    """What `azchat serve` passes to Gradio's launch(app_kwargs=...): the /api and /mcp routes (matched before
    Gradio's own), a lifespan that runs the MCP session manager, and the Gate in front of every route (the
    Host/Origin check and AZCHAT_AUTH for the chat, Gradio's API and files, /api with its docs, and /mcp)."""
    from mcp.server.transport_security import TransportSecuritySettings
    from starlette.middleware import Middleware
    from starlette.routing import Mount, Route

    from .mcp import McpEndpoint, build_server
    from .rest import build_api

    hosts = hosts or HostCheck(host, allowed_hosts_from_env())
    server = build_server(tools)
    # the Gate checks Host and Origin for every route, /mcp included, with the names the user allows
    # (AZCHAT_ALLOWED_HOSTS), which the SDK's own check would refuse
    server.streamable_http_app(stateless_http=True, json_response=True, host=host,   # makes session_manager
                               transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False))
    return {"routes": [Mount("/api", app=build_api(tools, auth)), Route("/mcp", McpEndpoint(server, auth))],
            "lifespan": lambda app: server.session_manager.run(),
            "middleware": [Middleware(Gate, auth=auth, hosts=hosts)]}
