"""One screen redrawn in place on a terminal (``posdiag watch``), with plain escape sequences.

The alternate screen keeps the technician's scrollback as it was: when the session ends the screen
is left, and what is printed then (the summary) stays in the scrollback. Every line is clipped to
the terminal's width by display width, so a long Chinese line never wraps and shifts the rows below.
"""

from __future__ import annotations

import os
from typing import Any, TextIO

from posdiag.agent.columns import clip

ENTER = "\033[?1049h\033[?25l"  # alternate screen, cursor hidden
LEAVE = "\033[?25h\033[?1049l"
HOME = "\033[H"
CLEAR_LINE = "\033[K"
CLEAR_BELOW = "\033[J"


def terminal_size(stream: Any) -> tuple[int, int]:
    """Columns and rows of the terminal behind ``stream`` (80×24 when it cannot say, or says 0)."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, ValueError, OSError):
        return 80, 24
    return (max(20, size.columns) if size.columns else 80), (max(5, size.lines) if size.lines else 24)


class Screen:
    """The alternate screen of ``stream``: :meth:`draw` replaces everything on it."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.active = False

    def __enter__(self) -> Screen:
        self.stream.write(ENTER)
        self.stream.flush()
        self.active = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self.active:
            self.stream.write(LEAVE)
            self.stream.flush()
            self.active = False

    def size(self) -> tuple[int, int]:
        return terminal_size(self.stream)

    def draw(self, lines: list[str]) -> None:
        """Lines from the top, each clipped to the width, the rest of the screen cleared."""
        columns, rows = self.size()
        shown = [clip(line, columns - 1) + CLEAR_LINE for line in lines[:rows - 1]]
        self.stream.write(HOME + "\n".join(shown) + "\n" + CLEAR_BELOW)
        self.stream.flush()

    def status(self, text: str) -> None:
        """The bottom row alone (a slow sweep's progress), the cursor put back where it was."""
        columns, rows = self.size()
        self.stream.write(f"\0337\033[{rows};1H" + clip(text, columns - 1) + CLEAR_LINE + "\0338")
        self.stream.flush()
