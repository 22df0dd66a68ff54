"""Risks ahead: seen before they fail, never blamed as a cause. A loopback TLS server whose certificate
expires in three days, a client certificate about to expire, a tmpfs that fills at a steady rate
across real daemon sweeps, POS memory growth and a drifting clock measured against a real NTP peer."""

from __future__ import annotations

import datetime
import json
import re
import threading
import time
from pathlib import Path

import jsonschema
import pytest
import trustme
from labs.commands import REPO, diagnose_json, run_cli, run_posdiag
from labs.daemonlab import DaemonProcess
from labs.helpers import codes_of, top_cause, unwrapped, wait_for
from labs.history import past_report, stored
from labs.tlsserver import LoopbackTlsServer
from posdiag.agent.report import render_text
from posdiag.core import settings as cfg
from posdiag.core.timefmt import utc_iso
from posdiag.probes.base import PastSweep, ProbeContext, ProbeResult, Status
from posdiag.probes.trends import TrendsProbe

SCHEMA = json.loads((REPO / "config" / "report.schema.json").read_text(encoding="utf-8"))
DAY = datetime.timedelta(days=1)
NETWORK_ONLY = ("--only", "network.link,network.tcp,network.tls")




@pytest.fixture
def ca(tmp_path):
    authority = trustme.CA()
    authority.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    return authority


@pytest.fixture
def acquirer(ca, tmp_path, config_file):
    """Factory: a loopback TLS payment host whose certificate expires ``days`` from now, and its config."""
    servers: list[LoopbackTlsServer] = []

    def make(days: float, **host) -> Path:
        now = datetime.datetime.now(datetime.timezone.utc)
        server = LoopbackTlsServer(ca.issue_cert("pay.test", not_before=now - DAY, not_after=now + days * DAY))
        servers.append(server)
        return config_file(payment_hosts=[{"name": "primary", "host": "127.0.0.1", "port": server.port, "tls": True,
                                           "server_name": "pay.test", "ca_file": str(tmp_path / "ca.pem"), **host}])

    yield make
    for server in servers:
        server.close()


def test_a_certificate_expiring_in_three_days_is_a_risk_not_a_cause(acquirer):
    rc, report = diagnose_json(acquirer(3), *NETWORK_ONLY)
    assert rc == 1 and report["diagnosis"]["verdict"] == "degraded"
    assert top_cause(report) == "none"  # no cause blamed: every payment still goes through
    [risk] = report["risks"]
    assert risk["code"] == "tls.expiring_soon" and risk["subject"] == "primary"
    assert 70 < risk["hours_left"] <= 72 and risk["rate"] is None
    assert risk["due_at"] > utc_iso(time.time() + 70 * 3600) and risk["remediation"]
    jsonschema.validate(report, SCHEMA)


def test_a_certificate_further_out_than_the_warning_is_no_risk(acquirer):
    rc, report = diagnose_json(acquirer(30), *NETWORK_ONLY)
    assert rc == 0 and report["risks"] == []


def test_the_risk_is_a_nagios_warning_and_has_its_own_heading_in_both_languages(acquirer):
    config = acquirer(3)
    nagios = run_posdiag("diagnose", "--format", "nagios", *NETWORK_ONLY, "--config", str(config))
    assert nagios.returncode == 1 and nagios.stdout.startswith("POSDIAG WARNING - ")
    assert re.search(r"1 risk ahead: The payment host.s certificate expires soon, in (2\.9|3\.0) days \|", nagios.stdout)
    english = run_posdiag("diagnose", *NETWORK_ONLY, "--config", str(config)).stdout
    assert "Risks ahead (not a cause of a 2824 yet" in english
    assert re.search(r"\[tls\.expiring_soon, in (2\.9|3\.0) days\]", english)
    chinese = run_posdiag("--lang", "zh_CN", "diagnose", *NETWORK_ONLY, "--config", str(config)).stdout
    assert "潜在风险" in chinese and "支付主机的证书即将过期" in chinese and "天后" in chinese


