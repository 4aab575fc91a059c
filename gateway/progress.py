"""A progress bar on the terminal for the CLI's long work (applying thousands of tenants).

Drawn on one line of standard error, redrawn at most ten times a second, wiped when done,
so that what the command prints on standard output stays as it was. Nothing is drawn when
the stream is not a terminal (CI logs, pipes).
"""
from __future__ import annotations

import sys
import time
from typing import TextIO

WIDTH = 28
LABELS = {"validate": "validating", "apply": "applying"}


class ProgressBar:
    def __init__(self, stream: TextIO | None = None, *, clock=time.monotonic):
        self.stream = sys.stderr if stream is None else stream
        self.on = self.stream.isatty()
        self.clock = clock
        self._phase, self._started, self._drawn, self._width = "", 0.0, 0.0, 0

    def __call__(self, phase: str, done: int, total: int) -> None:
        if not self.on:
            return
        now = self.clock()
        if phase != self._phase:
            self._phase, self._started, self._drawn = phase, now, 0.0
        elif done < total and now - self._drawn < 0.1:
            return
        self._drawn = now
        self._write(self.line(phase, done, total, now - self._started))

    @staticmethod
    def line(phase: str, done: int, total: int, elapsed: float) -> str:
        share = done / total if total else 1.0
        full = int(share * WIDTH)
        bar = "█" * full + "░" * (WIDTH - full)
        text = f"{LABELS.get(phase, phase):<10} {bar} {done:,}/{total:,} {share:4.0%}"
        if 0 < done < total and elapsed > 0:
            text += f"  {(total - done) * elapsed / done:.0f} s left"
        return text

    def _write(self, text: str) -> None:
        pad = " " * max(0, self._width - len(text))
        self.stream.write("\r" + text + pad)
        self.stream.flush()
        self._width = len(text)

    def close(self) -> None:
        """Wipe the bar's line."""
        if self.on and self._width:
            self._write("")
            self.stream.write("\r")
            self.stream.flush()
            self._width = 0
