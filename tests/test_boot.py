"""The Debian package booted for real: systemd as PID 1 in a Debian root (systemd-nspawn), starting
posdiag.service at boot under the unit's own sandbox, capabilities, device policy and memory limit.

One till is booted for the module (labs.bootlab) on a network of the test's own: the container joins
the terminal's namespace of labs.netlab, whose router is the gateway, and reaches a payment host
behind it and a push server on its own loopback. Every test asks that till something; a test that
changes it puts it back. tests/test_package.py installs the package without booting it.
"""

from __future__ import annotations

import time
from datetime import datetime

import pytest
from labs.bootlab import POS_LOG, TECHNICIAN, VISITOR, BootedTill, booted_site, configuration
from labs.helpers import codes_of, probe_of
from labs.netlab import GATEWAY

pytestmark = pytest.mark.root

UNIT_DIR = "/etc/systemd/system/posdiag.service.d"


@pytest.fixture(scope="module")
def site(deb, tmp_path_factory):
    with booted_site(deb, tmp_path_factory.mktemp("site")) as built:
        yield built


@pytest.fixture(scope="module")
def till(site) -> BootedTill:
    return site.till


@pytest.fixture(scope="module")
def push(site):
    return site.push


def wait_until(check, what: str, timeout_s: float = 60):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def reconfigure(till: BootedTill, text: str) -> None:
    """A new /etc/posdiag/posdiag.toml, then `systemctl reload posdiag`, waited for until the daemon counts it."""
    reloads = till.status()["reloads"]
    till.write("/etc/posdiag/posdiag.toml", text)
    till.ok("systemctl reload posdiag")
    wait_until(lambda: till.status()["reloads"] == reloads + 1, "the daemon to reload")


def restart_with(till: BootedTill, dropin: list[str] | None) -> None:
    """The unit with this drop-in (None: without one), as `systemctl edit` + `systemctl restart` leave it."""
    till.ok(f"rm -rf {UNIT_DIR}")
    if dropin:
        till.write(f"{UNIT_DIR}/open.conf", "\n".join(dropin) + "\n")
    till.ok("systemctl daemon-reload && systemctl restart posdiag")
    wait_until(lambda: till.sh("posdiag status --json").returncode == 0, "the daemon to answer again")


def trigger(till: BootedTill, user: str | None = None) -> dict:
    return till.report("posdiag trigger --json", user)


def finding(report: dict, probe: str, code: str) -> dict:
    return next(f for f in probe_of(report, probe)["findings"] if f["code"] == code)


# --- at boot -----------------------------------------------------------------------------------------

def test_systemd_starts_the_unit_at_boot_and_its_first_sweep_is_stored_as_boot(till):
    assert till.ok("systemctl is-active posdiag").strip() == "active"
    assert till.ok("systemctl show -p NRestarts --value posdiag").strip() == "0"
    first = till.history()[-1]
    assert first["trigger"] == "boot"
    assert first["terminal"]["id"] == "lane-07"
    assert first["report_id"] in till.ok("journalctl -u posdiag -o cat --no-pager")


def test_icmp_reaches_the_gateway_with_the_units_capabilities_and_not_without_them(till):
    boot = till.history()[-1]
    gateway = probe_of(boot, "network.gateway")
    assert gateway["metrics"]["gateway"] == GATEWAY
    assert "gateway.icmp_unavailable" not in codes_of(boot, "network.gateway")
    assert "rtt_ms" in gateway["metrics"], "the gateway answered ICMP echo"
    assert probe_of(boot, "network.path")["summary"].startswith("icmp:")
    # The technician's own diagnosis has no CAP_NET_RAW, and this namespace allows no unprivileged ICMP.
    own = till.report("posdiag diagnose --json --only network.gateway", TECHNICIAN)
    assert "gateway.icmp_unavailable" in codes_of(own, "network.gateway")


# --- while it runs -----------------------------------------------------------------------------------

def test_a_2824_written_to_the_pos_log_in_var_log_starts_an_event_sweep(till):
    line = f"{datetime.now():%Y-%m-%d %H:%M:%S} txn=77 amount=12.50 code=2824 rc=91"
    till.ok(f"echo '{line}' >> {POS_LOG}")
    event = wait_until(lambda: next((r for r in till.history() if r["trigger"] == "event"), None), "an event report")
    assert event["event"]["count_2824"] == 1
    assert probe_of(event, "txlog")["metrics"]["errors_2824"] == 1


def test_a_technician_in_group_posdiag_triggers_a_sweep_and_reads_the_status_and_others_may_not(till):
    report = trigger(till, TECHNICIAN)
    state = till.status(TECHNICIAN)
    assert state["running"] is True
    assert state["last"]["report_id"] == report["report_id"], "the daemon ran it, not a local diagnosis"
    assert report["trigger"] == "on-demand"
    refused = till.sh("posdiag status", VISITOR)
    assert refused.returncode == 3 and "member of group posdiag" in refused.stderr, refused.stdout + refused.stderr


