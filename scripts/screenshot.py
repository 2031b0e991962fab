#!/usr/bin/env python3
"""Take docs/screenshot.png: start `azchat serve` over notes/, ask a question in Chromium, capture the page.

    .venv/bin/python scripts/screenshot.py [--notes notes] [--index index] [--out docs/screenshot.png]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notes", default=str(REPO / "notes"))
    ap.add_argument("--index", default=str(REPO / "index"))
    ap.add_argument("--out", default=str(REPO / "docs" / "screenshot.png"))
    ap.add_argument("--question", default="how do I peer two vnets")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    from load import Server    # bench/load.py: the one `azchat serve --json` launcher for scripts

    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(args.notes), Path(args.index), watch=False, log=Path(tmp) / "serve.log")
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=args.chromium, args=ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.goto(server.url)
                page.fill("#azchat-question textarea", args.question)
                page.click("#azchat-ask")
                page.wait_for_selector("#azchat-sources .azchat-source", timeout=60_000)
                page.wait_for_timeout(800)
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=args.out)
                browser.close()
        finally:
            server.stop()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
