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


def table(rows: list[list[str]], gap: str = "  ", width: int | None = None) -> list[str]:
    """Rows of cells as lines with each column as wide as its widest cell; the last column is not
    padded. With ``width``, a last cell that would run past it continues on lines of its own, under
    its column."""
    if not rows:
        return []
    widths = [max(display_width(row[i]) for row in rows if i < len(row)) for i in range(max(map(len, rows)))]
    lines = []
    for row in rows:
        head = gap.join([pad(cell, widths[i]) for i, cell in enumerate(row[:-1])] + [""]) if len(row) > 1 else ""
        rest = row[-1:]
        if width is None or not rest or display_width(head + rest[0]) <= width:
            lines.append((head + "".join(rest)).rstrip())
            continue
        indent = display_width(head)
        body = wrap(rest[0], max(20, width - indent))
        lines += [head + body[0]] + [" " * indent + more for more in body[1:]]
    return lines


#: marks that never start a line (they close what came before) and that never end one (they open)
_NO_LINE_START = set("，。、：；！？）》」』】,.;:!?)")
_NO_LINE_END = set("（《「『【(")
#: a wide character (each may stand on its own line edge), a run of other non-space text, or spaces
_WIDE = "\u2e80-\u9fff\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef"
_SEGMENT = re.compile(f"[{_WIDE}]|[^ \\t\\n{_WIDE}]+|[ \\t\\n]+")


def wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` cells: English breaks between words, Chinese between any
    two characters, but never before a closing mark (，。）) or after an opening one (（). A word wider
    than ``width`` stands alone on its line."""
    lines: list[list[str]] = [[]]
    used = 0
    for segment in _SEGMENT.findall(text):
        line = lines[-1]
        if segment in (" ", "\t", "\n") or segment.strip(" \t\n") == "":
            if line:
                line.append(segment.replace("\n", " "))
                used += len(segment)
            continue
        size = display_width(segment)
        if used + size > width and any(s.strip(" \t") for s in line):
            carried = _carry(line, segment)
            while line and not line[-1].strip(" \t"):
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
    if segment[0] in _NO_LINE_START and len(line) > 1 and line[-1].strip(" \t"):
        carried.insert(0, line.pop())
    while len(line) > 1 and line[-1] in _NO_LINE_END:
        carried.insert(0, line.pop())
    return carried


#: a bullet or a numbered step, after the indent: a wrapped line continues under the text after it
_LEAD = re.compile(r" *(?:- |\d+\. )?")
#: a bracketed note ("[disk.full, confidence 97%]") and a time ("2026-11-30 10:15:02 UTC") are never
#: broken across lines
_NOTE = re.compile(r"\[[^\]\n]*\]|\d{4}-\d\d-\d\d \d\d:\d\d(?::\d\d)?(?: UTC)?")
NBSP = "\u00a0"
#: the width text for a person is laid out in: a till's console, a ticket, a help-desk chat
SCREEN = 80


def fit(line: str, width: int = SCREEN) -> list[str]:
    """``line`` as it fits in ``width`` cells: continued on lines indented under the text after its
    indent and bullet (or by two cells when it has none), a bracketed note or a time kept whole."""
    if display_width(line) <= width:
        return [line]
    lead = _LEAD.match(line).group(0)  # type: ignore[union-attr] - matches the empty string at least
    indent = " " * (display_width(lead) if lead else 2)
    kept = _NOTE.sub(lambda m: m.group(0).replace(" ", NBSP), line[len(lead):])
    body = [part.replace(NBSP, " ") for part in wrap(kept, width - display_width(lead))]
    return [lead + body[0]] + [indent + more for more in body[1:]]


def fitted(lines: list[str], width: int = SCREEN) -> list[str]:
    """Every line :func:`fit` to ``width``."""
    return [part for line in lines for part in fit(line, width)]


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