def test_the_phone_line_of_a_terminal_with_only_a_risk_reads_out_the_risk(acquirer):
    """No fault, but not healthy either: the line read to the help desk says why, not "no fault found"."""
    english = run_posdiag("diagnose", *NETWORK_ONLY, "--config", str(acquirer(3))).stdout
    first = " ".join(english.split("\n\n", 1)[0].split())  # the phone line, wrapped to 80 columns
    assert re.fullmatch(r"DEGRADED: 1 risk ahead: The payment host.s certificate expires soon, in (2\.9|3\.0) days "
                        r"· report [0-9a-f]{8} · \d\d:\d\d UTC", first), first


def test_the_terminal_s_client_certificate_expiring_is_a_risk(acquirer, ca, tmp_path):
    now = datetime.datetime.now(datetime.timezone.utc)
    client = ca.issue_cert("lane-03.store-042.test", not_before=now - DAY, not_after=now + 5 * DAY)
    client.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "client.pem"))
    rc, report = diagnose_json(acquirer(300, client_cert=str(tmp_path / "client.pem")), *NETWORK_ONLY)
    assert [r["code"] for r in report["risks"]] == ["tls.client_cert_expiring"]
    assert 4 * 24 < report["risks"][0]["hours_left"] <= 5 * 24 and rc == 1


def test_an_expired_client_certificate_is_a_tls_fault(acquirer, ca, tmp_path):
    now = datetime.datetime.now(datetime.timezone.utc)
    client = ca.issue_cert("lane-03.store-042.test", not_before=now - 30 * DAY, not_after=now - DAY)
    client.cert_chain_pems[0].write_to_path(str(tmp_path / "client.pem"))
    client.private_key_pem.write_to_path(str(tmp_path / "client.key"))
    rc, report = diagnose_json(acquirer(300, client_cert=str(tmp_path / "client.pem"),
                                        client_key=str(tmp_path / "client.key")), *NETWORK_ONLY)
    assert "tls.client_cert_expired" in codes_of(report, "network.tls")
    assert rc == 2 and top_cause(report) == "tls.failure"


def client_certificate_checked(config_file, path: str):
    """What the TLS probe observes of the terminal's own certificate at ``path`` (the file is read as the
    probe reads it; no connection is made)."""
    import dataclasses

    from posdiag.probes.base import Observation
    from posdiag.probes.network._common import targets
    from posdiag.probes.network.tls import TlsProbe

    settings = cfg.load(str(config_file(payment_hosts=[{"name": "primary", "host": "127.0.0.1", "port": 443}])))
    target = targets(settings)[0]
    obs = Observation()
    TlsProbe(settings).client_certificate(obs, dataclasses.replace(target, host=dataclasses.replace(target.host,
                                                                                                       client_cert=path)))
    return obs


@pytest.mark.parametrize(("days", "code", "severity"), [(-0.5, "tls.client_cert_expired", "fail"),
                                                        (0.5, "tls.client_cert_expiring", "warn"),
                                                        (13.5, "tls.client_cert_expiring", "warn"), (14.5, None, None)],
                         ids=["expired-half-a-day-ago", "half-a-day-left", "13.5-days-left", "14.5-days-left"])
def test_the_terminal_s_own_certificate_is_expired_from_its_end_and_a_risk_from_fourteen_days_ahead(
        ca, tmp_path, config_file, days, code, severity):
    now = datetime.datetime.now(datetime.timezone.utc)
    ends = now + datetime.timedelta(days=days)
    client = ca.issue_cert("lane-03.test", not_before=now - datetime.timedelta(days=30), not_after=ends)
    client.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "client.pem"))
    obs = client_certificate_checked(config_file, str(tmp_path / "client.pem"))
    assert [(f.code, f.severity.value) for f in obs.findings] == ([(code, severity)] if code else [])
    assert obs.metrics["client_cert_days_left[primary]"] == pytest.approx(days, abs=0.1)
    if code == "tls.client_cert_expired":
        assert obs.findings[0].data["not_after"] == ends.strftime("%Y-%m-%dT%H:%M:%SZ")
    elif code:
        assert obs.findings[0].data["hours_left"] == pytest.approx(days * 24, abs=0.1)
        assert obs.findings[0].data["due_at"] == ends.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_pem_file_expires_with_its_first_certificate_and_one_without_a_readable_certificate_never_says(ca):
    from posdiag.probes.network._x509 import not_after

    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    first = ca.issue_cert("lane-03.test", not_before=now - DAY, not_after=now + 3 * DAY).cert_chain_pems[0].bytes().decode()
    second = ca.issue_cert("lane-04.test", not_before=now - DAY, not_after=now + 9 * DAY).cert_chain_pems[0].bytes().decode()
    assert not_after("a key or a comment first\n" + first + second) == (now + 3 * DAY).timestamp()
    assert not_after("no certificate") is None
    body = first.splitlines()[3]
    assert not_after(first.replace(body, "A" * len(body))) is None  # PEM armour around bytes that are no certificate


