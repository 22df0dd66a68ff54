"""The diagnosis engine on synthetic findings: ranking, layering, partial and conflicting evidence.

Pure logic, so findings are built by hand here; the probes that emit them are proven against
real faults elsewhere.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from posdiag.agent.diagnosis import diagnose, load_knowledge
from posdiag.core.paths import causes_path
from posdiag.core.settings import ConfigError
from posdiag.probes.base import Finding, ProbeResult, Severity, Status

CATALOGUE_IDS = [
    "network.link_down", "network.lan", "network.dns", "network.wan", "network.degraded", "network.local_firewall",
    "host.service_down", "host.upstream", "tls.failure", "clock.skew", "memory.exhausted", "disk.full", "disk.failing",
    "reader.disconnected", "reader.unresponsive", "reader.substituted", "config.invalid", "system.overload",
    "system.crashed", "operator.input", "account.declined", "data.format", "network.weak_signal", "none",
]


@pytest.fixture(scope="module")
def kb():
    return load_knowledge(causes_path())


def result(name: str, *findings: tuple[str, str], status: Status | None = None, summary: str = "summary") -> ProbeResult:
    fs = tuple(Finding(code, Severity(sev), f"{code} seen") for code, sev in findings)
    worst = max((f.severity for f in fs), key=["info", "warn", "fail"].index, default=Severity.INFO)
    st = status or {Severity.INFO: Status.OK, Severity.WARN: Status.WARN, Severity.FAIL: Status.FAIL}[worst]
    return ProbeResult(name, st, 0.01, summary, fs, {})


#: a terminal whose every area was checked and passed: what a test adds its faults to
ALL_CLEAR = [result("memory"), result("disk"), result("system"), result("clock"), result("network.link"),
             result("network.tcp"), result("reader.serial"), result("txlog")]


def clear_but(*faulty: ProbeResult) -> list[ProbeResult]:
    """Every area checked: the faulty results given, the rest of ALL_CLEAR passing."""
    names = {r.name for r in faulty}
    return [r for r in ALL_CLEAR if r.name not in names] + list(faulty)


def test_catalogue_holds_exactly_the_public_cause_ids_with_remediation(kb):
    assert sorted(kb.causes) == sorted(CATALOGUE_IDS)
    for cause in kb.causes.values():
        assert cause.title and cause.explanation
        assert len(cause.remediation) >= 2


def test_healthy_findings_give_none_with_high_confidence(kb):
    d = diagnose(clear_but(result("clock", ("clock.no_reference", "info"))), kb)
    assert d.verdict == "healthy"
    assert [c.id for c in d.causes] == ["none"]
    assert d.top.confidence >= 0.9 and d.top.certainty == d.top.confidence
    assert d.not_checked == []


def test_single_fail_names_its_cause(kb):
    d = diagnose([result("disk", ("disk.space_low", "fail")), result("memory")], kb)
    assert d.verdict == "fault"
    assert d.top.id == "disk.full"
    assert d.top.confidence > 0.8
    assert "disk: disk.space_low seen" in d.top.evidence


def test_warn_only_evidence_is_degraded_and_weaker_than_fail(kb):
    warn = diagnose([result("memory", ("memory.swap_high", "warn"))], kb)
    fail = diagnose([result("memory", ("memory.available_low", "fail"))], kb)
    assert warn.verdict == "degraded" and fail.verdict == "fault"
    assert warn.top.confidence < fail.top.confidence


def test_independent_evidence_accumulates_but_never_reaches_one(kb):
    one = diagnose([result("memory", ("memory.available_low", "fail"))], kb)
    three = diagnose([result("memory", ("memory.available_low", "fail"), ("memory.pressure_high", "fail"),
                             ("memory.oom_kills", "info"))], kb)
    assert three.top.confidence > one.top.confidence
    assert three.top.confidence < 1.0


def test_conflicting_evidence_ranks_the_stronger_cause_first_and_confidences_sum_to_at_most_one(kb):
    d = diagnose([result("disk", ("disk.space_low", "fail")),
                  result("system", ("system.load_high", "warn")),
                  result("memory", ("memory.swap_high", "warn"))], kb)
    ids = [c.id for c in d.causes]
    assert ids[0] == "disk.full"
    assert set(ids) == {"disk.full", "system.overload", "memory.exhausted"}
    assert sum(c.confidence for c in d.causes) <= 1.0 + 1e-9
    assert [c.confidence for c in d.causes] == sorted((c.confidence for c in d.causes), reverse=True)


def test_deeper_cause_explains_its_consequences_instead_of_competing(kb):
    # A read-only remount explains a full-looking disk; only the deeper failure is blamed.
    d = diagnose([result("disk", ("disk.read_only", "fail"), ("disk.write_no_space", "fail"))], kb)
    assert [c.id for c in d.causes] == ["disk.failing"]
    assert any("disk.write_no_space" in c for c in d.top.consequences)


@pytest.mark.parametrize(("link", "folded"), [(("link.no_carrier", "fail"), True), (("trend.intermittent_link", "warn"), False)],
                         ids=["strong-link-evidence", "weak-link-evidence"])
def test_only_a_cause_scoring_above_the_threshold_explains_the_layers_above(kb, link, folded):
    """A dead link (0.95) explains a silent gateway; a link that failed now and then (0.7 at half weight:
    0.35, under the 0.4 threshold) is no reason to hide it — both are ranked."""
    d = diagnose([result("network.link", link), result("network.gateway", ("gateway.unreachable", "fail"))], kb)
    ids = [c.id for c in d.causes]
    assert ("network.lan" not in ids) is folded and "network.link_down" in ids, ids


def test_memory_exhaustion_explains_an_overloaded_system(kb):
    d = diagnose([result("memory", ("memory.available_low", "fail"), ("memory.pressure_high", "fail")),
                  result("system", ("system.pos_process_restarted", "warn"))], kb)
    assert d.top.id == "memory.exhausted"
    assert "system.overload" not in [c.id for c in d.causes]


def test_a_weak_cause_is_ranked_but_is_no_fault_that_is_present(kb):
    d = diagnose(clear_but(result("memory", ("memory.swap_high", "warn"))), kb)
    assert d.top.id == "memory.exhausted" and d.top.certainty < 0.5
    assert d.present == []


def test_weak_deep_cause_does_not_hide_a_strong_shallow_one(kb):
    # NTP unreachable hints at the WAN only faintly; it must not swallow anything.
    d = diagnose([result("clock", ("clock.ntp_unreachable", "warn")), result("disk", ("disk.space_low", "fail"))], kb)
    assert d.top.id == "disk.full"


def test_partial_evidence_when_probes_errored_lowers_confidence_in_none(kb):
    full = diagnose(ALL_CLEAR, kb)
    partial = diagnose(clear_but(result("disk", status=Status.ERROR, summary="could not run: permission denied"),
                                 result("clock", status=Status.ERROR)), kb)
    assert partial.top.id == "none"
    assert partial.top.confidence < full.top.confidence
    assert "not checked: disk — could not run: permission denied" in partial.top.evidence


def test_a_reader_nobody_could_ask_is_not_checked_although_its_usb_inventory_passed(kb):
    held = result("reader.serial", status=Status.ERROR, summary="/dev/ttyUSB0 is held by minicom (pid 4242)")
    d = diagnose(clear_but(result("reader.usb"), held), kb)
    assert d.top.id == "none" and d.top.certainty <= 0.6
    assert "not checked: card reader — /dev/ttyUSB0 is held by minicom (pid 4242)" in d.top.evidence
    assert not [e for e in d.top.evidence if "could not check" in e]  # said once, as the area not checked
    assert d.not_checked[0].probes == ("reader.serial",)


def test_an_unchecked_reader_is_named_and_caps_none(kb):
    skipped = result("reader.serial", status=Status.SKIPPED, summary="no serial reader configured ([reader] kind)")
    d = diagnose(clear_but(skipped), kb)
    assert d.top.id == "none" and d.verdict == "healthy"
    assert d.top.certainty <= 0.6 and d.top.confidence <= 0.6
    assert "not checked: card reader — no serial reader configured ([reader] kind)" in d.top.evidence
    assert [(u.area, u.reason) for u in d.not_checked] == [("reader", "no serial reader configured ([reader] kind)")]


def test_network_and_reader_unchecked_is_less_sure_than_either_alone(kb):
    no_network = [r for r in ALL_CLEAR if not r.name.startswith("network")]
    one = diagnose(no_network, kb)
    both = diagnose([r for r in no_network if not r.name.startswith("reader")], kb)
    assert both.top.certainty < one.top.certainty <= 0.6
    assert "not checked: network — not part of this diagnosis" in one.top.evidence


def test_unknown_finding_code_still_sets_the_verdict(kb):
    d = diagnose([result("memory", ("memory.something_new", "fail"))], kb)
    assert d.verdict == "fault"
    assert d.top.id == "none"
    assert any("memory.something_new" in e for e in d.top.evidence)


def test_an_unmatched_finding_lowers_the_confidence_that_nothing_is_wrong(kb):
    clean = diagnose([result("memory"), result("disk")], kb)
    odd = diagnose([result("memory"), result("disk", ("disk.something_new", "warn"))], kb)
    assert clean.top.id == odd.top.id == "none"
    assert odd.top.confidence == pytest.approx(clean.top.confidence * 0.7, abs=0.001) and clean.top.confidence > 0


def test_info_findings_are_not_evidence(kb):
    d = diagnose([result("memory", ("memory.pos_rss", "info"))], kb)
    assert d.verdict == "healthy" and d.top.id == "none"


@pytest.mark.parametrize("severity", ["info", "warn", "fail"])
def test_oom_kills_since_boot_alone_are_no_evidence_whatever_their_severity(kb, severity):
    d = diagnose([result("memory", ("memory.oom_kills", severity))], kb)
    assert d.verdict == "healthy" and d.top.id == "none"


@pytest.mark.parametrize("shortage", [("memory.available_low", "fail"), ("memory.pressure_high", "warn")])
def test_oom_kills_beside_a_current_shortage_count_as_a_warning(kb, shortage):
    """The engine's corroboration rule ([corroborated] in causes.toml), not the memory probe's."""
    alone = diagnose([result("memory", shortage)], kb)
    both = diagnose([result("memory", shortage, ("memory.oom_kills", "info"))], kb)
    assert both.top.id == "memory.exhausted" and "memory: memory.oom_kills seen" in both.top.evidence
    weight = dict(kb.evidence["memory.oom_kills"])["memory.exhausted"]
    assert both.top.score == pytest.approx(1 - (1 - alone.top.score) * (1 - weight * 0.5))


def test_a_corroboration_by_a_code_nobody_weighs_is_refused(tmp_path):
    broken = tmp_path / "causes.toml"
    text = causes_path().read_text(encoding="utf-8")
    broken.write_text(text.replace('by = ["memory.available_low", ', 'by = ["memory.avail_low", '), encoding="utf-8")
    with pytest.raises(ConfigError, match="corroborated.memory.oom_kills.by: expected a list of finding codes"):
        load_knowledge(broken)


@pytest.mark.parametrize(("code", "cause", "en", "zh"), [
    ("memory.pos_process_large", "memory.exhausted", "the POS process is probably leaking memory", "POS 进程很可能存在内存泄漏"),
    ("trend.intermittent_dns", "network.dns", "an intermittent fault", "间歇性故障"),
    ("path.mtu_black_hole", "network.degraded", "a path-MTU black hole", "路径 MTU 黑洞"),
    ("link.no_carrier", "network.link_down", "the cable is unplugged", "网线未插好"),
    ("tcp.refused", "host.service_down", "the payment service is down", "支付服务已停止")])
def test_the_engine_says_what_an_observation_means_in_both_languages(code, cause, en, zh):
    """Probes say what they saw; the knowledge base's [reads_as] says what it is, after the probe's words."""
    from posdiag.core import i18n

    for lang, words, colon in (("en", en, ": "), ("zh_CN", zh, "：")):
        i18n.use(lang)  # the engine's own words in the process's language, as the kb is loaded in it
        d = diagnose([result("probe", (code, "warn"))], load_knowledge(causes_path(), lang))
        assert d.top.id == cause
        assert d.top.evidence[0].startswith(f"probe: {code} seen{colon}") and words in d.top.evidence[0], d.top.evidence


def test_every_evidence_code_is_shaped_like_a_finding_code(kb):
    for code in kb.evidence:
        assert re.fullmatch(r"[a-z]+\.[a-z0-9_.]+", code), code


@pytest.mark.parametrize("text,word", [
    ("[[causes]]\nid='none'\ntitle='x'\nremediation=['a']\nexplains=['nope']\n", "unknown cause id 'nope'"),
    ("[[causes]]\nid='none'\ntitle='x'\nremediation=['a']\n[evidence.none]\n'a.b' = 2\n", "expected a weight"),
    ("[[causes]]\nid='x'\ntitle='x'\nremediation=['a']\n", "id = 'none'"),
    ("[[causes]]\nid='none'\ntitle='x'\nremediation=[]\n", "at least one step"),
    ("[[causes]]\nid='none'\ntitle='x'\nremediation=['a']\nunchecked_explanation='not checked: {areas}'\n",
     "may name only {unchecked}"),
    ("[[causes]]\nid='none'\ntitle='x'\nremediation=['a']\n[[causes]]\nid='disk.full'\ntitle='x'\nremediation=['a']\n"
     "unchecked_remediation=['check {unchecked}']\n", "only 'none' and a residual cause rest on nothing being found"),
])
def test_broken_knowledge_base_is_refused(tmp_path: Path, text: str, word: str):
    path = tmp_path / "causes.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_knowledge(path)
    assert word in caught.value.render()


# --- differential evidence ---------------------------------------------------------------------------

def noted(name: str, code: str, severity: str, **data: object) -> ProbeResult:
    """A finding with the observations its [ruled_out] sentence in causes.toml is filled from."""
    finding = Finding(code, Severity(severity), f"{code} seen", data)
    return ProbeResult(name, Status(severity), 0.01, "summary", (finding,), {})


def test_nothing_beyond_the_gateway_makes_silent_dns_a_consequence_of_the_wan(kb):
    d = diagnose([result("network.gateway"), result("network.dns", ("dns.timeout", "fail")),
                  noted("network.dns", "dns.beyond_silent", "fail", silent_check="the last-known address times out")], kb)
    assert d.top.id == "network.wan" and d.verdict == "fault"
    assert "network.dns: not DNS alone: the last-known address times out" in d.top.evidence
    assert "network.dns: dns.timeout seen" in d.top.consequences
    assert [c.id for c in d.causes] == ["network.wan"]


def test_only_dns_failing_stays_dns_and_says_why_it_is_not_the_uplink(kb):
    d = diagnose([result("network.dns", ("dns.timeout", "fail")),
                  noted("network.dns", "dns.beyond_reachable", "warn", reached="198.18.2.2 answers")], kb)
    assert d.top.id == "network.dns"
    assert "network.dns: not the store's uplink: 198.18.2.2 answers" in d.top.evidence


def test_a_router_that_neither_answers_nor_forwards_outranks_dns_and_wan(kb):
    d = diagnose([noted("network.gateway", "gateway.not_forwarding", "fail", gateway="198.18.1.1"),
                  result("network.dns", ("dns.timeout", "fail"), ("dns.beyond_silent", "fail"))], kb)
    assert [c.id for c in d.causes] == ["network.lan"]
    assert ("network.gateway: not DNS or the uplink beyond the router: the gateway 198.18.1.1 itself answers "
            "nothing above ARP") in d.top.evidence


def test_a_lossy_path_that_still_answers_is_degraded_not_an_outage(kb):
    d = diagnose([result("network.tcp", ("tcp.timeout", "fail")),
                  noted("network.path", "path.loss_high", "fail", answered=7, sent=24, address="198.18.2.2")], kb)
    assert [c.id for c in d.causes] == ["network.degraded"]
    assert "network.path: not an outage: 7 of 24 probes to 198.18.2.2 answered" in d.top.evidence


def test_a_folded_cause_never_lends_its_ruled_out_sentence_to_the_blamed_one(kb):
    # the resolver answers over TCP (only DNS fails), yet the host's own address times out: the WAN is
    # blamed and DNS folded into it, so "not the store's uplink" must not stand in the WAN's evidence
    d = diagnose([result("network.dns", ("dns.timeout", "fail")),
                  noted("network.dns", "dns.beyond_reachable", "warn", reached="198.18.2.53 answers"),
                  result("network.tcp", ("tcp.timeout", "fail"))], kb)
    assert d.top.id == "network.wan"
    assert not [line for line in d.top.evidence if "not the store's uplink" in line]


def test_a_ruled_out_sentence_missing_its_data_says_nothing(kb):
    d = diagnose([noted("network.path", "path.loss_high", "fail", answered=7)], kb)
    assert d.top.id == "network.degraded" and not [e for e in d.top.evidence if "not an outage" in e]


def test_a_dead_path_is_still_the_wan(kb):
    d = diagnose([result("network.tcp", ("tcp.timeout", "fail")), result("network.path", ("path.no_answer", "fail"))], kb)
    assert d.top.id == "network.wan"


def test_an_mtu_black_hole_puts_mss_clamping_first(kb):
    d = diagnose([result("network.path", ("path.mtu_black_hole", "fail"))], kb)
    assert d.top.id == "network.degraded"
    assert "MSS clamping" in d.top.remediation[0]
    assert d.top.remediation[-1] == kb.causes["network.degraded"].remediation[-1]
    plain = diagnose([result("network.path", ("path.loss_high", "fail"))], kb)
    assert "MSS" not in plain.top.remediation[0]
    both = diagnose([result("network.path", ("path.mtu_black_hole", "fail")),
                     result("network.tls", ("tls.large_replies_lost", "fail"))], kb)
    assert len(both.top.remediation) == len(set(both.top.remediation))  # shared steps are listed once
    assert sum("MSS clamping" in step for step in both.top.remediation) == 1


def test_remediation_for_a_code_nobody_weighs_is_refused(tmp_path):
    broken = tmp_path / "causes.toml"
    text = causes_path().read_text(encoding="utf-8")
    broken.write_text(text + '\n[remediation_for."path.mtu_blackhole"]\nen = ["a step"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="remediation_for.path.mtu_blackhole: the code is not weighed"):
        load_knowledge(broken)


def test_ruled_out_for_a_code_nobody_weighs_is_refused(tmp_path):
    broken = tmp_path / "causes.toml"
    text = causes_path().read_text(encoding="utf-8")
    broken.write_text(text.replace("[ruled_out]\n", '[ruled_out]\n"dns.beyond_silnt" = "not DNS"\n'), encoding="utf-8")
    with pytest.raises(ConfigError, match="ruled_out.dns.beyond_silnt: the code is not weighed"):
        load_knowledge(broken)


def _cjk(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def test_every_cause_speaks_both_languages():
    english, chinese = load_knowledge(causes_path(), "en"), load_knowledge(causes_path(), "zh_CN")
    assert english.causes.keys() == chinese.causes.keys()
    for cause_id, en in english.causes.items():
        zh = chinese.causes[cause_id]
        assert not _cjk(en.title + en.explanation + "".join(en.remediation)), cause_id
        assert _cjk(zh.title) and _cjk(zh.explanation) and all(map(_cjk, zh.remediation)), f"{cause_id} lacks Chinese"
        assert len(zh.remediation) == len(en.remediation), f"{cause_id}: the Chinese steps are not the English ones"
    for code, steps in english.remediation_for.items():
        assert len(chinese.remediation_for[code]) == len(steps) and all(map(_cjk, chinese.remediation_for[code])), code
    for table in ("ruled_out", "reads_as"):
        for code, sentence in getattr(english, table).items():
            translated = getattr(chinese, table)[code]
            assert _cjk(translated) and not _cjk(sentence), (table, code)
            assert set(re.findall(r"{(\w+)}", translated)) == set(re.findall(r"{(\w+)}", sentence)), (table, code)


def test_the_field_guide_names_the_causes_in_chinese():
    titles = {c.id: c.title for c in load_knowledge(causes_path(), "zh_CN").causes.values()}
    for cause_id, term in {"network.link_down": "网络连接中断", "host.service_down": "服务器故障",
                           "memory.exhausted": "内存溢出", "disk.failing": "硬盘损坏", "system.crashed": "操作系统崩溃",
                           "network.weak_signal": "信号弱",
                           "config.invalid": "软件配置错误", "operator.input": "重复刷卡", "account.declined": "账户问题",
                           "data.format": "数据格式错误", "reader.substituted": "恶意攻击"}.items():
        assert term in titles[cause_id], f"{cause_id}: {titles[cause_id]!r} does not use the field guide's {term!r}"


def test_a_cause_without_its_chinese_is_shown_in_english(tmp_path):
    own = tmp_path / "causes.toml"
    own.write_text(causes_path().read_text(encoding="utf-8").replace(
        '[causes.zh_CN]\ntitle = "未发现终端侧故障"', '[causes.fr]\ntitle = "x"', 1), encoding="utf-8")
    kb = load_knowledge(own, "zh_CN")
    assert kb.causes["none"].title == "No terminal-side fault found"
    assert _cjk(kb.causes["disk.full"].title)


def test_a_misspelt_key_in_a_language_table_is_refused(tmp_path, kb):
    own = tmp_path / "causes.toml"
    own.write_text(causes_path().read_text(encoding="utf-8").replace(
        '[causes.zh_CN]\ntitle = "未发现终端侧故障"', '[causes.zh_CN]\ntitel = "未发现终端侧故障"', 1), encoding="utf-8")
    where = list(kb.causes).index("none")  # the entry whose Chinese title was misspelt
    with pytest.raises(ConfigError, match=rf"causes\[{where}\]\.zh_CN\.titel: unknown key"):
        load_knowledge(own, "zh_CN")


@pytest.mark.parametrize("lang", ["en", "zh_CN"])
def test_the_collector_reads_every_cause_title_as_the_engine_writes_it(lang):
    """The central server names causes through posdiag.core.causes (it may not import the engine):
    the same title, in each language, as a report written on the till carries."""
    from posdiag.core.causes import titles

    engine = {c.id: c.title for c in load_knowledge(causes_path(), lang).causes.values()}
    assert titles(lang) == engine
    assert titles("fr") == titles("en")  # a language the catalogue does not have: English


def test_the_collector_leaves_out_a_cause_without_an_id_or_a_title_and_shows_the_rest(tmp_path, monkeypatch):
    """An operator's knowledge base with an unfinished entry (the engine refuses it on the till) must
    not break the central server's pages: they show every cause that has both, and only those."""
    from posdiag.core import causes

    own = tmp_path / "causes.toml"
    own.write_text('[[causes]]\nid = "disk.full"\ntitle = "Disk full"\n\n'
                   '[[causes]]\nid = "untitled"\n\n'
                   '[[causes]]\ntitle = "Nobody\'s cause"\n\n'
                   '[[causes]]\nid = "numbered"\ntitle = 7\n\n'
                   '[[causes]]\nid = "chinese.only"\n[causes.zh_CN]\ntitle = "只有中文"\n', encoding="utf-8")
    monkeypatch.setattr(causes, "causes_path", lambda: own)
    causes.titles.cache_clear()
    try:
        assert causes.titles("en") == {"disk.full": "Disk full"}
        assert causes.titles("zh_CN") == {"disk.full": "Disk full", "chinese.only": "只有中文"}
    finally:
        causes.titles.cache_clear()