def test_systemctl_reload_rereads_the_configuration(till, push):
    main_pid = till.ok("systemctl show -p MainPID --value posdiag")
    try:
        reconfigure(till, configuration(push.url, terminal={"site": "store-043"}, daemon={"interval_s": 240}))
        assert till.status()["interval_s"] == 240
        assert trigger(till)["terminal"]["site"] == "store-043"
        assert till.ok("systemctl show -p MainPID --value posdiag") == main_pid, "reloaded, not restarted"
    finally:
        reconfigure(till, configuration(push.url))


def test_memory_stays_under_memory_max_while_reports_are_pushed(till, push):
    sent = till.status()["push"]["sent"]
    for _ in range(5):
        trigger(till)
    state = wait_until(lambda: (s := till.status())["push"]["sent"] >= sent + 5 and s["push"]["outbox"] == 0 and s,
                       "five more reports pushed")
    assert state["push"]["configured"] is True and push.stored() >= 5
    limit = int(till.ok("systemctl show -p MemoryMax --value posdiag"))
    peak = int(till.ok("cat /sys/fs/cgroup/memory/system.slice/posdiag.service/memory.max_usage_in_bytes"))
    assert 0 < peak < limit, f"peak {peak} B, MemoryMax {limit} B"
    assert "oom_kill 0" in till.ok("cat /sys/fs/cgroup/memory/system.slice/posdiag.service/memory.oom_control")
    assert till.ok("systemctl show -p NRestarts --value posdiag").strip() == "0"


# --- what the sandbox hides --------------------------------------------------------------------------

def test_a_log_under_home_and_a_port_the_device_policy_refuses_are_hidden_until_the_named_dropin(till, push):
    # A USB serial port whose driver is not loaded on this kernel: the unit's char-ttyUSB matches nothing.
    till.ok("mknod -m 0660 /dev/ttyUSB0 c 188 0 && chgrp dialout /dev/ttyUSB0")
    till.ok("install -d -m 0755 /home/pos && echo '2026-12-06 10:00:00 txn=1 code=0' > /home/pos/tx.log")
    try:
        reconfigure(till, configuration(push.url, txlog={"path": "/home/pos/tx.log"},
                                        reader={"kind": "serial", "port": "/dev/ttyUSB0", "timeout_s": 0.3}))
        hidden = trigger(till)
        log = finding(hidden, "txlog", "txlog.hidden_by_sandbox")
        port = finding(hidden, "reader.serial", "reader.hidden_by_sandbox")
        assert (log["data"]["setting"], port["data"]["setting"]) == ("ProtectHome", "DevicePolicy")
        assert log["data"]["unit"] == port["data"]["unit"] == "posdiag.service"
        assert port["data"]["dropin"] == ["[Service]", "DeviceAllow=/dev/ttyUSB0 rw"]
        # The unit's CAP_SYSLOG and DeviceAllow=/dev/kmsg let reader.events read the kernel log.
        assert not {"reader.kernel_log_denied", "reader.kernel_log_missing"} & set(codes_of(hidden, "reader.events"))

        restart_with(till, ["[Service]", *log["data"]["dropin"][1:], *port["data"]["dropin"][1:]])
        opened = trigger(till)
        assert codes_of(opened, "txlog") == [] and probe_of(opened, "txlog")["metrics"]["lines_read"] == 1
        # Let through, the port answers as a port without its driver does: it vanishes when opened.
        assert "reader.port_missing" in codes_of(opened, "reader.serial")
        assert "reader.hidden_by_sandbox" not in codes_of(opened, "reader.serial")
    finally:
        till.ok("rm -f /dev/ttyUSB0")
        till.write("/etc/posdiag/posdiag.toml", configuration(push.url))
        restart_with(till, None)


def test_a_log_under_tmp_is_hidden_by_privatetmp_until_the_named_dropin(till, push):
    till.ok("install -d -m 0755 /tmp/pos && echo '2026-12-06 10:00:00 txn=1 code=0' > /tmp/pos/tx.log")
    try:
        reconfigure(till, configuration(push.url, txlog={"path": "/tmp/pos/tx.log"}))
        log = finding(trigger(till), "txlog", "txlog.hidden_by_sandbox")
        assert log["data"]["setting"] == "PrivateTmp"
        assert log["data"]["dropin"] == ["[Service]", "BindReadOnlyPaths=/tmp/pos"]

        restart_with(till, log["data"]["dropin"])
        opened = trigger(till)
        assert codes_of(opened, "txlog") == [] and probe_of(opened, "txlog")["metrics"]["lines_read"] == 1
    finally:
        till.write("/etc/posdiag/posdiag.toml", configuration(push.url))
        restart_with(till, None)


def test_the_units_journal_shows_no_traceback(till):
    journal = till.ok("journalctl -u posdiag -o cat --no-pager")
    assert "boot sweep" in journal
    assert "Traceback" not in journal, journal[-3000:]