@pytest.mark.parametrize("content", [None, "no certificate here\n"], ids=["missing-file", "no-certificate-in-it"])
def test_a_client_certificate_that_cannot_be_read_is_unusable_and_says_why(tmp_path, config_file, content):
    path = tmp_path / "client.pem"
    if content is not None:
        path.write_text(content)
    obs = client_certificate_checked(config_file, str(path))
    [finding] = obs.findings
    assert (finding.code, finding.severity.value, finding.data["path"]) == ("tls.client_cert_unusable", "fail", str(path))
    why = "No such file or directory" if content is None else "no certificate in it"
    assert finding.message == f"primary: the client certificate {path} cannot be read ({why})"


@pytest.mark.root
def test_a_filesystem_filling_at_a_steady_rate_across_daemon_sweeps_is_a_risk(config_file, tmpfs, tmp_path):
    fs = tmpfs("96m")
    config = config_file(disk={"paths": [str(fs)], "min_free_mb": 1, "full_warn_hours": 48})
    stop = threading.Event()

    def fill() -> None:  # 1 MiB every 0.1 s: a runaway log
        for i in range(80):
            if stop.wait(0.1):
                return
            (fs / f"spool-{i}").write_bytes(b"\0" * 1024 * 1024)

    daemon = DaemonProcess(config, tmp_path / "state")
    filler = threading.Thread(target=fill, daemon=True)
    try:
        assert wait_for(lambda: len(daemon.reports()) >= 1, 30), daemon.output()
        filler.start()
        for _ in range(4):
            time.sleep(0.6)
            rc, out, err = daemon.cli("trigger", "--json")
            assert rc in (0, 1, 2), err
        status_rc, status, _ = daemon.cli("status", "--json")
    finally:
        stop.set()
        daemon.stop()
    report = json.loads(out)
    risk = next(r for r in report["risks"] if r["code"] == "trend.disk_filling")
    assert risk["subject"] == str(fs) and risk["rate_unit"] == "MB/h"
    assert 10_000 < risk["rate"] < 80_000 and risk["hours_left"] < 1  # ~36 000 MB/h into ~90 MB
    assert json.loads(status)["last"]["risks"] >= 1


def test_pos_memory_growth_that_exhausts_memory_within_a_day_is_a_risk(config_file, tmp_path):
    now = time.time()
    stored(tmp_path, [past_report(now - 3000 + i * 600, {"memory": {"pos_rss_mb": 300 + 1000 * i}}) for i in range(5)])
    rc, report = diagnose_json(config_file(), "--only", "memory,trends")
    risk = next(r for r in report["risks"] if r["code"] == "trend.memory_exhaustion")
    assert risk["rate"] == pytest.approx(6000, rel=0.01) and risk["rate_unit"] == "MB/h"
    assert 0 < risk["hours_left"] <= 24 and "trend.pos_rss_growing" in codes_of(report, "trends")


@pytest.mark.parametrize(("apart_s", "risk"), [(600, True), (10, False)], ids=["sweeps-10-min-apart", "sweeps-10-s-apart"])
def test_a_rate_is_forecast_no_further_than_72_times_the_span_it_was_measured_over(config_file, tmp_path, apart_s, risk):
    """The same memory growth, due in about two hours: measured over 40 minutes it is a risk; measured
    over 40 seconds (a technician's runs in a row) it says nothing about two hours ahead."""
    import psutil

    rate = psutil.virtual_memory().available / 2**20 / 2  # MB/h: what is available is used up in ~2 h
    now = time.time()
    stored(tmp_path, [past_report(now - (5 - i) * apart_s, {"memory": {"pos_rss_mb": 300 + rate * i * apart_s / 3600}})
                      for i in range(5)])
    rc, report = diagnose_json(config_file(), "--only", "memory,trends")
    forecast = [r for r in report["risks"] if r["code"] == "trend.memory_exhaustion"]
    assert bool(forecast) is risk, report["risks"]
    if risk:
        assert 1 < forecast[0]["hours_left"] < 3


