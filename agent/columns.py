"""Columns for a terminal screen, aligned by what the eye sees rather than by code points.

A CJK character takes two cells on a terminal, so ``str.ljust`` misaligns every column that holds
Chinese. The width follows Unicode's East Asian Width property (wide and fullwidth characters take
two cells, combining marks none), which is what terminals implement.
"""

from __future__ import annotations

import re
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


#: marks that never start a line (they close what came before) and that never end one (they open)
_NO_LINE_START = set("，。、：；！？）》」』】,.;:!?)")
_NO_LINE_END = set("（《「『【(")
#: a wide character (each may stand on its own line edge), a run of other non-space text, or spaces
_WIDE = "\u2e80-\u9fff\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef"
_SEGMENT = re.compile(f"[{_WIDE}]|[^\\s{_WIDE}]+|\\s+")


def wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` cells: English breaks between words, Chinese between any
    two characters, but never before a closing mark (，。）) or after an opening one (（). A word wider
    than ``width`` stands alone on its line."""
    lines: list[list[str]] = [[]]
    used = 0
    for segment in _SEGMENT.findall(text):
        line = lines[-1]
        if segment.isspace():
            if line:
                line.append(" ")
                used += 1
            continue
        size = display_width(segment)
        if used + size > width and any(not s.isspace() for s in line):
            carried = _carry(line, segment)
            while line and line[-1].isspace():
                line.pop()
            lines.append(carried)
            line = lines[-1]
            used = sum(display_width(s) for s in line)
        line.append(segment)
        used += size
    return ["".join(line).rstrip() for line in lines if line]


def _carry(line: list[str], segment: str) -> list[str]:
    """What moves from a full line to the next with ``segment``: the last character when ``segment``
    may not start a line, an opening mark that may not end one."""
    carried: list[str] = []
    if segment[0] in _NO_LINE_START and len(line) > 1 and not line[-1].isspace():
        carried.insert(0, line.pop())
    while len(line) > 1 and line[-1] in _NO_LINE_END:
        carried.insert(0, line.pop())
    return carried


def clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` cells (a screen line that must not wrap), with … where it was cut."""
    if display_width(text) <= width:
        return text
    cells, kept = 0, []
    for char in text:
        cells += display_width(char)
        if cells > width - 1:
            break
        kept.append(char)
    return "".join(kept) + "…"
