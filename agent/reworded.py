"""A stored report told in the reader's language: the knowledge base's words looked up again.

A report keeps the words of the language its terminal spoke (its ``"lang"``). Whoever reads it later —
``posdiag show``, ``trigger`` answered by a daemon that speaks English, a support bundle — reads the
frame in their own language. What came from the knowledge base (``config/causes.toml``) is in it in
every language, so it is looked up again: a cause's title by its id; its explanation and steps, and a
risk's title and steps, by the text the report's language gave them. What a probe wrote (findings,
evidence, summaries) was said once, in the terminal's language, and stays as it was written; a
step the knowledge base no longer holds (an older agent, an operator's edit) stays as written too.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from posdiag.agent.diagnosis import KnowledgeBase, load_knowledge
from posdiag.core import i18n
from posdiag.core.paths import causes_path
from posdiag.core.settings import ConfigError


def written_in(report: dict[str, Any]) -> str:
    """The language the report was written in (a report of an older agent: English)."""
    return i18n.normalise(report.get("lang") or "") or i18n.DEFAULT


def in_language(report: dict[str, Any], lang: str) -> dict[str, Any]:
    """``report`` with its causes' and risks' knowledge-base words in ``lang`` (a copy; the report
    itself when it is in ``lang`` already, or when the knowledge base cannot be read)."""
    source = written_in(report)
    if source == lang:
        return report
    try:
        book = _phrasebook(source, lang)
        target = _knowledge(lang)
    except ConfigError:  # a damaged knowledge base: the report reads as it was written
        return report
    told = copy.deepcopy(report)
    for cause in told["diagnosis"]["causes"]:
        known = target.causes.get(cause["id"])
        cause["title"] = known.title if known else cause["title"]
        cause["explanation"] = book.get(cause.get("explanation", ""), cause.get("explanation", ""))
        cause["remediation"] = [book.get(step, step) for step in cause["remediation"]]
    for risk in told.get("risks") or []:
        known_risk = target.risks.get(risk["code"])
        risk["title"] = known_risk.title if known_risk else risk["title"]
        risk["remediation"] = [book.get(step, step) for step in risk.get("remediation") or []]
    return told


@functools.cache
def _knowledge(lang: str) -> KnowledgeBase:
    return load_knowledge(causes_path(), lang)


@functools.cache
def _phrasebook(source: str, lang: str) -> dict[str, str]:
    """Each explanation and step of the knowledge base in ``source`` → the same in ``lang``."""
    a, b = _knowledge(source), _knowledge(lang)
    pairs: list[tuple[str, str]] = []
    for cause_id, cause in a.causes.items():
        if cause_id in b.causes:
            other = b.causes[cause_id]
            pairs += [(cause.explanation, other.explanation), *_steps(cause.remediation, other.remediation)]
    for code, steps in a.remediation_for.items():
        pairs += _steps(steps, b.remediation_for.get(code, ()))
    for code, risk in a.risks.items():
        if code in b.risks:
            pairs += _steps(risk.remediation, b.risks[code].remediation)
    return {said: told for said, told in pairs if said and told}


def _steps(said: tuple[str, ...], told: tuple[str, ...]) -> list[tuple[str, str]]:
    """Steps side by side, one for one (lists of other lengths are not the same steps: none)."""
    return list(zip(said, told, strict=True)) if len(said) == len(told) else []
