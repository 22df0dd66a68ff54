"""Columns for a terminal screen, aligned by what the eye sees rather than by code points.

A CJK character takes two cells on a terminal, so ``str.ljust`` misaligns every column that holds
Chinese. The width follows Unicode's East Asian Width property (wide and fullwidth characters take
two cells, combining marks none), which is what terminals implement.
"""

from __future__ import annotations

import unicodedata


def display_width(text: str) -> int:
    """Terminal cells ``text`` takes."""
    cells = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        cells += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return cells


def pad(text: str, width: int) -> str:
    """``text`` followed by spaces up to ``width`` cells (left-aligned; never cut)."""
    return text + " " * max(0, width - display_width(text))


def pad_left(text: str, width: int) -> str:
    """Spaces then ``text`` up to ``width`` cells (right-aligned, for numbers)."""
    return " " * max(0, width - display_width(text)) + text


def table(rows: list[list[str]], gap: str = "  ") -> list[str]:
    """Rows of cells as lines with each column as wide as its widest cell; the last column is not padded."""
    if not rows:
        return []
    widths = [max(display_width(row[i]) for row in rows if i < len(row)) for i in range(max(map(len, rows)))]
    return [gap.join([pad(cell, widths[i]) for i, cell in enumerate(row[:-1])] + row[-1:]).rstrip() for row in rows]
