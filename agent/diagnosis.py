"""Turn probe findings into ranked root causes, from the knowledge base in ``causes.toml``.

Pure logic, no I/O beyond loading the knowledge base: the same findings always give the same
diagnosis. Four steps:

1. *Score* — every warn/fail finding adds evidence to the causes that list its code. Independent
   pieces of evidence combine as a noisy-OR, so two weak signs outweigh one, but nothing reaches 1.
   A finding that counts part of a whole (``count`` of ``classified`` response codes) weighs by its share.
2. *Layer* — a cause explained by a present, deeper cause (``explains``) is folded into it: its
   evidence is shown as consequences, not as a rival. Only the deepest failed layer is blamed. A
   ``residual`` cause (a fault beyond the terminal) is what is left when nothing else is present: any
   other present cause explains it.
3. *Certainty* — how sure each remaining cause is on its own evidence. A finding that only one of
   them explains counts fully for it, so independent faults (a full disk, an untrusted certificate, a
   silent reader) are each certain; a finding that several rival causes explain is shared between
   them by weight. A verdict that rests on nothing being found (``none``, a residual cause) is as
   certain as the coverage behind it (:mod:`posdiag.agent.coverage`): what was not checked is named.
4. *Share* — confidences are certainties scaled so that they sum to at most 1: each cause's share of
   the blame for the 2824, the most likely first.

Differential evidence: ``[ruled_out]`` in ``causes.toml`` words, per finding code, what that
observation rules out ("not DNS alone: {silent_check}", filled from the finding's data). The engine
adds the sentence to the evidence of a cause the finding supports when that cause is blamed, so each
verdict says what ruled its rival out — probes only say what they saw. ``[remediation_for]`` puts
steps specific to one finding (an MTU black hole) ahead of the cause's own.

What an observation means is the knowledge base's to say too: ``[reads_as]`` adds it to the
finding's evidence line ("… (+12.0 MB/h, steady): a memory leak in the POS process"), and
``[corroborated]`` lets a finding count only beside others (OOM kills since boot say something of
*now* only while memory is short now).

Risks ahead (``[risks]``, :mod:`posdiag.agent.risks`) are findings of what will fail, not evidence
of a cause: they are never scored, and they make a healthy verdict ``degraded``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from posdiag.agent import coverage
from posdiag.agent import risks as risk_table
from posdiag.agent.coverage import Coverage, Unchecked
from posdiag.core import i18n
from posdiag.core.causes import cause_text
from posdiag.core.frozen import load_toml
from posdiag.core.i18n import tr
from posdiag.core.settings import ConfigError
from posdiag.core.vocabulary import Verdict
from posdiag.probes.base import Finding, ProbeResult, Severity

SEVERITY_FACTOR = {Severity.FAIL: 1.0, Severity.WARN: 0.5, Severity.INFO: 0.0}
#: A cause must score at least this much before it may explain (and so hide) another.
EXPLAIN_THRESHOLD = 0.4
#: A cause this certain is a fault that is present, told under its own heading, not a mere alternative.
PRESENT = 0.5
NONE_ID = "none"


@dataclass(frozen=True)
class CauseInfo:
    id: str
    title: str
    explanation: str
    remediation: tuple[str, ...]
    explains: tuple[str, ...]
    #: the cause of last resort: blamed only when no other cause is present (any other explains it)
    residual: bool = False
    #: said instead of ``explanation`` by a cause resting on nothing found while areas were not
    #: checked, and the steps that then come first ({unchecked}: the areas)
    unchecked_explanation: str = ""
    unchecked_remediation: tuple[str, ...] = ()

    def worded_for(self, cover: Coverage) -> tuple[str, list[str]]:
        """Explanation and steps as far as ``cover`` allows: "every check passed" only when every area
        was checked; otherwise what was not checked is named, and checking it comes first."""
        if not cover.unchecked or not self.unchecked_explanation:
            return self.explanation, list(self.remediation)
        areas = cover.unchecked_words()
        return (self.unchecked_explanation.format(unchecked=areas),
                [step.format(unchecked=areas) for step in self.unchecked_remediation] + list(self.remediation))


@dataclass(frozen=True)
class Corroboration:
    """A finding that counts only when one of ``by`` (warn or fail) is in the same sweep, and then at
    ``severity`` whatever its probe gave it; alone it counts not at all."""

    by: frozenset[str]
    severity: Severity


@dataclass(frozen=True)
class KnowledgeBase:
    causes: dict[str, CauseInfo]
    #: finding code → [(cause id, weight)]
    evidence: dict[str, list[tuple[str, float]]]
    #: finding code → remediation steps that come first when that finding supports the blamed cause
    remediation_for: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: finding code → what it rules out, a template filled from the finding's data
    ruled_out: dict[str, str] = field(default_factory=dict)
    #: finding code → the risk ahead it reports (never weighed as evidence)
    risks: dict[str, risk_table.RiskInfo] = field(default_factory=dict)
    #: finding code → what the observation means, a template filled from the finding's data
    reads_as: dict[str, str] = field(default_factory=dict)
    #: finding code → when (beside which findings) it counts, and at which severity
    corroborated: dict[str, Corroboration] = field(default_factory=dict)

    def closure(self, cause_id: str) -> set[str]:
        """Every cause that ``cause_id`` explains, directly or through the causes it explains."""
        seen: set[str] = set()
        stack = list(self.causes[cause_id].explains)
        while stack:
            c = stack.pop()
            if c not in seen:
                seen.add(c)
                stack.extend(self.causes[c].explains)
        return seen


@dataclass
class RankedCause:
    id: str
    title: str
    confidence: float
    evidence: list[str]
    remediation: list[str]
    explanation: str = ""
    consequences: list[str] = field(default_factory=list)
    score: float = 0.0
    severity: Severity = Severity.INFO
    #: how sure posdiag is that this fault is present, on its own evidence (0..1)
    certainty: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "confidence": round(self.confidence, 3),
                "certainty": round(self.certainty, 3), "evidence": self.evidence, "remediation": self.remediation,
                "explanation": self.explanation, "consequences": self.consequences}


@dataclass
class Diagnosis:
    verdict: str
    causes: list[RankedCause]
    #: the areas no probe could check, with why
    not_checked: list[Unchecked] = field(default_factory=list)
    #: risks ahead, soonest first (the report's top-level ``risks``)
    risks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def top(self) -> RankedCause:
        return self.causes[0]

    @property
    def present(self) -> list[RankedCause]:
        """The faults found on their own evidence, most likely first (never ``none``)."""
        return [c for c in self.causes if c.id != NONE_ID and c.certainty >= PRESENT]

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "causes": [c.to_dict() for c in self.causes],
                "not_checked": [u.to_dict() for u in self.not_checked]}


def load_knowledge(path: str | Path, lang: str | None = None) -> KnowledgeBase:
    """Load and check ``causes.toml``, its text in ``lang`` (default: the process's language).
    Refuses unknown ids and weights outside 0..1 (ConfigError)."""
    path = Path(path)
    lang = lang or i18n.active()
    try:
        data = load_toml(path)
    except FileNotFoundError:
        raise ConfigError(str(path), ["file not found: expected the cause knowledge base"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [f"TOML syntax error: {exc}"]) from None
    problems: list[str] = []
    causes = _causes(data.get("causes", []), lang, problems)
    evidence = _evidence(data.get("evidence", {}), causes, problems)
    remediation_for = _remediation_for(data.get("remediation_for", {}), evidence, lang, problems)
    ruled_out = _sentences("ruled_out", data.get("ruled_out", {}), evidence, lang, problems)
    risks = risk_table.load(data.get("risks", {}), evidence, lang, problems)
    reads_as = _sentences("reads_as", data.get("reads_as", {}), evidence, lang, problems)
    corroborated = _corroborated(data.get("corroborated", {}), evidence, problems)
    if problems:
        raise ConfigError(str(path), problems)
    return KnowledgeBase(causes, evidence, remediation_for, ruled_out, risks, reads_as, corroborated)


def _causes(entries: Any, lang: str, problems: list[str]) -> dict[str, CauseInfo]:
    causes: dict[str, CauseInfo] = {}
    for i, entry in enumerate(entries):
        try:
            text = cause_text(entry, lang, f"causes[{i}]", problems)
            info = CauseInfo(str(entry["id"]), str(text["title"]), str(text.get("explanation", "")),
                             tuple(text.get("remediation", [])), tuple(entry.get("explains", [])),
                             entry.get("residual", False), str(text.get("unchecked_explanation", "")),
                             tuple(text.get("unchecked_remediation", [])))
        except KeyError as exc:
            problems.append(f"causes[{i}].{exc.args[0]}: missing")
            continue
        if not isinstance(info.residual, bool):
            problems.append(f"causes[{i}] ({info.id}).residual: expected true or false, got {info.residual!r}")
        problems += _unchecked_text_problems(f"causes[{i}] ({info.id})", info)
        if not info.remediation:
            problems.append(f"causes[{i}] ({info.id}).remediation: expected at least one step")
        causes[info.id] = info
    if NONE_ID not in causes:
        problems.append(f"causes: expected an entry with id = '{NONE_ID}'")
    problems += [f"causes ({info.id}).explains: unknown cause id {other!r}"
                 for info in causes.values() for other in info.explains if other not in causes]
    return causes


def _unchecked_text_problems(where: str, info: CauseInfo) -> list[str]:
    """The words for "not everything was checked" belong to a cause that rests on nothing being found,
    and may name nothing but {unchecked}."""
    if not (info.unchecked_explanation or info.unchecked_remediation):
        return []
    if info.id != NONE_ID and info.residual is not True:
        return [f"{where}.unchecked_explanation: only 'none' and a residual cause rest on nothing being found"]
    try:
        for text in (info.unchecked_explanation, *info.unchecked_remediation):
            text.format(unchecked="")
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        return [f"{where}.unchecked_explanation/unchecked_remediation: may name only {{unchecked}} ({exc!r})"]
    return []


def _in_language(value: Any, lang: str) -> Any:
    """A ``{ en = ..., zh_CN = ... }`` table's value for ``lang`` (English where it has none); any
    other value is English only and serves every language."""
    if isinstance(value, dict):
        return value.get(lang, value.get(i18n.DEFAULT))
    return value


def _evidence(tables: Any, causes: dict[str, CauseInfo], problems: list[str]) -> dict[str, list[tuple[str, float]]]:
    """finding code → [(cause id, weight)], from the ``[evidence."cause"]`` tables."""
    evidence: dict[str, list[tuple[str, float]]] = {}
    for cause_id, table in tables.items():
        if cause_id not in causes:
            problems.append(f"evidence.{cause_id}: unknown cause id")
            continue
        for code, weight in table.items():
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 < weight <= 1:
                problems.append(f"evidence.{cause_id}.{code}: expected a weight in (0, 1], got {weight!r}")
                continue
            evidence.setdefault(code, []).append((cause_id, float(weight)))
    return evidence


def _remediation_for(table: Any, evidence: dict[str, list[tuple[str, float]]], lang: str,
                     problems: list[str]) -> dict[str, tuple[str, ...]]:
    """Steps per finding code; a code must also be weighed as evidence (so the probe contract covers it)."""
    out: dict[str, tuple[str, ...]] = {}
    for code, value in table.items():
        steps = _in_language(value, lang)
        if code not in evidence:
            problems.append(f"remediation_for.{code}: the code is not weighed as evidence of any cause")
        elif not isinstance(steps, list) or not steps or not all(isinstance(x, str) for x in steps):
            problems.append(f"remediation_for.{code}: expected a list of steps (strings), or a table of such lists "
                            "by language ({ en = [...], zh_CN = [...] })")
        else:
            out[code] = tuple(steps)
    return out


def _sentences(name: str, table: Any, evidence: dict[str, list[tuple[str, float]]], lang: str,
               problems: list[str]) -> dict[str, str]:
    """``[ruled_out]``, ``[reads_as]``: one sentence per finding code, which must also be weighed as evidence."""
    out: dict[str, str] = {}
    for code, value in table.items():
        sentence = _in_language(value, lang)
        if code not in evidence:
            problems.append(f"{name}.{code}: the code is not weighed as evidence of any cause")
        elif not isinstance(sentence, str) or not sentence:
            problems.append(f"{name}.{code}: expected a sentence (a string), or a table of sentences by "
                            "language ({ en = \"...\", zh_CN = \"...\" })")
        else:
            out[code] = sentence
    return out


#: the severities a corroborated finding may count at
_COUNTS_AT = {"warn": Severity.WARN, "fail": Severity.FAIL}


def _corroborated(table: Any, evidence: dict[str, list[tuple[str, float]]],
                  problems: list[str]) -> dict[str, Corroboration]:
    """``[corroborated."code"]``: ``by`` (codes, each weighed as evidence) and ``severity`` ("warn" or "fail")."""
    out: dict[str, Corroboration] = {}
    for code, rule in table.items():
        by = rule.get("by") if isinstance(rule, dict) else None
        severity = _COUNTS_AT.get(rule.get("severity", "warn")) if isinstance(rule, dict) else None
        if code not in evidence:
            problems.append(f"corroborated.{code}: the code is not weighed as evidence of any cause")
        elif not isinstance(by, list) or not by or not all(isinstance(c, str) and c in evidence for c in by):
            problems.append(f"corroborated.{code}.by: expected a list of finding codes weighed as evidence, got {by!r}")
        elif severity is None:
            problems.append(f"corroborated.{code}.severity: expected 'warn' or 'fail', got {rule.get('severity')!r}")
        else:
            out[code] = Corroboration(frozenset(by), severity)
    return out


def _evidence_line(probe: str, message: str) -> str:
    return f"{probe}: {message}"


@dataclass
class _Scores:
    """What the findings say, per cause: combined score, weighted evidence lines, worst severity,
    rules-out notes and finding-specific remediation; each weighed finding's strength and the causes
    it points at (for certainty); plus warn/fail findings no cause weighs."""

    score: dict[str, float] = field(default_factory=dict)
    evidence: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    worst: dict[str, Severity] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)
    steps: dict[str, list[str]] = field(default_factory=dict)
    weighed: list[tuple[float, list[tuple[str, float]]]] = field(default_factory=list)
    unexplained: list[tuple[Severity, str]] = field(default_factory=list)


def _share(finding: Finding) -> float:
    """The part of a whole a counted finding stands for: ``count`` of ``classified`` (three host errors
    among four classified response codes weigh three quarters), else 1."""
    count, whole = finding.data.get("count"), finding.data.get("classified")
    if isinstance(count, int) and isinstance(whole, int) and 0 < count <= whole:
        return count / whole
    return 1.0


def _score(results: list[ProbeResult], kb: KnowledgeBase) -> _Scores:
    sc = _Scores()
    seen = {f.code for r in results for f in r.findings if f.severity is not Severity.INFO}
    for result in results:
        for finding in result.findings:
            severity = _counts_as(finding, kb, seen)
            factor = SEVERITY_FACTOR[severity]
            if not factor or finding.code in kb.risks:  # a risk ahead is never evidence of a cause
                continue
            rules = kb.evidence.get(finding.code)
            if not rules:
                sc.unexplained.append((severity, _evidence_line(result.name, finding.message)))
                continue
            line = _evidence_line(result.name, _read(kb, finding))
            factor *= _share(finding)
            sc.weighed.append((factor, rules))
            note = _filled(kb.ruled_out, finding)
            for cause_id, weight in rules:
                w = weight * factor
                sc.score[cause_id] = 1 - (1 - sc.score.get(cause_id, 0.0)) * (1 - w)
                sc.evidence.setdefault(cause_id, []).append((w, line))
                if severity is Severity.FAIL or cause_id not in sc.worst:
                    sc.worst[cause_id] = severity
                if note:
                    sc.notes.setdefault(cause_id, []).append(_evidence_line(result.name, note))
                sc.steps.setdefault(cause_id, []).extend(kb.remediation_for.get(finding.code, ()))
    return sc


def _counts_as(finding: Any, kb: KnowledgeBase, seen: set[str]) -> Severity:
    """The severity a finding is weighed at: its own, unless the knowledge base lets it count only
    beside others (``[corroborated]``) — then that rule's where they are, and none where they are not."""
    rule = kb.corroborated.get(finding.code)
    if rule is None:
        return finding.severity
    return rule.severity if rule.by & seen else Severity.INFO


def _read(kb: KnowledgeBase, finding: Any) -> str:
    """The finding's message, with what the knowledge base reads it as (``[reads_as]``) where it says."""
    reading = _filled(kb.reads_as, finding)
    return tr("{observed}: {reading}", observed=finding.message, reading=reading) if reading else finding.message


def _filled(templates: dict[str, str], finding: Any) -> str | None:
    """The finding's sentence from ``templates`` filled from its data (``[ruled_out]``, ``[reads_as]``)."""
    template = templates.get(finding.code)
    if template is None:
        return None
    try:
        return template.format_map(finding.data)
    except (KeyError, IndexError, ValueError):  # a finding without the data its sentence needs says nothing
        return None


def _layer(scores: dict[str, float], kb: KnowledgeBase) -> dict[str, str]:
    """shallow cause → the deeper present cause that explains it (only a strong cause explains); a
    residual cause → the strongest other cause left, whatever its strength (it is what remains when
    nothing else is present)."""
    present = sorted(scores, key=lambda c: (-scores[c], c))
    folded_into: dict[str, str] = {}
    for deep in present:
        if scores[deep] < EXPLAIN_THRESHOLD or deep in folded_into:
            continue
        for shallow in kb.closure(deep):
            if shallow in scores and shallow not in folded_into and deep not in kb.closure(shallow):
                folded_into[shallow] = deep
    roots = [c for c in present if c not in folded_into and not kb.causes[c].residual]
    if roots:
        folded_into.update({c: roots[0] for c in present if kb.causes[c].residual and c not in folded_into})
    return folded_into


def _certainties(sc: _Scores, folded_into: dict[str, str]) -> dict[str, float]:
    """Each blamed cause's certainty on its own evidence. A finding counts at its strength (weight of
    the best reading × severity × share) for the blamed causes it points at, split between them by
    weight: a cause that alone explains a finding gets all of it, rivals for one finding share it.
    Causes folded into another are consequences, not rivals, and take no share."""
    certainty: dict[str, float] = {}
    for factor, rules in sc.weighed:
        rivals = [(c, w) for c, w in rules if c not in folded_into]
        if not rivals:
            continue
        strength, total = factor * max(w for _, w in rivals), sum(w for _, w in rivals)
        for cause_id, weight in rivals:
            certainty[cause_id] = 1 - (1 - certainty.get(cause_id, 0.0)) * (1 - strength * weight / total)
    return certainty


def _root(cause_id: str, folded_into: dict[str, str]) -> str:
    while cause_id in folded_into:
        cause_id = folded_into[cause_id]
    return cause_id


def _rank(sc: _Scores, folded_into: dict[str, str], kb: KnowledgeBase) -> list[RankedCause]:
    ranked: dict[str, RankedCause] = {}
    for cause_id in sorted(sc.score, key=lambda c: -sc.score[c]):
        if cause_id in folded_into:
            continue
        info = kb.causes[cause_id]
        lines = [line for _, line in sorted(sc.evidence[cause_id], key=lambda e: -e[0])]
        ranked[cause_id] = RankedCause(cause_id, info.title, 0.0, list(dict.fromkeys(lines)),
                                       list(info.remediation), info.explanation, score=sc.score[cause_id],
                                       severity=sc.worst[cause_id])
    for shallow, _ in folded_into.items():
        root = ranked[_root(shallow, folded_into)]
        for _, line in sc.evidence[shallow]:
            if line not in root.consequences and line not in root.evidence:
                root.consequences.append(line)
        # A consequence that failed hard makes the root a fault even if its own evidence was milder.
        if sc.worst[shallow] is Severity.FAIL:
            root.severity = Severity.FAIL
    for cause_id, notes in sc.notes.items():  # only a blamed cause says what it ruled out, never a folded one
        if cause_id in ranked:
            ranked[cause_id].evidence += [n for n in notes if n not in ranked[cause_id].evidence]
    for cause_id in sc.score:
        root = ranked[_root(cause_id, folded_into)]
        root.remediation[:0] = [s for s in dict.fromkeys(sc.steps.get(cause_id, [])) if s not in root.remediation]
    return sorted(ranked.values(), key=lambda c: (-c.score, c.id))


def diagnose(results: Iterable[ProbeResult], kb: KnowledgeBase) -> Diagnosis:
    results = list(results)
    sc = _score(results, kb)
    folded_into = _layer(sc.score, kb)
    causes = _rank(sc, folded_into, kb)
    cover = coverage.of(results)
    certainty = _certainties(sc, folded_into)
    for c in causes:
        c.certainty = certainty.get(c.id, 0.0)
        if kb.causes[c.id].residual:
            _as_covered(c, kb.causes[c.id], cover, bool(sc.unexplained))
    causes.sort(key=lambda c: (-c.certainty, c.id))
    total = sum(c.certainty for c in causes)
    for c in causes:
        c.confidence = c.certainty / max(1.0, total)
    # a risk ahead is no cause of the 2824 and takes no share of it, but the terminal is not healthy
    ahead = risk_table.found(results, kb.risks)
    severities = [c.severity for c in causes] + [s for s, _ in sc.unexplained] + [Severity.WARN] * bool(ahead)
    verdict = Verdict.of(set(severities)).value
    if not causes:
        causes = [_none_cause(kb, cover, sc.unexplained)]
    return Diagnosis(verdict, causes, cover.unchecked, ahead)


def _as_covered(cause: RankedCause, info: CauseInfo, cover: Coverage, unexplained: bool) -> None:
    """A residual cause stands only when nothing else was found: it is as certain as the coverage
    behind "nothing else", and says what was checked and passed, and what was not checked."""
    cause.certainty = cover.certainty(unexplained)
    cause.explanation, cause.remediation = info.worded_for(cover)
    passed = cover.passed_line()
    cause.evidence += ([passed] if passed else []) + cover.lines()


def _none_cause(kb: KnowledgeBase, cover: Coverage, unexplained: list[tuple[Severity, str]]) -> RankedCause:
    """No known cause: how sure we are depends on how much of the terminal we could actually check."""
    info = kb.causes[NONE_ID]
    evidence = [cover.ran_line(), *cover.lines()]
    evidence += [tr("unmatched finding, {line}", line=line) for _, line in unexplained]
    certainty = cover.certainty(bool(unexplained))
    explanation, remediation = info.worded_for(cover)
    return RankedCause(NONE_ID, info.title, certainty, evidence, remediation, explanation,
                       score=certainty, certainty=certainty)
