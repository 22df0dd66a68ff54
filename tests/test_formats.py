"""Monitoring formats, from real diagnoses: the plugin line and the Prometheus text parse as their
consumers parse them, and say what the exit code says."""

from __future__ import annotations

import json
import re

import pytest
from labs.commands import run_cli
from posdiag.agent.formats import nagios_line, prometheus_text, write_atomically

#: The monitoring-plugins output rules: ``SERVICE STATE - text | perfdata``.
PLUGIN_LINE = re.compile(r"^POSDIAG (OK|WARNING|CRITICAL|UNKNOWN) - ([^|\n]+?) \| (.*)\n$")
#: One perfdata item: 'label'=value[UOM];[warn];[crit];[min];[max], the value in the plugin guidelines'
#: characters only ([-0-9.]: no exponent, which monitors cannot graph)
PERF_ITEM = re.compile(r"^'((?:[^']|'')+)'=(-?[0-9.]+)(us|ms|s|%|B|KB|MB|TB|c)?"
                       r"(?:;([^;]*)(?:;([^;]*)(?:;([^;]*)(?:;([^;]*))?)?)?)?$")


def perfdata(text: str) -> dict[str, tuple[float, str]]:
    items = {}
    for item in re.findall(r"'(?:[^']|'')+'=\S+", text):
        m = PERF_ITEM.match(item)
        assert m, f"not a valid perfdata item: {item!r}"
        items[m.group(1).replace("''", "'")] = (float(m.group(2)), m.group(3) or "")
    assert len(items) == len(text.split()), "perfdata holds something that is not an item"
    return items


@pytest.fixture
def full_disk_report(config_file, tmp_path):
    """A real fault: the disk probe finds less free space than required."""
    config = config_file(disk={"paths": [str(tmp_path)], "min_free_mb": 10_000_000})
    rc, out, _ = run_cli("diagnose", "--json", "--only", "disk,memory", "--config", str(config))
    return rc, json.loads(out)


@pytest.fixture
def healthy_report(config_file, tmp_path):
    config = config_file(disk={"paths": [str(tmp_path)], "min_free_mb": 1}, memory={"min_available_mb": 1})
    rc, out, _ = run_cli("diagnose", "--json", "--only", "disk,memory", "--config", str(config))
    return rc, json.loads(out)


def test_nagios_line_of_a_full_disk_is_critical_and_names_the_cause(full_disk_report):
    rc, report = full_disk_report
    line = nagios_line(report, rc)
    m = PLUGIN_LINE.match(line)
    assert m, line
    assert rc == 2 and m.group(1) == "CRITICAL"
    assert m.group(2).startswith("disk.full (") and "disk:" in m.group(2)
    perf = perfdata(m.group(3))
    assert perf["duration"][1] == "s" and perf["confidence"][0] == report["diagnosis"]["causes"][0]["confidence"]
    assert any(label.startswith("disk.free_mb[") and uom == "MB" for label, (_, uom) in perf.items()), perf


def test_nagios_line_of_a_healthy_terminal_is_ok(healthy_report):
    rc, report = healthy_report
    m = PLUGIN_LINE.match(nagios_line(report, rc))
    assert m and rc == 0 and m.group(1) == "OK"
    assert "no terminal-side fault" in m.group(2)
    assert report["diagnosis"]["causes"][0]["evidence"] and " - " not in m.group(2)  # "none" quotes no evidence


@pytest.mark.parametrize(("state", "rc", "word"), [("healthy", 0, "OK"), ("degraded", 1, "WARNING"),
                                                   ("fault", 2, "CRITICAL"), ("bad-configuration", 3, "UNKNOWN")])
def test_the_plugin_state_word_is_the_exit_codes_in_every_state(config_file, tmp_path, state, rc, word):
    """Each state from a real run: a disk with room, a disk path that is gone (a warning), a minimum no disk
    meets, and a configuration that is refused (a timeout that does not fit in the deadline): nothing diagnosed."""
    from labs.commands import run_posdiag

    sections = {"healthy": {"disk": {"paths": [str(tmp_path)], "min_free_mb": 1}},
                "degraded": {"disk": {"paths": [str(tmp_path / "gone")]}},
                "fault": {"disk": {"paths": [str(tmp_path)], "min_free_mb": 10_000_000}},
                "bad-configuration": {"network": {"timeout_s": 2.0}, "diagnosis": {"deadline_s": 0.5}}}[state]
    proc = run_posdiag("diagnose", "--format", "nagios", "--only", "disk", "--config", str(config_file(**sections)))
    m = re.match(r"POSDIAG (\w+) - ", proc.stdout)  # nothing measured, no perfdata: the line may end at its text
    assert m and proc.returncode == rc and m.group(1) == word, (proc.stdout, proc.stderr)
    assert state == "bad-configuration" or PLUGIN_LINE.match(proc.stdout), proc.stdout


