"""The Gradio chat: a thin adapter over NotesService. Imported only by `azchat serve` (gradio is heavy).

Note text reaches the browser only through render.py (escaped, or rendered and sanitized with nh3); the
chat's Markdown is sanitized by Gradio as well. The page's own script (HEAD) only copies `path:line` on the
copy buttons and keeps a question in view above its answer. API endpoints (`/search`, `/ask`, `/section`,
`/status`) return the CLI's JSON shapes.
"""
from __future__ import annotations

import os
import signal
import threading
import time

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")   # no calls home; must be set before import

import gradio as gr  # noqa: E402

from .editor import EditorLinks  # noqa: E402
from ..errors import AzchatError  # noqa: E402
from .note_html import code_css  # noqa: E402
from .render import chat_markdown, md_text, sources_html, status_html  # noqa: E402
from .service import NotesService  # noqa: E402

ALL_FOLDERS = "(all folders)"

CSS = """
.azchat-sources { font-size: 0.92rem; }
.azchat-source { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 8px 10px;
                 margin-bottom: 10px; }
.azchat-source-title { margin-bottom: 4px; }
.azchat-source-title a, a.azchat-open { color: inherit; text-decoration: none; }
.azchat-source-title a:hover, a.azchat-open:hover { text-decoration: underline; }
.azchat-n { font-weight: 600; color: var(--color-accent); }
.azchat-heading { color: var(--body-text-color-subdued); }
.azchat-loc { font-size: 0.85rem; margin-right: 4px; }
.azchat-copy { font-size: 0.75rem; padding: 0 6px; border: 1px solid var(--border-color-primary);
               border-radius: 4px; background: var(--background-fill-secondary); cursor: pointer; }
.azchat-copy.azchat-copied { color: var(--color-accent); }
.azchat-md { font-size: 0.88rem; max-height: 320px; overflow: auto; padding: 4px 8px; margin: 6px 0;
             background: var(--background-fill-secondary); border-radius: 6px; word-break: break-word; }
.azchat-section-text { max-height: 480px; }
.azchat-md h1, .azchat-md h2, .azchat-md h3, .azchat-md h4, .azchat-md h5, .azchat-md h6 {
             font-size: 0.95rem; font-weight: 600; margin: 6px 0 4px; }
.azchat-md p, .azchat-md ul, .azchat-md ol, .azchat-md table, .azchat-md blockquote { margin: 4px 0; }
.azchat-md ul, .azchat-md ol { padding-left: 1.4em; }
.azchat-md strong, .azchat-md b, .azchat-md em, .azchat-md code { font-size: inherit; }
.azchat-md ul { list-style: disc; }
.azchat-md ol { list-style: decimal; }
.azchat-md table { border-collapse: collapse; font-size: 0.82rem; }
.azchat-md th, .azchat-md td { border: 1px solid var(--border-color-primary); padding: 2px 6px; }
.azchat-md blockquote { border-left: 3px solid var(--border-color-primary); padding-left: 8px; }
.azchat-md .azchat-callout { border-left-color: var(--color-accent); }
.azchat-md pre { white-space: pre-wrap; word-break: break-word; margin: 0; padding: 4px 6px;
                 font-size: 0.8rem; background: transparent; }
.azchat-code { border: 1px solid var(--border-color-primary); border-radius: 4px;
               margin: 4px 0; background: var(--background-fill-primary); }
.azchat-code-lang { display: block; text-align: right; padding: 0 6px; font-size: 0.7rem; line-height: 1.2;
                    color: var(--body-text-color-subdued); }
.azchat-code-body .hll { background: rgba(253, 230, 138, 0.55); display: block; }
.dark .azchat-code-body .hll { background: rgba(250, 204, 21, 0.22); }
.azchat-mermaid { margin: 4px 0; border: 1px dashed var(--border-color-primary); border-radius: 4px; }
.azchat-mermaid figcaption { font-size: 0.75rem; color: var(--body-text-color-subdued); padding: 2px 6px; }
.azchat-wikilink, .azchat-embed { color: var(--color-accent); }
.azchat-image, .azchat-link { color: var(--body-text-color-subdued); }
.azchat-quoted { background: rgba(253, 230, 138, 0.28); box-shadow: -3px 0 0 #f59e0b; }
.dark .azchat-quoted { background: rgba(250, 204, 21, 0.12); }
mark.azchat-match { background: #fde68a; color: #1f2937; padding: 0 1px; border-radius: 2px; }
.dark mark.azchat-match { background: #a16207; color: #fefce8; }
.azchat-none, .azchat-empty { color: var(--body-text-color-subdued); padding: 8px; }
.azchat-status { font-size: 0.85rem; }
.azchat-status progress { width: 100%; height: 8px; }
.azchat-pending { color: var(--body-text-color-subdued); }
""" + code_css()

