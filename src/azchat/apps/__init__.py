"""The surfaces over one service: CLI, chat UI, REST, MCP, evaluation."""