def test_nagios_text_names_the_strongest_evidence_and_counts_the_rest(full_disk_report):
    rc, report = full_disk_report
    report["diagnosis"]["causes"][0]["evidence"] = ["disk: the strongest sign", "disk: a weaker one", "memory: another"]
    text = PLUGIN_LINE.match(nagios_line(report, rc)).group(2)
    assert text.endswith(" - disk: the strongest sign (+2 more)"), text


def test_nagios_text_never_carries_a_pipe_or_newline(full_disk_report):
    rc, report = full_disk_report
    report["diagnosis"]["causes"][0]["evidence"] = ["a | b\nc"]
    line = nagios_line(report, rc)
    assert line.count("\n") == 1 and PLUGIN_LINE.match(line)


def test_prometheus_text_parses_and_carries_the_verdict(full_disk_report):
    from prometheus_client.parser import text_string_to_metric_families

    rc, report = full_disk_report
    families = {f.name: f for f in text_string_to_metric_families(prometheus_text(report, rc))}
    verdict = {s.labels["verdict"]: s.value for s in families["posdiag_verdict"].samples}
    assert verdict == {"healthy": 0, "degraded": 0, "fault": 1}
    assert families["posdiag_exit_code"].samples[0].value == 2
    confidence = {s.labels["cause"]: s.value for s in families["posdiag_cause_confidence"].samples}
    assert confidence["disk.full"] == report["diagnosis"]["causes"][0]["confidence"]
    status = {(s.labels["probe"], s.labels["status"]): s.value for s in families["posdiag_probe_status"].samples}
    assert status[("disk", "fail")] == 1 and status[("disk", "ok")] == 0
    assert {s.labels["probe"] for s in families["posdiag_probe_duration_seconds"].samples} == {"disk", "disk.health", "memory"}


def with_metrics(report: dict, probe: str, **metrics: float) -> dict:
    """The report with one more probe's measurements, first (so that perfdata's bound keeps them)."""
    report["probes"].insert(0, {"name": probe, "status": "ok", "duration_s": 0.01, "summary": "", "findings": [],
                                "metrics": metrics})
    return report


LARGE = {"pos_uptime_s": 1036800.5, "free_mb": 123456789, "offset_ms": -0.000125, "pos_rss_percent": 0.5}


def test_perfdata_writes_large_and_small_numbers_whole_in_plugin_characters(healthy_report):
    """12 days of POS uptime and a half second: '1036800.5s', never '1.0368e+06s'."""
    rc, report = healthy_report
    line = nagios_line(with_metrics(report, "system", **LARGE), rc)
    items = re.findall(r"'([^']+)'=([^; ]+)", PLUGIN_LINE.match(line).group(3))
    values = {label: value for label, value in items}
    assert values["system.pos_uptime_s"] == "1036800.5s"
    assert values["system.free_mb"] == "123456789MB"
    assert values["system.offset_ms"] == "-0.000125ms"
    assert values["system.pos_rss_percent"] == "0.5%"
    assert all(PERF_ITEM.match(item) for item in re.findall(r"'(?:[^']|'')+'=\S+", line)), line


def test_prometheus_samples_are_the_exact_values(healthy_report):
    from prometheus_client.parser import text_string_to_metric_families

    rc, report = healthy_report
    text = prometheus_text(with_metrics(report, "system", **LARGE), rc)
    assert 'posdiag_probe_metric{probe="system",metric="pos_uptime_s"} 1036800.5\n' in text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    got = {s.labels["metric"]: s.value for s in families["posdiag_probe_metric"].samples if s.labels["probe"] == "system"}
    assert got == LARGE


