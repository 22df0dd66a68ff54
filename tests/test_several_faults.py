"""Several real faults on one till at once: a filesystem that really fills (tmpfs), an untrusted
certificate on the payment host (a TLS server in the lab's namespaces), a reader that never answers
(the emulator on a pty), a dead link. Independent faults are each certain and each told under its own
heading; faults that explain others (a dead link) stay one cause with consequences.
"""

from __future__ import annotations

import json
import re
import sys

import pytest
from labs.helpers import PAYMENT_NAME as NAME
from labs.helpers import fill_filesystem
from labs.netlab import DNS_ADDR, HOST_ADDR
from labs.reader_emulator import ReaderEmulator

pytestmark = pytest.mark.root


@pytest.fixture
def till(lab, certs, tmpfs, config_file):
    """Factory: a terminal in the lab with the faults asked for (``disk``, ``tls``, ``reader``, ``link``)."""
    emulators: list[ReaderEmulator] = []

    def make(*faults: str) -> object:
        cert, key = certs["untrusted" if "tls" in faults else "valid"]
        lab.peer(lab.host, "dns", "--bind", DNS_ADDR, "--zone", f"{NAME}={HOST_ADDR}")
        lab.peer(lab.host, "tls", "--bind", HOST_ADDR, "--port", "443", "--cert", cert, "--key", key)
        sections: dict = {"payment_hosts": [{"name": "acquirer", "host": NAME, "port": 443, "ca_file": certs["ca"]}],
                          "network": {"dns_servers": [DNS_ADDR], "timeout_s": 0.5}}
        if "disk" in faults:
            fs = tmpfs("1m")
            fill_filesystem(fs)
            sections["disk"] = {"paths": [str(fs)], "min_free_mb": 1}
        emu = ReaderEmulator("ingenico-rba", "silent" if "reader" in faults else "healthy").start()
        emulators.append(emu)
        sections["reader"] = {"kind": "serial", "port": emu.path, "protocol": "ingenico-rba", "timeout_s": 0.5,
                              "sysfs_root": "/nonexistent-sysfs"}
        if "link" in faults:
            lab.interface_down()
        return config_file(**sections)

    yield make
    for emu in emulators:
        emu.stop()


def text_of(lab, config, lang: str = "en") -> tuple[int, str]:
    run = lab.exec(lab.term, sys.executable, "-m", "posdiag.agent", "diagnose", "--lang", lang, "--config", str(config),
                   check=False)
    assert run.returncode != 3, run.stderr
    return run.returncode, run.stdout


def certainties(report: dict) -> dict[str, float]:
    return {c["id"]: c["certainty"] for c in report["diagnosis"]["causes"]}


def test_a_full_disk_an_untrusted_certificate_and_a_silent_reader_are_three_certain_faults(lab, till):
    config = till("disk", "tls", "reader")
    rc, report, _ = lab.diagnose(config)
    assert rc == 2
    sure = certainties(report)
    for cause in ("disk.full", "tls.failure", "reader.unresponsive"):
        assert sure.get(cause, 0) >= 0.8, (sure, [(p["name"], p["status"], p["summary"]) for p in report["probes"]])
    causes = report["diagnosis"]["causes"]
    assert sum(c["confidence"] for c in causes) <= 1.0 + 1e-9
    assert [c["confidence"] for c in causes] == sorted((c["confidence"] for c in causes), reverse=True)


def test_three_faults_are_each_told_under_their_own_heading_ahead_of_alternatives(lab, till):
    config = till("disk", "tls", "reader")
    rc, out = text_of(lab, config)
    assert rc == 2
    assert "3 faults found, each on its own evidence:" in out
    # a heading may wrap before its bracket at 80 columns: each is read whole, up to its closing bracket
    headings = [" ".join(h.split()) for h in re.findall(r"^Fault \d+ of \d+: [^\[]*\[[^\]]*\]", out, re.M)]
    assert [h.split(":")[0] for h in headings] == ["Fault 1 of 3", "Fault 2 of 3", "Fault 3 of 3"]
    for cause in ("disk.full", "tls.failure", "reader.unresponsive"):
        assert any(f"[{cause}, confidence " in h and ", certainty " in h for h in headings), headings
    assert out.count("What to do:") == 3
    if "Other possible causes:" in out:
        assert out.index("Other possible causes:") > out.index("Fault 3 of 3")


def test_three_faults_read_in_chinese(lab, till):
    config = till("disk", "tls", "reader")
    rc, out = text_of(lab, config, "zh_CN")
    assert "发现 3 个故障，各有各的依据：" in out
    headings = [line for line in out.splitlines() if line.startswith("故障 ")]
    assert [h.split("：")[0] for h in headings] == ["故障 1/3", "故障 2/3", "故障 3/3"]
    assert any("系统故障：POS 需要的硬盘空间已满" in h and "确定度" in h for h in headings)
    assert out.count("处理步骤：") == 3


@pytest.mark.parametrize("faults,causes", [
    (("disk", "reader"), {"disk.full", "reader.unresponsive"}),
    (("disk", "tls"), {"disk.full", "tls.failure"}),
    (("tls", "reader"), {"tls.failure", "reader.unresponsive"}),
], ids=["disk+reader", "disk+tls", "tls+reader"])
def test_two_independent_faults_are_each_certain(lab, till, faults, causes):
    rc, report, _ = lab.diagnose(till(*faults))
    sure = certainties(report)
    assert {c for c, v in sure.items() if v >= 0.8} == causes, sure
    assert report["diagnosis"]["causes"][0]["id"] in causes


def test_a_dead_link_is_one_fault_with_its_consequences_beside_an_independent_silent_reader(lab, till):
    rc, report, _ = lab.diagnose(till("link", "reader"))
    sure = certainties(report)
    assert {c for c, v in sure.items() if v >= 0.8} == {"network.link_down", "reader.unresponsive"}, sure
    assert not {"network.dns", "network.wan", "tls.failure", "host.service_down"} & set(sure)
    link = next(c for c in report["diagnosis"]["causes"] if c["id"] == "network.link_down")
    assert any("network.link" in e for e in link["evidence"])


def test_a_report_with_three_faults_validates_against_the_schema(lab, till):
    import jsonschema
    from posdiag.core.paths import data_dir

    rc, report, _ = lab.diagnose(till("disk", "tls", "reader"))
    schema = json.loads((data_dir() / "report.schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(report, schema)


def test_a_fault_counts_as_present_from_a_certainty_of_one_half():
    from posdiag.agent.report import present_faults

    causes = [{"id": "disk.full", "certainty": 0.5}, {"id": "clock.skew", "certainty": 0.499},
              {"id": "none", "certainty": 0.9}, {"id": "network.dns"}]  # an older agent's cause: no certainty
    assert [c["id"] for c in present_faults(causes)] == ["disk.full"]