@pytest.mark.parametrize(("apart_s", "risk"), [(600, True), (10, False)], ids=["sweeps-10-min-apart", "sweeps-10-s-apart"])
def test_a_disk_filling_is_forecast_only_within_the_reach_of_its_measured_span(config_file, tmp_path, apart_s, risk):
    """Free space falling so that the disk is full in about twenty hours, measured over 40 minutes or 40 seconds."""
    import shutil

    path = tmp_path / "spool"
    path.mkdir()
    free_mb = shutil.disk_usage(path).free / 2**20
    rate = free_mb / 20  # MB/h
    now = time.time()
    key = f"free_mb[{path}]"
    stored(tmp_path, [past_report(now - (5 - i) * apart_s, {"disk": {key: free_mb + rate * (5 - i) * apart_s / 3600}})
                      for i in range(5)])
    rc, report = diagnose_json(config_file(disk={"paths": [str(path)], "min_free_mb": 0, "write_test": False,
                                                 "smart": False}), "--only", "disk,trends")
    forecast = [r for r in report["risks"] if r["code"] == "trend.disk_filling"]
    assert bool(forecast) is risk, report["risks"]
    if risk:
        assert 15 < forecast[0]["hours_left"] < 25


def test_a_clock_drifting_towards_its_tolerance_is_a_risk(config_file, tmp_path, ntp_server):
    now = time.time()
    stored(tmp_path, [past_report(now - 3000 + i * 600, {"clock": {"offset_s": 5.0 + i}}) for i in range(5)])
    server = ntp_server(offset_s=10.0)  # now: 10 s behind, 1 s more every 10 minutes
    rc, report = diagnose_json(config_file(clock={"ntp_server": server.address, "max_offset_s": 30}),
                               "--only", "clock,trends")
    [risk] = report["risks"]
    assert risk["code"] == "trend.clock_drifting" and risk["rate_unit"] == "s/day"
    assert risk["rate"] == pytest.approx(144, rel=0.1) and 2.5 < risk["hours_left"] < 4.5
    assert rc == 1 and top_cause(report) == "none"


def test_a_steady_clock_is_no_risk(config_file, tmp_path, ntp_server):
    now = time.time()
    stored(tmp_path, [past_report(now - 3000 + i * 600, {"clock": {"offset_s": 0.01 * (i % 2)}}) for i in range(5)])
    server = ntp_server(offset_s=0.0)
    rc, report = diagnose_json(config_file(clock={"ntp_server": server.address}), "--only", "clock,trends")
    assert report["risks"] == [] and rc == 0


def test_a_report_of_an_older_agent_without_risks_still_reads(config_file):
    rc, out, _ = run_cli("diagnose", "--json", "--only", "memory", "--config", str(config_file()))
    report = json.loads(out)
    del report["risks"]
    jsonschema.validate(report, SCHEMA)
    assert "Risks ahead" not in render_text(report) and "Verdict:" in render_text(report)


def leaking_for_20_hours(tmp_path: Path) -> None:
    """Stored sweeps of a POS process growing so steadily that what is available is used up in ~20 h."""
    import psutil

    rate = psutil.virtual_memory().available / 2**20 / 20  # MB/h
    now = time.time()
    stored(tmp_path, [past_report(now - (5 - i) * 600, {"memory": {"pos_rss_mb": 300 + rate * i * 600 / 3600}})
                      for i in range(5)])


@pytest.mark.parametrize(("lang", "risk_words", "blamed_words"), [
    ("en", "A steady memory leak in the POS application will exhaust", "out of memory"),
    ("zh_CN", "POS 应用持续内存泄漏，将耗尽可用内存", "内存溢出")], ids=["en", "zh_CN"])