def test_prometheus_label_values_are_escaped(healthy_report):
    from prometheus_client.parser import text_string_to_metric_families

    rc, report = healthy_report
    report["terminal"]["site"] = 'store "42"\\north\nwing'
    families = {f.name: f for f in text_string_to_metric_families(prometheus_text(report, rc))}
    assert families["posdiag_info"].samples[0].labels["site"] == 'store "42"\\north\nwing'


def test_write_atomically_that_fails_leaves_the_old_file_and_no_scrap(tmp_path):
    """A write that cannot land (here the target is a folder) raises its own error, and leaves neither
    a half file nor its temporary copy in the folder the textfile collector reads."""
    target = tmp_path / "posdiag.prom"
    target.mkdir()
    with pytest.raises(IsADirectoryError):
        write_atomically(target, "new\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["posdiag.prom"]


def test_write_atomically_replaces_the_file_whole(tmp_path):
    target = tmp_path / "posdiag.prom"
    target.write_text("old\n")
    write_atomically(target, "new\n")
    assert target.read_text() == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["posdiag.prom"]  # no temporary left behind


def test_diagnose_format_nagios_prints_one_plugin_line_with_the_exit_state(config_file, tmp_path):
    config = config_file(disk={"paths": [str(tmp_path)], "min_free_mb": 10_000_000})
    rc, out, _ = run_cli("diagnose", "--format", "nagios", "--only", "disk", "--config", str(config))
    m = PLUGIN_LINE.match(out)
    assert m and rc == 2 and m.group(1) == "CRITICAL" and "disk.full" in m.group(2)


def test_diagnose_format_prometheus_writes_the_file_atomically(config_file, tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    config = config_file(disk={"paths": [str(tmp_path)], "min_free_mb": 1})
    target = tmp_path / "textfile" / "posdiag.prom"
    target.parent.mkdir()
    rc, out, _ = run_cli("diagnose", "--format", "prometheus", "-o", str(target), "--only", "disk",
                         "--config", str(config))
    assert out == "" and rc == 0
    families = {f.name: f for f in text_string_to_metric_families(target.read_text())}
    assert families["posdiag_exit_code"].samples[0].value == 0
    assert [p.name for p in target.parent.iterdir()] == ["posdiag.prom"]


def test_json_and_another_format_at_once_is_bad_usage(config_file):
    rc, _, err = run_cli("diagnose", "--json", "--format", "nagios", "--config", str(config_file()))
    assert rc == 3 and "--json and --format nagios" in err


def test_bundle_command_says_where_it_wrote_and_how_big(config_file, tmp_path):
    target = tmp_path / "ticket" / "b.tar.gz"
    rc, out, _ = run_cli("bundle", "-o", str(target), "--config", str(config_file()))
    assert rc == 0 and str(target) in out and f"({target.stat().st_size / 1024:.1f} KiB)" in out
    assert target.stat().st_size > 0


def test_time_stamps_are_utc_to_the_second_and_read_back_exactly():
    from posdiag.core.timefmt import compact_stamp, parse_utc_iso, utc_iso

    assert utc_iso(0) == "1970-01-01T00:00:00Z" and utc_iso(1_800_000_000.9) == "2027-01-15T08:00:00Z"
    assert parse_utc_iso("2027-01-15T08:00:00Z") == 1_800_000_000
    assert compact_stamp(1_800_000_000) == "20270115T080000Z"
    for wrong in ("2027-01-15 08:00:00", "2027-01-15T08:00:00+01:00", "9999-99-99T99:99:99Z", "2027-01-15T25:00:00Z",
                  "2027-1-15T8:00:00Z", "2027-01-15T08:00:00Z\n", " 2027-01-15T08:00:00Z", "2027-02-29T08:00:00Z", ""):
        with pytest.raises(ValueError):
            parse_utc_iso(wrong)


def _as_an_older_agent_wrote_it(report: dict) -> dict:
    """The same report without what older agents did not write: certainty, not_checked, only."""
    old = json.loads(json.dumps(report))
    old["diagnosis"].pop("not_checked", None)
    old.pop("only", None)
    for cause in old["diagnosis"]["causes"]:
        cause.pop("certainty", None)
    return old


def test_a_report_of_an_older_agent_without_certainty_still_renders_everywhere(full_disk_report):
    from posdiag.agent.report import render_text
    from prometheus_client.parser import text_string_to_metric_families

    rc, report = full_disk_report
    old = _as_an_older_agent_wrote_it(report)
    text = render_text(old)
    assert "Mostlikelycause:AfilesystemthePOSneedsisfull[disk.full,confidence" in "".join(text.split())
    assert "certainty" not in text and "Not checked:" not in text
    assert PLUGIN_LINE.match(nagios_line(old, rc))
    families = {f.name: f for f in text_string_to_metric_families(prometheus_text(old, rc))}
    assert families["posdiag_cause_certainty"].samples == []
    assert {s.labels["cause"] for s in families["posdiag_cause_confidence"].samples} >= {"disk.full"}


def test_the_plugin_line_names_every_fault_present(config_file, tmp_path):
    config = config_file(disk={"paths": [str(tmp_path)], "min_free_mb": 10_000_000}, memory={"min_available_mb": 1_000_000})
    rc, out, _ = run_cli("diagnose", "--format", "nagios", "--only", "disk,memory", "--config", str(config))
    match = PLUGIN_LINE.match(out)
    assert match and rc == 2, out
    text = match.group(2)
    named = {"disk.full", "memory.exhausted"}
    first = text.split(" ", 1)[0]
    assert first in named and f"also present: {(named - {first}).pop()}" in text
    assert "certainty" in perfdata(match.group(3))


def test_numbers_below_one_keep_their_significant_digits_as_decimal_writes_them():
    """plain() spells small numbers out by hand (decimal's import would cost every start-up): it must
    agree with decimal's positional form of the same significant digits, for every sign, size and
    rounding edge, and fall back to the ordinary form where rounding reaches one."""
    import random
    from decimal import Decimal

    from posdiag.core.numfmt import plain

    def by_decimal(value: float, digits: int) -> str:
        text = format(Decimal(f"{value:.{digits}g}"), "f")
        return text.rstrip("0").rstrip(".") if "." in text else text

    rng = random.Random(2824)
    values = [0.25, 1e-7, 0.9999999, 0.99999949, -0.5, -1e-9, 1e-300, 5e-324, 0.1, 0.0000001234567, -0.99999999]
    values += [rng.uniform(-1, 1) * 10 ** rng.randint(-30, 0) for _ in range(5000)]
    for value in values:
        for digits in (1, 2, 6, 9):
            assert plain(value, digits) == by_decimal(value, digits), (value, digits)
    assert plain(0.9999999) == "1" and plain(-0.9999999) == "-1" and plain(1e-7) == "0.0000001"
    assert plain(-0.0) == plain(0.0) == plain(0) == "0"  # a drift rounded to nothing has no sign


def test_numbers_that_are_no_finite_value_are_spelt_as_prometheus_reads_them():
    from posdiag.core.numfmt import plain

    assert (plain(float("inf")), plain(float("-inf")), plain(float("nan"))) == ("+Inf", "-Inf", "NaN")
    assert (plain(True), plain(False), plain(10**7), plain(1e7), plain(1036800.5)) == ("1", "0", "10000000", "10000000",
                                                                                          "1036800.5")


def test_perfdata_carries_numeric_metrics_with_their_unit_and_at_most_forty_items(healthy_report):
    """A unit only from the metric's suffix (_ms, _s, _percent, _mb, else none); booleans, text and
    non-finite numbers are no measurements; the counts of failed and errored probes come first."""
    rc, report = healthy_report
    report["probes"][0]["status"], report["probes"][1]["status"] = "fail", "error"
    odd = {"rtt_ms": 12, "age_s": 3, "used_percent": 50, "free_mb": 7, "count": 4, "ok": True, "name": "x",
           "lost": float("nan"), "never": float("inf"), "seen_ms[eth0]": 2}
    items = perfdata(PLUGIN_LINE.match(nagios_line(with_metrics(report, "disk", **odd), rc)).group(3))
    assert items["probes_failed"] == (1, "") and items["probes_error"] == (1, "")
    assert {k: v for k, v in items.items() if k.startswith("disk.") and k.split(".", 1)[1] in odd} == {
        "disk.rtt_ms": (12, "ms"), "disk.age_s": (3, "s"), "disk.used_percent": (50, "%"), "disk.free_mb": (7, "MB"),
        "disk.count": (4, ""), "disk.seen_ms[eth0]": (2, "ms")}
    many = {f"m{i:02d}": i for i in range(60)}
    line = nagios_line(with_metrics(report, "disk", **many), rc)
    assert len(perfdata(PLUGIN_LINE.match(line).group(3))) == 40


def test_prometheus_writes_bare_samples_without_braces_and_only_risks_with_a_time_left(healthy_report):
    rc, report = healthy_report
    report["risks"] = [{"code": "tls.expiring_soon", "subject": "primary", "hours_left": 71.5},
                       {"code": "disk.filling", "subject": "/var", "hours_left": None}]
    lines = prometheus_text(report, rc).splitlines()
    assert f"posdiag_exit_code {rc}" in lines and "posdiag_verdict{verdict=\"healthy\"} 1" in lines
    assert [line for line in lines if line.startswith("posdiag_risk_hours_left")] == [
        'posdiag_risk_hours_left{risk="tls.expiring_soon",subject="primary"} 71.5']


def test_a_single_piece_of_evidence_is_quoted_without_a_count_of_more(full_disk_report):
    rc, report = full_disk_report
    report["diagnosis"]["causes"][0]["evidence"] = ["disk: the only sign"]
    text = PLUGIN_LINE.match(nagios_line(report, rc)).group(2)
    assert text.endswith(" - disk: the only sign"), text


def test_the_report_keeps_its_duration_to_the_millisecond(full_disk_report):
    _, report = full_disk_report
    assert isinstance(report["duration_s"], float) and report["duration_s"] == round(report["duration_s"], 3)
    assert len(repr(report["duration_s"]).partition(".")[2]) <= 3


def test_the_phone_line_reads_out_the_short_id_and_the_hour_and_minute(full_disk_report):
    from posdiag.agent.history import SHORT_ID
    from posdiag.agent.report import phone_line
    from posdiag.core import i18n

    _, report = full_disk_report
    report["started_at"] = "2026-11-30T10:15:02Z"
    en = i18n.translator("en")
    line = phone_line(report, t=en)
    assert line.endswith(f" · report {report['report_id'][:SHORT_ID]} · 10:15 UTC"), line
    assert phone_line(report, "given12", en).endswith(" · report given12 · 10:15 UTC")


@pytest.mark.parametrize(("fault", "risky", "says_risk"), [(False, True, True), (True, True, False),
                                                             (False, False, False)])
def test_the_phone_line_reads_out_a_risk_only_when_no_fault_is_found(full_disk_report, healthy_report, fault, risky,
                                                                      says_risk):
    from posdiag.agent.report import phone_line
    from posdiag.core import i18n

    _, report = full_disk_report if fault else healthy_report
    report["risks"] = [{"title": "The certificate expires soon", "code": "tls.expiring_soon", "hours_left": 30.0,
                        "probe": "network.tls", "message": "m"}] if risky else []
    line = phone_line(report, t=i18n.translator("en"))
    assert ("1 risk ahead: The certificate expires soon, in 30.0 h" in line) is says_risk, line
    assert (report["diagnosis"]["causes"][0]["title"] in line) is not says_risk, line


@pytest.mark.parametrize(("certainty", "present"), [(0.5, True), (0.49, False), (1.0, True), (None, False)])
def test_a_cause_is_a_fault_present_from_a_certainty_of_one_half(certainty, present):
    from posdiag.agent.report import present_faults

    cause = {"id": "disk.full", "confidence": 0.9} | ({} if certainty is None else {"certainty": certainty})
    assert present_faults([cause]) == ([cause] if present else [])
    assert present_faults([{"id": "none", "confidence": 1.0, "certainty": 1.0}]) == []


@pytest.mark.parametrize(("width", "lines"), [(80, 1), (81, 2)])
def test_a_cause_heading_breaks_before_its_bracket_only_when_wider_than_the_screen(width, lines):
    from posdiag.agent.report import _bracket_apart

    bracket = "  [disk.full, confidence 97%]"
    heading = "T" * (width - len(bracket)) + bracket
    assert _bracket_apart(heading) == ([heading] if lines == 1 else [heading[:-len(bracket)], bracket])
    no_bracket = "word " * 20
    assert _bracket_apart(no_bracket) == [no_bracket]  # nothing to break before: kept whole


def test_probe_lines_align_name_status_and_milliseconds_and_wrap_the_summary_under_itself():
    from posdiag.agent.report import _probe_lines
    from posdiag.core import i18n

    probes = [{"name": "disk", "status": "ok", "duration_s": 0.012, "summary": "plenty of room"},
              {"name": "network.dns", "status": "fail", "duration_s": 1.5, "summary": "word " * 16}]
    assert _probe_lines(probes, i18n.translator("en")) == [
        "  disk         ok        12 ms  plenty of room",
        "  network.dns  FAIL    1500 ms  word word word word word word word word word",
        "                                word word word word word word word"]  # 48 cells left of 80
    long_name = [{"name": "n" * 60, "status": "ok", "duration_s": 0.0, "summary": "word " * 6}]
    lines = _probe_lines(long_name, i18n.translator("en"))  # no room left: the summary still gets 20 cells a line
    assert [line.strip() for line in lines] == ["n" * 60 + "  ok       0 ms  word word word word", "word word"]


UNCHECKED_EN = "no terminal-side fault found (95% sure); not checked: network, card reader"


@pytest.mark.parametrize("lang", [None, "zh_CN"])
def test_the_plugin_text_of_a_healthy_terminal_names_what_was_not_checked_in_the_reports_language(healthy_report, lang):
    """A report of an older agent (no "lang") is English; a Chinese one says it in Chinese."""
    from posdiag.core import i18n

    rc, report = healthy_report
    report["lang"] = lang
    report["diagnosis"]["causes"][0]["confidence"] = 0.95
    report["diagnosis"]["not_checked"] = [{"area": "network", "reason": "r", "probes": []},
                                          {"area": "reader", "reason": "r", "probes": []}]
    said = PLUGIN_LINE.match(nagios_line(report, rc)).group(2)
    if lang is None:
        assert said == UNCHECKED_EN
    else:
        zh = i18n.translator("zh_CN")
        areas = ", ".join([zh.tr("network"), zh.tr("card reader")])
        assert said == (zh.tr("no terminal-side fault found ({confidence} sure)", confidence="95%")
                        + zh.tr("; not checked: {areas}", areas=areas)) != UNCHECKED_EN


def test_the_report_text_lists_the_alternatives_what_was_not_checked_a_re_check_and_the_language_it_was_written_in(
        full_disk_report):
    from posdiag.agent.report import render_text
    from posdiag.core import i18n

    _, report = full_disk_report
    en = i18n.translator("en")
    top = report["diagnosis"]["causes"][0]
    report["diagnosis"]["causes"] = [top, {**top, "id": "memory.exhausted", "title": "Memory ran out", "confidence": 0.4,
                                           "certainty": 0.1}]
    report["diagnosis"]["not_checked"] = [{"area": "reader", "reason": "no reader configured", "probes": []}]
    report["only"] = {"asked": ["disk"], "prerequisites": []}
    lines = render_text(report, t=en).splitlines()
    assert "Other possible causes:" in lines and "  - Memory ran out  [memory.exhausted, 40%, certainty 10%]" in lines
    assert "  - card reader — no reader configured" in lines and "Re-check of disk" in lines
    assert not any(line.startswith("Findings and evidence are in") for line in lines)  # written in the reader's
    assert any(line.startswith("Most likely cause: ") for line in lines)  # one fault: no "1 fault found" list
    assert not any(line.startswith(("1 fault found", "Fault 1 of")) for line in lines)
    report["only"]["prerequisites"] = ["memory"]
    report["lang"] = "zh_CN"
    lines = render_text(report, t=en).splitlines()
    assert "Re-check of disk, with what it needs: memory" in lines
    assert lines[-1].startswith("Findings and evidence are in ") and lines[-1].endswith(", as the terminal wrote them.")


def test_prometheus_carries_only_numeric_metrics_and_a_status_per_probe(healthy_report):
    rc, report = healthy_report
    text = prometheus_text(with_metrics(report, "system", rtt_ms=12, ok=True, name="x", ratio=0.25), rc)
    metrics = [line for line in text.splitlines() if line.startswith('posdiag_probe_metric{probe="system"')]
    assert metrics == ['posdiag_probe_metric{probe="system",metric="rtt_ms"} 12',
                       'posdiag_probe_metric{probe="system",metric="ratio"} 0.25']
    status = [line for line in text.splitlines() if line.startswith('posdiag_probe_status{probe="system"')]
    assert status == [f'posdiag_probe_status{{probe="system",status="{s}"}} {int(s == "ok")}'
                      for s in ("ok", "warn", "fail", "error", "skipped")]
