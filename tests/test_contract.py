"""The probe contract: declared finding codes and the knowledge base agree, both ways.

Each probe declares the codes it may emit (``Probe.findings``); ``config/causes.toml`` weighs
codes, or lists them as risks ahead. A code weighed or listed there that no probe emits never
matches (a typo silently disables evidence); a warn/fail code no cause weighs and no risk lists is a
fault nobody would ever be blamed for. At run
time, ``tests/conftest.py`` fails the whole run when any probe emits a code it did not declare.
``POSDIAG_TEST_CAUSES`` points the check at another copy of the knowledge base.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from posdiag import probes
from posdiag.agent.diagnosis import load_knowledge
from posdiag.core.paths import causes_path
from posdiag.core.settings import ConfigError, PaymentHost, ReaderSettings, Settings, TxlogSettings
from posdiag.probes.base import FRAMEWORK_FINDINGS, Severity

CAUSES = Path(os.environ.get("POSDIAG_TEST_CAUSES") or causes_path())


def declared_codes() -> dict[str, Severity]:
    declared = dict(FRAMEWORK_FINDINGS)
    for probe in probes.all_probes():
        for code, severity in probe.findings.items():
            if declared.get(code) in (None, Severity.INFO) or severity is Severity.FAIL:
                declared[code] = severity
    return declared


def contract_mismatches(causes: Path) -> list[str]:
    """Every disagreement between the probes' declarations and a knowledge base, in words."""
    kb = load_knowledge(causes)
    weighed = set(kb.evidence) | set(kb.risks)
    declared = declared_codes()
    problems = [f"{causes.name} weighs {code!r}, which no probe declares" for code in sorted(weighed - set(declared))]
    problems += [f"probes may emit {code!r} ({severity.value}), which no cause in {causes.name} weighs"
                 for code, severity in sorted(declared.items())
                 if severity is not Severity.INFO and code not in weighed]
    return problems


def test_every_probe_declares_its_findings():
    undeclared = [p.name for p in probes.all_probes() if not p.findings]
    assert undeclared == []


def test_finding_codes_are_area_dot_what():
    for code in declared_codes():
        area, _, what = code.partition(".")
        assert area and what and code == code.lower(), code


def test_knowledge_base_and_probe_declarations_agree():
    assert contract_mismatches(CAUSES) == []


def test_a_misspelt_code_in_the_knowledge_base_breaks_the_contract(tmp_path: Path):
    broken = tmp_path / "causes.toml"
    text = causes_path().read_text(encoding="utf-8")
    broken.write_text(text.replace('"disk.space_low" = 0.9', '"disk.space_lo" = 0.9'), encoding="utf-8")
    problems = contract_mismatches(broken)
    assert "causes.toml weighs 'disk.space_lo', which no probe declares" in problems
    assert "probes may emit 'disk.space_low' (fail), which no cause in causes.toml weighs" in problems


@pytest.mark.parametrize("probe", probes.all_probes(), ids=lambda p: p.name)
def test_probe_catalogue_names_match_the_classes(probe):
    assert probes.CATALOGUE[probe.name].endswith(":" + probe.__name__)