# The page's own script: copy buttons (the panel's HTML has no handlers; one listener here serves them all)
# and, after each answer, the question scrolled to the top of the chat, so a long answer starts in view.
HEAD = """<script>
(() => {
  async function copyText(text) {
    try { await navigator.clipboard.writeText(text); return true; } catch (e) {}
    const area = document.createElement("textarea");
    area.value = text; document.body.appendChild(area); area.select();
    const ok = document.execCommand("copy"); area.remove(); return ok;
  }
  document.addEventListener("click", async (event) => {
    const button = event.target.closest && event.target.closest("button.azchat-copy");
    if (!button) return;
    event.preventDefault();
    const ok = await copyText(button.dataset.copy || "");
    button.textContent = ok ? "Copied" : "Copy failed";
    button.classList.toggle("azchat-copied", ok);
    setTimeout(() => { button.textContent = "Copy"; button.classList.remove("azchat-copied"); }, 1500);
  });
})();
</script>"""

# After an answer: the last question at the top of the chat's scroll area, below the chat's label.
SHOW_QUESTION = """() => { const show = () => {
  const chat = document.querySelector("#azchat-chat");
  if (!chat) return;
  const questions = chat.querySelectorAll('[data-testid="user"]');
  const question = questions[questions.length - 1];
  if (!question) return;
  let box = question.parentElement;
  while (box && box !== chat && !(box.scrollHeight > box.clientHeight + 1 &&
         /(auto|scroll)/.test(getComputedStyle(box).overflowY))) box = box.parentElement;
  if (!box || box === chat) return;
  const label = chat.querySelector('[data-testid="block-label"]');
  const gap = label ? label.getBoundingClientRect().bottom - box.getBoundingClientRect().top + 8 : 8;
  box.scrollTop += question.getBoundingClientRect().top - box.getBoundingClientRect().top - Math.max(gap, 8);
}; requestAnimationFrame(show); setTimeout(show, 250); }"""


def _filters(tags, folder) -> tuple[list[str] | None, str | None]:
    if not isinstance(tags, str):              # a string is one tag or "a, b": inputs.tags reads it
        tags = ([t for t in tags if t] if isinstance(tags, (list, tuple)) else tags) or None
    folder = folder if folder and folder != ALL_FOLDERS else None
    return tags, folder


def _call(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except AzchatError as exc:
        raise gr.Error(str(exc)) from None


def written_turn(service: NotesService, message: str, history: list, asked: list, tags, folder):
    """The chat turn with a written answer from your model endpoint (answer/written.py): yields (history, sources
    HTML or None, asked) as the checked text streams in, the last one with the sources and any notice."""
    from ..types import Answer

    t, f = _filters(tags, folder)
    answer = _call(service.ask, message, tags=t, folder=f, previous=asked)
    history = history + [{"role": "user", "content": md_text(message)}, {"role": "assistant", "content": "…"}]
    yield list(history), None, asked                 # the question shows while the model starts
    shown = ""
    for item in service.write(answer):
        if isinstance(item, str):
            shown += item
            history[-1] = {"role": "assistant", "content": chat_markdown(Answer(message, shown, True)) + " …"}
            yield list(history), None, asked
        else:
            notice = f"_{md_text(item.notice)}_\n\n" if item.notice else ""
            history[-1] = {"role": "assistant", "content": notice + chat_markdown(item)}
            links = EditorLinks.for_notes(service.notes_dir)
            yield history, sources_html(item, service.section, links), asked + [message]


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
        links = EditorLinks.for_notes(service.notes_dir)     # per answer: a vault may be opened in Obsidian later
        return history, "", sources_html(answer, service.section, links), asked + [message]

    def respond_written(message: str, history: list, asked: list, tags, folder, written: bool):
        message = (message or "").strip()
        if not written or not message:
            yield respond(message, history, asked, tags, folder)
            return
        for turn, sources_now, asked_now in written_turn(service, message, list(history or []),
                                                         list(asked or []), tags, folder):
            yield turn, "", gr.update() if sources_now is None else sources_now, asked_now

    def example(evt: gr.SelectData, history: list, asked: list, tags, folder):
        value = evt.value
        text = value.get("text", "") if isinstance(value, dict) else str(value or "")
        return respond(text, history, asked, tags, folder)

    def choices():
        folders = [ALL_FOLDERS] + service.folders()
        return (gr.update(choices=service.tags()), gr.update(choices=folders),
                status_html(service.status()))

    def rebuild():
        started = service.start_rebuild()
        if not started:
            gr.Info("A rebuild is already running.")
        yield status_html(service.status()), gr.update(interactive=False), gr.update(), gr.update()
        while service.rebuilding:
            time.sleep(0.5)
            yield status_html(service.status()), gr.update(), gr.update(), gr.update()
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
                                     latex_delimiters=[], allow_tags=False, buttons=["copy", "copy_all"],
                                     autoscroll=False)       # SHOW_QUESTION scrolls to the question instead
                with gr.Row():
                    question = gr.Textbox(placeholder="e.g. how do I peer two virtual networks? "
                                                      "(Enter sends, Shift+Enter starts a new line)",
                                          show_label=False, scale=6, elem_id="azchat-question",
                                          autofocus=True, submit_btn=False)
                    ask_btn = gr.Button("Ask", variant="primary", scale=1, elem_id="azchat-ask")
                written = _written_toggle()
                with gr.Accordion("Filters (applied inside the search)", open=False):
                    with gr.Row():
                        tags = gr.Dropdown(choices=service.tags(), value=[], multiselect=True, label="Tags",
                                           elem_id="azchat-tags")
                        folder = gr.Dropdown(choices=[ALL_FOLDERS] + service.folders(), value=ALL_FOLDERS,
                                             label="Folder", elem_id="azchat-folder")
            with gr.Column(scale=2):
                gr.Markdown("### Sources")
                sources = gr.HTML(sources_html(None), elem_id="azchat-sources", js_on_load=None)
                status = gr.HTML(status_html(service.status()), elem_id="azchat-status")
                rebuild_btn = gr.Button("Rebuild index", elem_id="azchat-rebuild", size="sm")

        asked = gr.State([])          # this conversation's questions, as typed (for follow-ups)
        ui = dict(api_visibility="undocumented")
        inputs = [question, chatbot, asked, tags, folder]
        outputs = [chatbot, question, sources, asked]
        handler = respond
        if written is not None:                      # a model endpoint is configured: the toggle decides
            handler, inputs = respond_written, inputs + [written]
        question.submit(handler, inputs, outputs, **ui).then(None, js=SHOW_QUESTION, **ui)
        ask_btn.click(handler, inputs, outputs, **ui).then(None, js=SHOW_QUESTION, **ui)
        chatbot.example_select(example, [chatbot, asked, tags, folder], outputs, **ui).then(
            None, js=SHOW_QUESTION, **ui)
        chatbot.clear(lambda: ([], sources_html(None)), None, [asked, sources], **ui)
        rebuild_btn.click(rebuild, None, [status, rebuild_btn, tags, folder], concurrency_limit=1, **ui)
        app.load(choices, None, [tags, folder, status], **ui)
        gr.Timer(30).tick(lambda: gr.update() if service.rebuilding else status_html(service.status()),
                          None, status, **ui)      # "n notes changed since the last build" stays current

        def search(query: str, k: int = 10, tags: list[str] | None = None, folder: str | None = None) -> dict:
            """The k best passages for the query: {"query", "hits": [...]}, as `azchat search --json`."""
            t, f = _filters(tags, folder)
            hits = _call(service.search, query, k=k, tags=t, folder=f)      # service checks query, k, filters
            return {"query": query.strip(), "hits": [h.to_dict() for h in hits]}

        def ask(question: str, tags: list[str] | None = None, folder: str | None = None) -> dict:
            """An extractive answer with citations, as `azchat ask --json`."""
            t, f = _filters(tags, folder)
            return _call(service.ask, question, tags=t, folder=f).to_dict()

        def section(path: str, line: int) -> dict:
            """The whole section around a line of an indexed note: {"path", "heading", "start_line", ...}."""
            return _call(service.section, path, line).to_dict()

        def status_api() -> dict:
            """Index status: notes, chunks, last build, model, rebuild progress."""
            return service.status()

        gr.api(search, api_name="search")
        gr.api(ask, api_name="ask")
        gr.api(section, api_name="section")
        gr.api(status_api, api_name="status")
    return app