def test_a_leak_with_memory_still_plenty_is_a_risk_and_blames_no_cause(config_file, tmp_path, lang, risk_words,
                                                                      blamed_words):
    leaking_for_20_hours(tmp_path)
    config = config_file(terminal={"language": lang})
    rc, report = diagnose_json(config, "--only", "memory,trends")
    assert rc == 1 and top_cause(report) == "none", report["diagnosis"]["causes"]
    assert "memory.exhausted" not in {c["id"] for c in report["diagnosis"]["causes"]}
    [risk] = report["risks"]
    assert risk["code"] == "trend.memory_exhaustion" and risk_words in risk["title"]
    text_rc, text, _ = run_cli("diagnose", "--config", str(config), "--only", "memory,trends")
    first_line = unwrapped(text).split("·")[0]  # the verdict line a technician reads out on the phone
    assert text_rc == 1 and risk_words.replace(" ", "") in first_line and blamed_words.replace(" ", "") not in first_line


def test_a_leak_while_memory_is_short_now_is_the_present_shortage(config_file, tmp_path):
    leaking_for_20_hours(tmp_path)
    rc, report = diagnose_json(config_file(memory={"min_available_mb": 1_000_000}), "--only", "memory,trends")
    [cause] = [c for c in report["diagnosis"]["causes"] if c["id"] == "memory.exhausted"]
    assert top_cause(report) == "memory.exhausted" and rc == 2
    assert any("a memory leak in the POS process" in e for e in cause["evidence"])


# --- forecasts at their edges: stored sweeps handed straight to the trends probe (pure arithmetic) ---
# Four sweeps 1024 s apart and whole steps between them make every slope a power of two, so that a
# forecast lands exactly on its limit and both sides of each edge can be tested.

T0 = 1_800_000_000.0


def sweeps_of(probe: str, metric: str, values: list[float], apart_s: float = 1024.0) -> list[PastSweep]:
    return [PastSweep(T0 + i * apart_s, {probe: ("ok", {metric: value})}) for i, value in enumerate(values)]


def trends_of(config_file, sweeps: list[PastSweep], *now: ProbeResult, **sections) -> ProbeResult:
    """The trends probe's result on ``sweeps`` as the stored history and ``now`` as this sweep's results."""
    context = ProbeContext(results={r.name: r for r in now}, history=lambda n: sweeps[-n:] if n > 0 else [])
    return TrendsProbe(cfg.load(str(config_file(**sections))), context).run()


def finding_codes(result: ProbeResult) -> list[str]:
    return [f.code for f in result.findings]


@pytest.mark.parametrize("sign", [1, -1], ids=["falling-behind", "running-ahead"])
@pytest.mark.parametrize(("limit", "risk"), [(172.75, True), (173.0, False)], ids=["in-48-h", "in-48.07-h"])
def test_a_clock_drift_is_a_risk_when_beyond_its_tolerance_within_drift_warn_hours(config_file, sign, limit, risk):
    """1 s more off every 1024 s, 4 s off now: beyond a 172.75 s tolerance in exactly 48 h (the default
    drift_warn_hours), whichever way the clock drifts."""
    result = trends_of(config_file, sweeps_of("clock", "offset_s", [sign * 1.0, sign * 2.0, sign * 3.0, sign * 4.0]),
                       clock={"max_offset_s": limit})
    assert ("trend.clock_drifting" in finding_codes(result)) is risk, result
    if risk:
        [finding] = result.findings
        assert finding.data["hours_left"] == 48 and finding.data["rate"] == sign * 84.375
        assert finding.data["offset_s"] == sign * 4.0 and finding.data["rate_unit"] == "s/day"


@pytest.mark.parametrize(("limit", "risk"), [(220.0, True), (221.0, False)], ids=["at-72-spans", "beyond-72-spans"])
def test_a_clock_drift_is_forecast_no_further_than_72_times_its_span(config_file, limit, risk):
    """Measured over 3072 s, a drift is forecast 61.44 h ahead at most (72 × 3072 s), however long the
    warning window."""
    result = trends_of(config_file, sweeps_of("clock", "offset_s", [1.0, 2.0, 3.0, 4.0]),
                       clock={"max_offset_s": limit, "drift_warn_hours": 100})
    assert ("trend.clock_drifting" in finding_codes(result)) is risk, result


def test_a_clock_offset_that_jumps_about_is_no_drift(config_file):
    """A rising offset, but no straight line (R² 0.36): nothing to extrapolate."""
    result = trends_of(config_file, sweeps_of("clock", "offset_s", [1.0, 4.0, 2.0, 4.0]), clock={"max_offset_s": 10})
    assert result.status is Status.OK and result.findings == (), result