# --- independent faults, rivals, coverage and the POS log ----------------------------------------

def counted(code: str, count: int, classified: int) -> ProbeResult:
    """A txlog finding for ``count`` of the ``classified`` response codes in the window."""
    finding = Finding(code, Severity.WARN, f"{code} seen", {"count": count, "classified": classified})
    return ProbeResult("txlog", Status.WARN, 0.01, "summary", (finding,), {})


def test_independent_faults_are_each_certain_and_share_the_blame(kb):
    d = diagnose(clear_but(result("disk", ("disk.space_low", "fail"), ("disk.write_no_space", "fail")),
                           result("network.tls", ("tls.untrusted", "fail")),
                           result("reader.serial", ("reader.no_reply", "fail"))), kb)
    assert d.verdict == "fault"
    assert {c.id for c in d.present} == {"disk.full", "tls.failure", "reader.unresponsive"}
    assert all(c.certainty >= 0.8 for c in d.present)
    assert sum(c.confidence for c in d.causes) <= 1.0 + 1e-9
    assert [c.confidence for c in d.causes] == sorted((c.confidence for c in d.causes), reverse=True)


def test_rivals_for_the_same_evidence_share_its_certainty(kb):
    # host error codes point at the payment service and, less, at the WAN: one observation, two readings
    d = diagnose(clear_but(counted("txlog.host_errors", 3, 3)), kb)
    service, wan = (next(c for c in d.causes if c.id == i) for i in ("host.service_down", "network.wan"))
    assert service.certainty > wan.certainty > 0
    assert service.certainty + wan.certainty <= 0.7 * 0.5 + 1e-9  # together no surer than the finding itself
    assert d.present == []


