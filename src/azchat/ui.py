"""The Gradio chat: a thin adapter over NotesService. Imported only by `azchat serve` (gradio is heavy).

Note text reaches the browser only through render.py, which escapes it; the chat's Markdown is sanitized
by Gradio as well. API endpoints (`/search`, `/ask`, `/section`, `/status`) return the CLI's JSON shapes.
"""
from __future__ import annotations

import os
import signal
import threading
import time

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")   # no calls home; must be set before import

import gradio as gr  # noqa: E402

from .errors import AzchatError  # noqa: E402
from .render import chat_markdown, md_text, sources_html, status_markdown  # noqa: E402
from .service import NotesService  # noqa: E402

ALL_FOLDERS = "(all folders)"

CSS = """
.azchat-sources { font-size: 0.92rem; }
.azchat-source { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 8px 10px;
                 margin-bottom: 10px; }
.azchat-source-title { margin-bottom: 4px; }
.azchat-n { font-weight: 600; color: var(--color-accent); }
.azchat-heading { color: var(--body-text-color-subdued); }
.azchat-loc { font-size: 0.85rem; margin-right: 6px; }
.azchat-passage, .azchat-section-text { white-space: pre-wrap; word-break: break-word; font-size: 0.85rem;
                 max-height: 260px; overflow: auto; padding: 6px; margin: 6px 0;
                 background: var(--background-fill-secondary); border-radius: 6px; }
.azchat-section-text { max-height: 420px; }
mark.azchat-match { background: #fde68a; color: #1f2937; padding: 0 1px; border-radius: 2px; }
.azchat-none, .azchat-empty { color: var(--body-text-color-subdued); padding: 8px; }
"""


def _filters(tags, folder) -> tuple[list[str] | None, str | None]:
    tags = [t for t in (tags or []) if t] or None
    folder = folder if folder and folder != ALL_FOLDERS else None
    return tags, folder


