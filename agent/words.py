"""The words a person reads for the report's ids: a probe's status, a verdict, a trigger, a language.

The JSON keeps ``ok``, ``fault``, ``on-demand`` in every language; text for a person says them in the
reader's language. One table each, marked for the catalogue, shared by the report, ``history``,
``status``, the runner's skip reasons and ``watch``.
"""

from __future__ import annotations

from typing import Any

from posdiag.core import i18n
from posdiag.core.i18n import N_
from posdiag.core.vocabulary import Status, Trigger, Verdict

#: a probe's status in a sentence ("prerequisite not met: network.tcp fail", "ok → fail")
STATUS_WORDS = {Status.OK: N_("ok"), Status.WARN: N_("warn"), Status.FAIL: N_("fail"), Status.ERROR: N_("error"),
                Status.SKIPPED: N_("skipped")}
#: a probe's status as the text output marks it; upper case where a person must look
STATUS_MARKS = {Status.OK: N_("ok"), Status.WARN: N_("WARN"), Status.FAIL: N_("FAIL"), Status.ERROR: N_("ERROR"),
                Status.SKIPPED: N_("skipped")}
#: a verdict as a person reads it (the JSON keeps healthy/degraded/fault)
VERDICT_WORDS = {Verdict.HEALTHY: N_("HEALTHY"), Verdict.DEGRADED: N_("DEGRADED"), Verdict.FAULT: N_("FAULT")}
#: the same in a column of a table (``history``), where capitals would shout every row
VERDICT_NAMES = {Verdict.HEALTHY: N_("healthy"), Verdict.DEGRADED: N_("degraded"), Verdict.FAULT: N_("fault")}
#: what triggered a diagnosis
TRIGGER_WORDS = {Trigger.ON_DEMAND: N_("on-demand"), Trigger.BOOT: N_("boot"), Trigger.SCHEDULE: N_("schedule"),
                 Trigger.EVENT: N_("2824 event"), Trigger.REMOTE: N_("remote"), Trigger.WATCH: N_("watch")}


def said(words: dict[Any, str], key: str, t: i18n.Translator | None = None) -> str:
    """``key`` (an id from a report) in the reader's words; an id posdiag has no words for, as it is."""
    return (t or i18n.current()).tr(words[key]) if key in words else key
#: a language posdiag speaks, by its name in ``"lang"``
LANGUAGE_WORDS = {"en": N_("English"), "zh_CN": N_("Simplified Chinese")}
