"""A root cause's words in a language, from the knowledge base ``config/causes.toml``.

Each ``[[causes]]`` entry holds its English and, under ``[causes.<lang>]``, its translation. The
diagnosis engine (the agent) reads the whole knowledge base; the collector shows causes by their title
in the operator's language and may not import the agent. Both take a cause's text from here, so a
cause reads the same on the till and on the central server's pages.
"""

from __future__ import annotations

import functools
from typing import Any

from posdiag.core import i18n
from posdiag.core.frozen import load_toml
from posdiag.core.paths import causes_path

#: what a cause's language table may say
CAUSE_TEXT = ("title", "explanation", "remediation", "unchecked_explanation", "unchecked_remediation")


def cause_text(entry: dict[str, Any], lang: str, where: str, problems: list[str]) -> dict[str, Any]:
    """The cause's text (:data:`CAUSE_TEXT`) in ``lang``: its ``[causes.<lang>]`` table where
    it has one, each piece it leaves out in English (an operator's new cause may not be translated).
    What is wrong with the table is added to ``problems`` (``where`` names the entry)."""
    translated = entry.get(lang, {}) if lang != i18n.DEFAULT else {}
    if not isinstance(translated, dict):
        problems.append(f"{where}.{lang}: expected a table with {', '.join(CAUSE_TEXT)}")
        return entry
    problems += [f"{where}.{lang}.{key}: unknown key (expected {', '.join(CAUSE_TEXT)})"
                 for key in translated if key not in CAUSE_TEXT]
    return {**entry, **{k: v for k, v in translated.items() if k in CAUSE_TEXT}}


@functools.cache
def titles(lang: str) -> dict[str, str]:
    """Cause id → title in ``lang`` (English where the catalogue has no translation), read once per
    language from the packaged ``causes.toml``. Entries without an id or a title are left out: the
    engine refuses such a file, a page only shows fewer titles."""
    data = load_toml(causes_path())
    found: dict[str, str] = {}
    for i, entry in enumerate(data.get("causes", [])):
        if not isinstance(entry, dict):
            continue
        text = cause_text(entry, lang, f"causes[{i}]", [])
        if isinstance(entry.get("id"), str) and isinstance(text.get("title"), str):
            found[entry["id"]] = text["title"]
    return found