def _call(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except AzchatError as exc:
        raise gr.Error(str(exc)) from None


def build_app(service: NotesService) -> gr.Blocks:
    """The Blocks app: chat, sources panel, filters, index status with a rebuild button, and the API."""

    def respond(message: str, history: list, asked: list, tags, folder):
        message = (message or "").strip()
        history, asked = list(history or []), list(asked or [])
        if not message:
            return history, "", gr.update(), asked
        t, f = _filters(tags, folder)
        answer = _call(service.ask, message, tags=t, folder=f, previous=asked)
        history += [{"role": "user", "content": md_text(message)},
                    {"role": "assistant", "content": chat_markdown(answer)}]
        return history, "", sources_html(answer, service.section), asked + [message]

    def example(evt: gr.SelectData, history: list, asked: list, tags, folder):
        value = evt.value
        text = value.get("text", "") if isinstance(value, dict) else str(value or "")
        return respond(text, history, asked, tags, folder)

    def choices():
        folders = [ALL_FOLDERS] + service.folders()
        return (gr.update(choices=service.tags()), gr.update(choices=folders),
                status_markdown(service.status()))

    def rebuild():
        started = service.start_rebuild()
        if not started:
            gr.Info("A rebuild is already running.")
        yield status_markdown(service.status()), gr.update(interactive=False), gr.update(), gr.update()
        while service.rebuilding:
            time.sleep(0.5)
            yield status_markdown(service.status()), gr.update(), gr.update(), gr.update()
        tag_u, folder_u, status = choices()
        yield status, gr.update(interactive=True), tag_u, folder_u

    examples = [{"text": q} for q in service.suggested_questions(4)]
    with gr.Blocks(title="azchat — ask your notes") as app:
        gr.Markdown("## azchat — ask your notes\nAnswers quote your notes; every sentence is cited "
                    "with its note, heading and line.")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(label="Chat", elem_id="azchat-chat", height=520, sanitize_html=True,
                                     render_markdown=True, examples=examples or None,
                                     placeholder="Ask a question about your notes.", feedback_options=None,
                                     latex_delimiters=[], allow_tags=False, buttons=["copy", "copy_all"])
                with gr.Row():
                    question = gr.Textbox(placeholder="e.g. how do I peer two virtual networks?",
                                          show_label=False, scale=6, elem_id="azchat-question",
                                          autofocus=True, submit_btn=False)
                    ask_btn = gr.Button("Ask", variant="primary", scale=1, elem_id="azchat-ask")
                with gr.Accordion("Filters (applied inside the search)", open=False):
                    with gr.Row():
                        tags = gr.Dropdown(choices=service.tags(), value=[], multiselect=True, label="Tags",
                                           elem_id="azchat-tags")
                        folder = gr.Dropdown(choices=[ALL_FOLDERS] + service.folders(), value=ALL_FOLDERS,
                                             label="Folder", elem_id="azchat-folder")
            with gr.Column(scale=2):
                gr.Markdown("### Sources")
                sources = gr.HTML(sources_html(None), elem_id="azchat-sources", js_on_load=None)
                status = gr.Markdown(status_markdown(service.status()), elem_id="azchat-status")
                rebuild_btn = gr.Button("Rebuild index", elem_id="azchat-rebuild", size="sm")

        asked = gr.State([])          # this conversation's questions, as typed (for follow-ups)
        ui = dict(api_visibility="undocumented")
        inputs = [question, chatbot, asked, tags, folder]
        outputs = [chatbot, question, sources, asked]
        question.submit(respond, inputs, outputs, **ui)
        ask_btn.click(respond, inputs, outputs, **ui)
        chatbot.example_select(example, [chatbot, asked, tags, folder], outputs, **ui)
        chatbot.clear(lambda: ([], sources_html(None)), None, [asked, sources], **ui)
        rebuild_btn.click(rebuild, None, [status, rebuild_btn, tags, folder], concurrency_limit=1, **ui)
        app.load(choices, None, [tags, folder, status], **ui)

        def search(query: str, k: int = 10, tags: list[str] | None = None, folder: str | None = None) -> dict:
            """The k best passages for the query: {"query", "hits": [...]}, as `azchat search --json`."""
            t, f = _filters(tags, folder)
            hits = _call(service.search, query, k=int(k), tags=t, folder=f)
            return {"query": query, "hits": [h.to_dict() for h in hits]}

        def ask(question: str, tags: list[str] | None = None, folder: str | None = None) -> dict:
            """An extractive answer with citations, as `azchat ask --json`."""
            t, f = _filters(tags, folder)
            return _call(service.ask, question, tags=t, folder=f).to_dict()

        def section(path: str, line: int) -> dict:
            """The whole section around a line of an indexed note: {"path", "heading", "start_line", ...}."""
            return _call(service.section, path, int(line)).to_dict()

        def status_api() -> dict:
            """Index status: notes, chunks, last build, model, rebuild progress."""
            return service.status()

        gr.api(search, api_name="search")
        gr.api(ask, api_name="ask")
        gr.api(section, api_name="section")
        gr.api(status_api, api_name="status")
    return app


def launch(service: NotesService, host: str = "127.0.0.1", port: int = 7860, share: bool = False,
           auth: tuple[str, str] | None = None, on_ready=None, app_kwargs: dict | None = None) -> None:
    """Serve the app until interrupted. `on_ready(url)` is called once it listens. `app_kwargs` go to the
    FastAPI app under it (rest.serve_kwargs: the /api and /mcp routes)."""
    app = build_app(service)
    app.queue(default_concurrency_limit=4)
    try:
        _, local_url, share_url = app.launch(
            server_name=host, server_port=port, share=share, auth=auth, prevent_thread_lock=True,
            quiet=True, show_error=True, ssr_mode=False, css=CSS, footer_links=["api"],
            auth_message="azchat: sign in (AZCHAT_AUTH)" if auth else None, app_kwargs=app_kwargs)
    except OSError:
        raise AzchatError(f"Cannot listen on {host}:{port}: the port is in use or not allowed; "
                          "choose another --port.") from None
    if on_ready:
        on_ready(share_url or local_url)
    previous = _stop_on_sigterm()
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        app.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _stop_on_sigterm():
    """SIGTERM (`kill`, systemd, docker stop) stops the server like Ctrl+C: the app closes and the caller's
    cleanup (the watcher) runs, instead of the process dying mid-request. Returns the handler it replaced."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(signum, frame):
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, stop)