def _written_toggle():
    """"Written answer by <model>" when a model endpoint is configured (AZCHAT_LLM_* or AZURE_OPENAI_*)."""
    from ..answer.llm import LLMConfigError, configured, load_config

    if not configured():
        return None
    try:
        name = load_config().model
    except LLMConfigError:
        name = "your model"                          # the notice under the answer says what is missing
    return gr.Checkbox(value=False, label=f"Written answer by {name} (cited, checked against your notes)",
                       elem_id="azchat-written")


def start(service: NotesService, host: str = "127.0.0.1", port: int = 7860, share: bool = False,
          app_kwargs: dict | None = None, hosts=None):
    """Start serving in the background; returns (the Blocks app, its URL). `app_kwargs` go to the FastAPI app
    under it (server.serve_kwargs: the /api and /mcp routes and the Gate, which asks for AZCHAT_AUTH on every
    route, so Gradio's own sign-in is not used). `hosts` (gate.HostCheck) learns the share link's host."""
    app = build_app(service)
    app.queue(default_concurrency_limit=4)
    try:
        _, local_url, share_url = app.launch(
            server_name=host, server_port=port, share=share, prevent_thread_lock=True,
            quiet=True, show_error=True, ssr_mode=False, css=CSS, head=HEAD, footer_links=["api"],
            app_kwargs=app_kwargs)
    except OSError:
        raise AzchatError(f"Cannot listen on {host}:{port}: the port is in use or not allowed; "
                          "choose another --port.") from None
    if share_url and hosts is not None:
        from urllib.parse import urlsplit

        hosts.allow(urlsplit(share_url).hostname or "")
    return app, share_url or local_url


def launch(service: NotesService, host: str = "127.0.0.1", port: int = 7860, share: bool = False,
           on_ready=None, app_kwargs: dict | None = None, hosts=None) -> None:
    """Serve the app until interrupted (start(), then wait). `on_ready(url)` is called once it listens."""
    app, url = start(service, host, port, share, app_kwargs, hosts)
    if on_ready:
        on_ready(url)
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