@pytest.mark.parametrize(("free_mb", "risk"), [([171.75, 170.75, 169.75, 168.75], True),
                                               ([172.75, 171.75, 170.75, 169.75], False),
                                               ([168.75, 169.75, 170.75, 171.75], False)],
                         ids=["full-in-48-h", "full-in-48.3-h", "freed"])
def test_a_disk_is_a_risk_when_full_within_full_warn_hours(config_file, tmp_path, free_mb, risk):
    """1 MB less free every 1024 s (3.52 MB/h): with 168.75 MB left that is full in exactly 48 h (the
    default full_warn_hours); space being freed is no risk."""
    key = f"free_mb[{tmp_path}]"
    result = trends_of(config_file, sweeps_of("disk", key, free_mb), disk={"paths": [str(tmp_path)]})
    assert ("trend.disk_filling" in finding_codes(result)) is risk, result
    if free_mb[0] > free_mb[-1]:
        assert result.metrics[f"fill_mb_per_hour[{tmp_path}]"] == 3.52  # MB/h, to two decimals
    if risk:
        [finding] = result.findings
        assert finding.data["hours_left"] == 48 and finding.data["rate"] == 3.516 and finding.data["sweeps"] == 4


def memory_now(available_mb: float) -> ProbeResult:
    return ProbeResult("memory", Status.OK, 0.0, "", metrics={"available_mb": available_mb})


@pytest.mark.parametrize(("available_mb", "risk"), [(84.375, True), (85.0, False)], ids=["in-24-h", "in-24.2-h"])
def test_pos_memory_growth_is_a_risk_when_it_exhausts_memory_within_exhaust_warn_hours(config_file, available_mb, risk):
    """The POS grows 1 MB every 1024 s (3.52 MB/h): 84.375 MB available last exactly 24 h (the default
    exhaust_warn_hours)."""
    result = trends_of(config_file, sweeps_of("memory", "pos_rss_mb", [100.0, 101.0, 102.0, 103.0]),
                       memory_now(available_mb))
    assert ("trend.memory_exhaustion" in finding_codes(result)) is risk, result
    assert result.metrics["pos_rss_mb_per_hour"] == 3.52


def test_shrinking_pos_memory_exhausts_nothing(config_file):
    result = trends_of(config_file, sweeps_of("memory", "pos_rss_mb", [103.0, 102.0, 101.0, 100.0]), memory_now(1.0))
    assert result.status is Status.OK and result.metrics["pos_rss_mb_per_hour"] == -3.52, result


@pytest.mark.parametrize(("rss_mb", "leak"), [([25.0, 30.0, 35.0, 40.0], True), ([25.0, 29.9, 34.8, 39.7], False),
                                              ([100.0, 106.123, 113.0, 120.0], True), ([100.0, 106.123, 113.0, 119.9], False)],
                         ids=["5-mb-an-hour", "4.9-mb-an-hour", "a-fifth-more", "just-under-a-fifth-more"])
def test_a_leak_starts_at_exactly_five_mb_an_hour_and_a_fifth_more_memory(config_file, rss_mb, leak):
    """Sweeps an hour apart: 5 MB/h with 60 % growth, and 20 % growth at over 5 MB/h, are each just a leak."""
    result = trends_of(config_file, sweeps_of("memory", "pos_rss_mb", rss_mb, apart_s=3600.0))
    assert ("trend.pos_rss_growing" in finding_codes(result)) is leak, result
    if leak:  # the fit as the finding carries it: MB/h to two decimals, R² to three
        [finding] = result.findings
        assert finding.data["mb_per_hour"] == round(finding.data["mb_per_hour"], 2) >= 5
        assert finding.data["r2"] == round(finding.data["r2"], 3) >= 0.8 and finding.data["sweeps"] == 4


@pytest.mark.parametrize(("hours_left", "when"), [(None, "soon"), (0.04, "in 0.0 h"), (47.9, "in 47.9 h"),
                                                  (48.0, "in 2.0 days"), (240.0, "in 10.0 days")])