def test_a_risk_weighed_as_evidence_is_refused(tmp_path: Path):
    broken = tmp_path / "causes.toml"
    text = causes_path().read_text(encoding="utf-8")
    broken.write_text(text.replace('"tls.reset" = 0.3\n', '"tls.reset" = 0.3\n"tls.expiring_soon" = 0.3\n'),
                      encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_knowledge(broken)
    assert any("risks.tls.expiring_soon" in p and "never a cause" in p for p in refused.value.problems)


#: settings under which each gated probe has something, or nothing, to look at
GATE_CASES = {
    "nothing configured": {},
    "a payment host": {"payment_hosts": [PaymentHost(host="127.0.0.1")]},
    "a USB reader": {"reader": ReaderSettings(kind="usb", usb="0b00:0084")},
    "a serial reader": {"reader": ReaderSettings(kind="serial", port="/dev/ttyS0")},
    "a POS log": {"txlog": TxlogSettings(path="/var/log/pos.log")},
}


@pytest.mark.parametrize("case", GATE_CASES)
@pytest.mark.parametrize("name", probes.CATALOGUE)
def test_a_probe_left_unloaded_is_skipped_exactly_as_the_probe_itself_would_be(name, case):
    """The catalogue settles a probe with nothing configured by a stand-in, without importing its
    module: what a technician reads must be what the probe itself would have said, and a probe with
    something to look at must be the real one."""
    settings = Settings(**GATE_CASES[case])
    chosen = probes.load_for(name, settings)
    real = probes.load(name)
    if case == "nothing configured":  # only the host's own probes have something to look at
        assert (chosen is real) == (name.split(".")[0] in ("memory", "disk", "system", "clock", "trends"))
    if chosen is real:
        return
    own = real(settings).not_applicable()
    assert chosen.name == name and own is not None, "the stand-in skipped a probe that would have run"
    stand_in = chosen(settings).not_applicable()
    assert (stand_in.status, stand_in.summary, stand_in.findings) == (own.status, own.summary, own.findings)


def test_a_finding_its_probe_did_not_declare_or_declared_milder_is_recorded(tmp_path: Path, monkeypatch):
    """What the suite's contract check rests on: a code the probe does not declare, or one it emits worse
    than declared, is written to the contract log; a declared one (or milder), and the framework's own, are not."""
    from posdiag.probes.base import CONTRACT_LOG_ENV, Observation, Probe, declare

    class Talkative(Probe):
        name = "test.talkative"
        findings = declare(warn=("test.declared",))

        def check(self, obs: Observation) -> None:
            obs.info("test.declared", "milder than declared")
            obs.warn("test.declared", "as declared")
            obs.info("probe.skipped", "the framework's own")
            obs.fail("test.declared", "worse than declared")
            obs.info("test.undeclared", "not declared at all")

    log = tmp_path / "contract.log"
    monkeypatch.setenv(CONTRACT_LOG_ENV, str(log))  # this test's own log: the suite's stays clean
    Talkative(Settings()).run()
    assert log.read_text().splitlines() == ["test.talkative\ttest.declared\tfail\tdeclared warn",
                                            "test.talkative\ttest.undeclared\tinfo\tdeclared nothing"]


def test_a_probe_s_summary_is_its_worst_finding_and_how_many_more_notable_ones():
    """Notes (info) are no problem; otherwise the worst finding speaks, with a count of the other warnings and faults."""
    from posdiag.probes.base import Observation, Status

    obs = Observation()
    assert (obs.default_summary(), obs.status()) == ("no problem found", Status.OK)
    obs.info("x.note", "just a note")
    assert (obs.default_summary(), obs.status()) == ("no problem found", Status.OK)
    obs.warn("x.warned", "a warning")
    assert (obs.default_summary(), obs.status()) == ("a warning", Status.WARN)
    obs.fail("x.failed", "the failure")
    obs.warn("x.warned_again", "another warning")
    assert (obs.default_summary(), obs.status()) == ("the failure (+2 more)", Status.FAIL)


def test_a_probe_result_keeps_its_duration_to_a_tenth_of_a_millisecond_and_its_metrics_to_a_thousandth():
    from posdiag.probes.base import Observation, ProbeResult, Status

    obs = Observation()
    obs.metric("took_s", 0.123456)
    obs.metric("count", 7)
    assert obs.metrics == {"took_s": 0.123, "count": 7}
    assert ProbeResult("x", Status.OK, 0.123456, "s", (), obs.metrics).to_dict()["duration_s"] == 0.1235


def test_the_kernel_log_is_read_once_per_sweep_and_its_error_is_each_asker_s(tmp_path):
    """Probes side by side read one copy of the log (per way of reading it); a log that cannot be read
    fails every asker the same way."""
    import time

    from posdiag.probes.base import ProbeContext

    log = tmp_path / "kmsg"
    log.write_text(f"4,1,{int(time.monotonic() * 1e6)},-;the first record\n")
    context = ProbeContext()
    [(_, first)] = context.kernel_log(str(log))
    log.write_text(f"4,2,{int(time.monotonic() * 1e6)};a record written after the first read\n")  # no flags field
    assert [m for _, m in context.kernel_log(str(log))] == [first] == ["the first record"]
    assert [m for _, m in context.kernel_log(str(log), since_clear=True)] == ["a record written after the first read"]
    for _ in range(2):
        with pytest.raises(FileNotFoundError):
            context.kernel_log(str(tmp_path / "none"))