def test_consequences_are_not_rivals_and_the_deepest_layer_keeps_its_certainty(kb):
    d = diagnose(clear_but(result("network.link", ("link.no_carrier", "fail")),
                           result("network.dns", ("dns.timeout", "fail")), result("network.tcp", ("tcp.timeout", "fail")),
                           result("reader.serial", ("reader.no_reply", "fail"))), kb)
    assert {c.id for c in d.causes} == {c.id for c in d.present} == {"network.link_down", "reader.unresponsive"}
    link = next(c for c in d.causes if c.id == "network.link_down")
    assert link.certainty >= 0.9 and "network.tcp: tcp.timeout seen" in link.consequences


def test_2824s_with_every_area_checked_and_passed_are_a_fault_beyond_the_terminal(kb):
    d = diagnose(clear_but(result("txlog", ("txlog.errors_2824", "warn"))), kb)
    assert d.verdict == "degraded"
    assert [c.id for c in d.causes] == ["host.upstream"]
    assert d.top.certainty >= 0.9
    assert any(e.startswith("checked and passed: memory, disk, system, clock, network, card reader") for e in d.top.evidence)


def test_2824s_with_nothing_else_configured_are_never_healthy_and_say_what_was_not_checked(kb):
    d = diagnose([result("memory"), result("disk"), result("system"), result("clock"),
                  result("network.link", status=Status.SKIPPED, summary="no payment host configured ([[payment_hosts]])"),
                  result("reader.serial", status=Status.SKIPPED, summary="no serial reader configured ([reader] kind)"),
                  result("txlog", ("txlog.errors_2824", "warn"))], kb)
    assert d.verdict == "degraded" and d.top.id == "host.upstream"
    assert d.top.certainty <= 0.6
    assert "not checked: network — no payment host configured ([[payment_hosts]])" in d.top.evidence


