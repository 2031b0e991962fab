#!/usr/bin/env python3
"""Take docs/screenshot.png: start `azchat serve` over notes/, ask a question in Chromium, capture the page.

    .venv/bin/python scripts/screenshot.py [--notes notes] [--index index] [--out docs/screenshot.png]
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notes", default=str(REPO / "notes"))
    ap.add_argument("--index", default=str(REPO / "index"))
    ap.add_argument("--out", default=str(REPO / "docs" / "screenshot.png"))
    ap.add_argument("--question", default="What does the Azure Machine Learning workspace do?")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    env.pop("AZCHAT_AUTH", None)
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen([sys.executable, "-m", "azchat", "serve", "--notes", args.notes, "--index",
                                 args.index, "--port", str(port), "--json"], stdout=out, env=env)
        try:
            deadline = time.monotonic() + 600
            while True:
                out.seek(0)
                line = out.readline()
                if line:
                    url = json.loads(line)["url"]
                    break
                if proc.poll() is not None or time.monotonic() > deadline:
                    print("azchat serve did not start", file=sys.stderr)
                    return 1
                time.sleep(0.5)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=args.chromium, args=ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.goto(url)
                page.fill("#azchat-question textarea", args.question)
                page.click("#azchat-ask")
                page.wait_for_selector("#azchat-sources .azchat-source", timeout=60_000)
                page.wait_for_timeout(800)
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=args.out)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(20)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