def test_a_risk_is_said_with_its_numbered_steps_and_when_in_hours_under_two_days_else_days(hours_left, when):
    from posdiag.agent.report import risk_lines
    from posdiag.core import i18n

    risk = {"title": "The payment host's certificate expires soon", "code": "tls.expiring_soon",
            "probe": "network.tls", "message": "expires 2026-12-09", "hours_left": hours_left,
            "remediation": ["Renew the certificate.", "Install it on the payment host."]}
    assert risk_lines([risk], i18n.translator("en")) == [
        "", "Risks ahead (not a cause of a 2824 yet; act before they fail):",
        f"  - The payment host's certificate expires soon  [tls.expiring_soon, {when}]",
        "    network.tls: expires 2026-12-09", "    1. Renew the certificate.", "    2. Install it on the payment host."]
    assert risk_lines([{**risk, "remediation": None}], i18n.translator("en"))[-1] == "    network.tls: expires 2026-12-09"
    assert risk_lines([], i18n.translator("en")) == []


def test_risks_are_listed_soonest_first_those_without_a_time_last_and_an_info_finding_is_none():
    from posdiag.agent.risks import RiskInfo, found
    from posdiag.probes.base import Finding, ProbeResult, Severity, Status

    table = {code: RiskInfo(code, f"title of {code}", ("step",)) for code in ("tls.expiring_soon", "disk.filling")}
    findings = (Finding("disk.filling", Severity.WARN, "filling", {"hours_left": 30, "subject": "/var"}),
                Finding("tls.expiring_soon", Severity.WARN, "expires", {"hours_left": True}),  # no number: no time
                Finding("tls.expiring_soon", Severity.WARN, "expires", {"hours_left": 2.5}),
                Finding("disk.filling", Severity.INFO, "steady", {"hours_left": 1}),  # said, not a risk
                Finding("disk.full", Severity.FAIL, "full", {"hours_left": 0}))  # a fault, not a risk
    risks = found([ProbeResult("disk", Status.WARN, 0.01, "s", findings, {})], table)
    assert [(r["code"], r["hours_left"]) for r in risks] == [("tls.expiring_soon", 2.5), ("disk.filling", 30.0),
                                                             ("tls.expiring_soon", None)]
    assert risks[1]["subject"] == "/var" and risks[0]["remediation"] == ["step"] and risks[2]["subject"] == ""


@pytest.mark.parametrize(("entry", "problem"), [
    ({"title": "Expires", "remediation": ["Renew it."]}, None),
    ("just a title", "risks.tls.expiring_soon: expected a table with title and remediation"),
    ({"remediation": ["Renew it."]}, "risks.tls.expiring_soon: expected a title and at least one remediation step"),
    ({"title": "Expires", "remediation": "Renew it."}, "expected a title and at least one remediation step"),
    ({"title": "Expires", "remediation": []}, "expected a title and at least one remediation step"),
    ({"title": "Expires"}, "expected a title and at least one remediation step"),
])
def test_a_risk_of_the_knowledge_base_needs_a_table_with_a_title_and_a_step(entry, problem):
    from posdiag.agent.risks import RiskInfo, load

    problems: list[str] = []
    risks = load({"tls.expiring_soon": entry}, {}, "en", problems)
    if problem is None:
        assert problems == [] and risks == {"tls.expiring_soon": RiskInfo("tls.expiring_soon", "Expires", ("Renew it.",))}
    else:
        assert risks == {} and len(problems) == 1 and problem in problems[0], problems


def test_the_risks_of_the_knowledge_base_are_a_table_and_none_is_weighed_as_evidence():
    from posdiag.agent.risks import load

    problems: list[str] = []
    assert load([], {}, "en", problems) == {} and problems == ['risks: expected a table of [risks."finding code"] tables']
    problems = []
    entry = {"title": "Expires", "remediation": ["Renew it."], "zh_CN": {"title": "即将过期"}}
    risks = load({"tls.expiring_soon": entry}, {"tls.expiring_soon": [("tls.expired", 1.0)]}, "zh_CN", problems)
    assert problems == ["risks.tls.expiring_soon: the code is also weighed as evidence of a cause; a risk is never a cause"]
    assert risks["tls.expiring_soon"].title == "即将过期" and risks["tls.expiring_soon"].remediation == ("Renew it.",)