NO_READER = result("reader.serial", status=Status.SKIPPED, summary="no serial reader configured ([reader] kind)")
#: per language: what only a full check may claim, and what is said (and done first) instead
NOT_EVERY_CHECK = {
    "none": {"en": ("Every check", "No fault in what was checked; not checked: card reader.",
                    "Configure what was not checked (card reader)"),
             "zh_CN": ("所有检查都通过", "已检查的项目中没有发现故障；未检查：读卡器。", "先配置未检查的项目（读卡器）")},
    "host.upstream": {"en": ("every check on the terminal passed",
                             "The POS log shows 2824 errors, and no fault was found in what was checked; not checked: "
                             "card reader.", "Configure what was not checked (card reader)"),
                      "zh_CN": ("各项检查都通过", "POS 日志里出现了 2824 错误，已检查的项目中没有发现故障；未检查：读卡器。",
                                "先配置未检查的项目（读卡器）")},
}


@pytest.mark.parametrize("lang", ["en", "zh_CN"])
@pytest.mark.parametrize(("cause", "symptom"), [("none", ()), ("host.upstream", (("txlog.errors_2824", "warn"),))])
def test_every_check_passed_is_said_only_when_nothing_was_left_out(lang, cause, symptom):
    """A verdict that rests on nothing being found keeps its words when every area was checked; with
    one left out it names it instead, and checking it comes before escalating."""
    from posdiag.core import i18n

    every_check, instead, first_step = NOT_EVERY_CHECK[cause][lang]
    i18n.use(lang)  # the area words are the engine's, in the process's language
    kb = load_knowledge(causes_path(), lang)
    whole = diagnose(clear_but(result("txlog", *symptom)), kb)
    partial = diagnose(clear_but(result("txlog", *symptom), NO_READER), kb)
    info = kb.causes[cause]
    assert whole.top.id == partial.top.id == cause
    assert every_check in whole.top.explanation
    assert (whole.top.explanation, whole.top.remediation) == (info.explanation, list(info.remediation))
    assert every_check not in partial.top.explanation and partial.top.explanation.startswith(instead)
    assert partial.top.remediation[0].startswith(first_step) and partial.top.remediation[1:] == list(info.remediation)


