"""The collector pages' marked text: what is a message, and the page with it translated.

An element holding only text and marked ``data-tr`` (``<h2 data-tr id="x">Open incidents</h2>``) is
a message, and so is the text of a ``data-tr-title`` / ``-placeholder`` / ``-label`` / ``-alt``
attribute. The catalogue extractor (packaging/catalogues.py) and the page server (page.py) both read
the markup through this module, so what is extracted is exactly what is substituted. It needs nothing
beyond the standard library.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from posdiag.core.i18n import Translator

#: an element holding only text (markup inside it would be lost in translation)
ELEMENT_TEXT = re.compile(r"<(\w+)(\s[^<>]*)?>([^<]*)</\1>")
MARKED = re.compile(r"\sdata-tr(?:=\"\")?(?=[\s/>]|$)")
#: a translated attribute: ``data-tr-label="Close the terminal"`` becomes ``aria-label="…"``
ATTRIBUTE = re.compile(r"\sdata-tr-(title|placeholder|label|alt)=\"([^\"]*)\"")
ATTRIBUTE_NAME = {"title": "title", "placeholder": "placeholder", "label": "aria-label", "alt": "alt"}


def message_text(raw: str) -> str:
    """The msgid of marked HTML text: entities decoded, white space collapsed as the browser shows it."""
    return " ".join(html.unescape(raw).split())


def marked_messages(text: str) -> Iterator[tuple[int, str]]:
    """(offset, msgid) of every marked text of a page, in the order they stand."""
    found = [(m.start(), m.group(3)) for m in ELEMENT_TEXT.finditer(text) if MARKED.search(m.group(2) or "")]
    found += [(m.start(), m.group(2)) for m in ATTRIBUTE.finditer(text)]
    for offset, raw in sorted(found):
        message = message_text(raw)
        if message:
            yield offset, message


def translate_markup(text: str, t: Translator) -> str:
    """The page with its marked text and attributes in ``t``'s language."""
    def element(match: re.Match[str]) -> str:
        tag, attrs, inner = match.group(1), match.group(2) or "", match.group(3)
        if not MARKED.search(attrs) or not message_text(inner):
            return match.group(0)
        return f"<{tag}{attrs}>{html.escape(t.gettext(message_text(inner)), quote=False)}</{tag}>"

    def attribute(match: re.Match[str]) -> str:
        translated = t.gettext(message_text(match.group(2)))
        return f' {ATTRIBUTE_NAME[match.group(1)]}="{html.escape(translated)}"'

    return ATTRIBUTE.sub(attribute, ELEMENT_TEXT.sub(element, text))
