"""``--help`` laid out by the cells a terminal gives each character, not by code points.

argparse measures with ``len()``: a Chinese line of 40 characters takes 80 cells and runs past the
screen, and the usage line's continuation is indented by the length of "用法：" (3) where the
screen shows 6 cells. This formatter wraps help and descriptions with :func:`columns.wrap` and
lays out the usage behind an ASCII stand-in as wide as the translated prefix.
"""

from __future__ import annotations

import argparse

from posdiag.agent.columns import display_width, wrap


class HelpFormatter(argparse.HelpFormatter):
    """argparse's layout, measured in terminal cells."""

    def _format_usage(self, usage, actions, groups, prefix):  # type: ignore[no-untyped-def]
        prefix = argparse._("usage: ") if prefix is None else prefix
        # everything after the prefix is ASCII (program, options, metavars): only the prefix needs measuring
        stand_in = "u" * display_width(prefix)
        text = super()._format_usage(usage, actions, groups, stand_in)
        return prefix + text[len(stand_in):]

    def _split_lines(self, text: str, width: int) -> list[str]:
        return wrap(" ".join(text.split()), width)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n".join(indent + line for line in wrap(" ".join(text.split()), width - len(indent)))
