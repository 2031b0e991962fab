"""Progress for long work: a bar on a terminal, plain lines otherwise (logs, CI, pipes)."""
from __future__ import annotations

import sys
import time


class ProgressBar:
    """Call with (done, total). Draws in place on a TTY; prints a line every ~10% or 5 s when not."""

    def __init__(self, label: str, stream=None, width: int = 30):
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.monotonic()
        self._last_line = 0.0
        self._last_pct = -1

    def __call__(self, done: int, total: int) -> None:
        total = max(total, 1)
        elapsed = time.monotonic() - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else 0.0
        pct = int(100 * done / total)
        if self.tty:
            filled = int(self.width * done / total)
            bar = "#" * filled + "-" * (self.width - filled)
            self.stream.write(f"\r{self.label} [{bar}] {done}/{total} {rate:.1f}/s eta {eta:.0f}s ")
            if done >= total:
                self.stream.write("\n")
            self.stream.flush()
            return
        now = time.monotonic()
        if done >= total or pct // 10 > self._last_pct // 10 or now - self._last_line >= 5:
            left = f", {eta:.0f} s left" if done < total and rate > 0 else ""
            self.stream.write(f"{self.label}: {done}/{total} ({pct}%) {rate:.1f}/s{left}\n")
            self.stream.flush()
            self._last_line, self._last_pct = now, pct