def test_2824s_are_a_consequence_of_a_fault_the_terminal_has(kb):
    d = diagnose(clear_but(result("disk", ("disk.space_low", "fail")), result("txlog", ("txlog.errors_2824", "warn"))), kb)
    assert [c.id for c in d.causes] == ["disk.full"]
    assert "txlog: txlog.errors_2824 seen" in d.top.consequences


def test_response_codes_weigh_by_how_often_they_occur(kb):
    findings = (Finding("txlog.host_errors", Severity.WARN, "host", {"count": 3, "classified": 4}),
                Finding("txlog.format_errors", Severity.WARN, "format", {"count": 1, "classified": 4}),
                Finding("txlog.errors_2824", Severity.WARN, "2824s", {"count": 5}))
    d = diagnose(clear_but(ProbeResult("txlog", Status.WARN, 0.01, "summary", findings, {})), kb)
    ranked = [c.id for c in d.causes]
    assert ranked[0] == "host.service_down"
    assert ranked.index("data.format") > ranked.index("host.service_down")


def test_the_terminals_own_firewall_explains_what_times_out_beyond_it(kb):
    d = diagnose(clear_but(result("network.tcp", ("tcp.blocked_locally", "fail")),
                           result("network.path", ("path.blocked_locally", "fail"))), kb)
    assert [c.id for c in d.causes] == ["network.local_firewall"]
    assert d.top.certainty >= 0.9


def test_a_silent_host_on_the_stores_lan_is_the_host_not_the_wan(kb):
    d = diagnose(clear_but(result("network.tcp", ("tcp.lan_host_silent", "fail")),
                           result("network.path", ("path.lan_host_silent", "fail"))), kb)
    assert [c.id for c in d.causes] == ["host.service_down"]


def test_an_ntp_name_that_does_not_resolve_is_a_clock_finding_not_a_payment_path(kb):
    d = diagnose(clear_but(result("clock", ("clock.ntp_unresolved", "warn"))), kb)
    assert [c.id for c in d.causes] == ["clock.skew"]
    assert d.verdict == "degraded"


def test_a_residual_cause_that_is_not_true_or_false_is_refused(tmp_path):
    own = tmp_path / "causes.toml"
    own.write_text(causes_path().read_text(encoding="utf-8").replace("residual = true", "residual = 'yes'"),
                   encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\(host.upstream\)\.residual: expected true or false"):
        load_knowledge(own)


@pytest.mark.parametrize(("results", "unexplained", "sure"), [
    (ALL_CLEAR, False, 0.95),  # every area checked and passed
    (ALL_CLEAR, True, 0.665),  # ... but a warning that matched no cause: 0.7 times as sure
    ([r for r in ALL_CLEAR if not r.name.startswith("network")], False, 0.6),  # one critical area unchecked: 0.6
    ([r for r in ALL_CLEAR if not r.name.startswith(("network", "reader"))], False, 0.379),  # both: 0.6 × 0.6 / 0.95
    ([r for r in ALL_CLEAR if r.name != "txlog"], False, 0.95),  # a non-critical area left out caps nothing
    (clear_but(result("disk", status=Status.ERROR)), False, 0.831),  # 7 of 8 could check: 0.95 × 7/8
], ids=["all-clear", "unexplained", "network-unchecked", "network-and-reader-unchecked", "no-txlog", "one-errored"])
def test_how_sure_no_terminal_side_fault_is_follows_what_was_checked(results, unexplained, sure):
    from posdiag.agent import coverage

    assert coverage.of(results).certainty(unexplained) == sure


def test_a_critical_area_with_one_probe_that_could_not_check_is_unchecked_a_plain_one_is_not():
    from posdiag.agent import coverage

    cover = coverage.of(clear_but(result("network.dns", status=Status.ERROR, summary="no resolver"),
                                  result("system.cpu", status=Status.ERROR, summary="no /proc/stat")))
    assert [(u.area, u.probes) for u in cover.unchecked] == [("network", ("network.dns",))]
    assert "system" not in cover.passed and "memory" in cover.passed and cover.ran == 10
    assert cover.fraction == 0.8 and cover.ran_line() == "8 of 10 probes ran and found no terminal-side fault"
    silent = coverage.of([result("memory"), result("reader.serial", ("reader.no_answer", "fail"))])
    assert "reader" not in silent.passed and "memory" in silent.passed
    assert "network" in coverage.of(clear_but(result("network.dns", status=Status.SKIPPED))).passed  # not configured
    assert coverage.of([]).certainty() == 0.0 and coverage.of([result("txlog", status=Status.SKIPPED)]).fraction == 0.0


@pytest.mark.parametrize(("weight", "taken"), [("1", True), ("1.0", True), ("0.5", True), ("0.001", True),
                                               ("0", False), ("1.01", False), ("-0.5", False), ("'high'", False),
                                               ("true", False)])
def test_an_evidence_weight_is_taken_above_0_up_to_1(tmp_path: Path, weight: str, taken: bool):
    path = tmp_path / "causes.toml"
    path.write_text("[[causes]]\nid='none'\ntitle='x'\nremediation=['a']\n[[causes]]\nid='disk.full'\ntitle='x'\n"
                    f"remediation=['a']\n[evidence.'disk.full']\n'disk.low_space' = {weight}\n")
    if taken:
        assert load_knowledge(path).evidence["disk.low_space"] == [("disk.full", float(weight))]
    else:
        with pytest.raises(ConfigError, match=r"evidence\.disk\.full\.disk\.low_space: expected a weight in \(0, 1\]"):
            load_knowledge(path)


def test_coverage_evidence_names_each_probe_that_could_not_check_once_and_an_area_whose_probes_all_skipped():
    from posdiag.agent import coverage

    cover = coverage.of(clear_but(result("network.dns", status=Status.ERROR, summary="no resolver"),
                                  result("system.cpu", status=Status.ERROR, summary="no /proc/stat"),
                                  result("disk", ("disk.low_space", "warn")),
                                  result("reader.serial", status=Status.SKIPPED, summary="no reader configured"),
                                  result("reader.usb", status=Status.SKIPPED, summary="no USB reader")))
    assert cover.lines() == ["system.cpu: could not check (no /proc/stat)", "not checked: network — no resolver",
                             "not checked: card reader — no reader configured"]  # network.dns said once, in its area
    assert [(u.area, u.probes) for u in cover.unchecked] == [("network", ("network.dns",)),
                                                             ("reader", ("reader.serial", "reader.usb"))]
    assert cover.unchecked_words() == "network, card reader"
    assert "disk" not in cover.passed and "txlog" in cover.passed  # a warning is checked, not passed
    assert cover.passed_line() == "checked and passed: memory, clock, POS log"
    assert coverage.of([]).passed_line() is None


def test_a_cause_is_a_fault_present_from_a_certainty_of_one_half_and_none_never_is():
    """The engine's own list of faults present (what the verdict and the report's faults come from)."""
    from posdiag.agent.diagnosis import Diagnosis, RankedCause

    def cause(cause_id: str, certainty: float) -> RankedCause:
        return RankedCause(cause_id, cause_id, certainty, [], [], certainty=certainty)

    d = Diagnosis("fault", [cause("disk.full", 0.5), cause("tls.failure", 0.4999), cause("none", 0.9),
                            cause("reader.unresponsive", 1.0)])
    assert [c.id for c in d.present] == ["disk.full", "reader.unresponsive"]
    said = d.to_dict()["causes"][1]  # the report says three decimals: 0.4999 reads as 0.5, yet is no fault
    assert (said["id"], said["certainty"], said["confidence"]) == ("tls.failure", 0.5, 0.5)


@pytest.mark.parametrize(("data", "share"), [({"count": 3, "classified": 4}, 0.75), ({"count": 1, "classified": 4}, 0.25),
                                             ({"count": 4, "classified": 4}, 1.0), ({"count": 0, "classified": 4}, 1.0),
                                             ({"count": 5, "classified": 4}, 1.0), ({"count": 3}, 1.0), ({}, 1.0),
                                             ({"count": 3.0, "classified": 4}, 1.0)])
def test_a_counted_finding_weighs_the_share_of_the_classified_codes_it_stands_for(data, share):
    """Three host errors among four classified response codes weigh three quarters; a count that is no
    share of a whole (none, zero, more than the whole, not counted) weighs as a whole finding."""
    from posdiag.agent.diagnosis import _share

    assert _share(Finding("txlog.host_errors", Severity.WARN, "host errors", data)) == share


def test_a_cause_explains_those_below_it_from_a_score_of_0_4_and_a_residual_cause_folds_into_the_strongest_root():
    """(A knowledge base of the test's own: the layering is pure logic.)"""
    from posdiag.agent.diagnosis import CauseInfo, KnowledgeBase, _layer

    def cause(cause_id: str, explains: tuple[str, ...] = (), residual: bool = False) -> CauseInfo:
        return CauseInfo(cause_id, cause_id, "", ("step",), explains, residual)

    kb = KnowledgeBase({c.id: c for c in (cause("link", ("gateway",)), cause("gateway"), cause("disk"),
                                         cause("upstream", residual=True), cause("a", ("b",)), cause("b", ("a",)))}, {})
    assert _layer({"link": 0.4, "gateway": 0.9}, kb) == {"gateway": "link"}
    assert _layer({"link": 0.3999, "gateway": 0.9}, kb) == {}  # too weak to explain anything
    assert _layer({"link": 0.9, "gateway": 0.5, "disk": 0.6, "upstream": 0.95}, kb) == {"gateway": "link",
                                                                                          "upstream": "link"}
    assert _layer({"disk": 0.2, "upstream": 0.95}, kb) == {"upstream": "disk"}  # whatever the root's strength
    assert _layer({"upstream": 0.95}, kb) == {} and _layer({"a": 0.9, "b": 0.8}, kb) == {}  # no root; each other's


def test_rivals_for_one_finding_share_its_strength_by_weight_and_a_cause_folded_into_another_takes_none():
    """(The findings' strengths are the test's: the sharing is pure logic.)"""
    from posdiag.agent.diagnosis import _certainties, _Scores

    sc = _Scores(weighed=[(1.0, [("host", 0.8), ("wan", 0.2)])])
    assert _certainties(sc, {}) == pytest.approx({"host": 0.64, "wan": 0.16})  # 0.8 strong, split 4 : 1
    assert _certainties(sc, {"wan": "host"}) == pytest.approx({"host": 0.8})  # a consequence is no rival
    assert _certainties(sc, {"wan": "x", "host": "x"}) == {}
    sc = _Scores(weighed=[(0.5, [("disk", 1.0)]), (1.0, [("disk", 0.6)])])  # two findings for one cause add up
    assert _certainties(sc, {}) == pytest.approx({"disk": 1 - (1 - 0.5) * (1 - 0.6)})


@pytest.mark.parametrize("findings", [(("disk.space_low", "warn"), ("disk.write_no_space", "fail")),
                                      (("disk.write_no_space", "fail"), ("disk.space_low", "warn"))],
                         ids=["warn-first", "fail-first"])
def test_a_cause_is_as_severe_as_its_worst_finding_whichever_came_first(kb, findings):
    """A low-space warning beside a failed write is a fault; a warning alone weighs half a failure."""
    from posdiag.agent.diagnosis import _score

    sc = _score([result("disk", *findings)], kb)
    assert sc.worst["disk.full"] is Severity.FAIL
    d = diagnose(clear_but(result("disk", *findings)), kb)
    assert d.verdict == "fault" and d.top.id == "disk.full"
    weight = dict(kb.evidence["disk.space_low"])["disk.full"]
    warned = _score([result("disk", ("disk.space_low", "warn"))], kb)
    assert warned.worst["disk.full"] is Severity.WARN and warned.score["disk.full"] == pytest.approx(weight * 0.5)
