"""A serial reader behind a virtual serial bridge: ``socat`` holds the pty's master side (and its
slave) and carries the line to the reader over TCP on loopback, as ser2net-style setups do. The
bridge is the reader's end of the line, not a rival for the port: the probe must talk through it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from labs.commands import IN_CI, run_cli
from labs.helpers import codes_of as codes
from labs.helpers import probe_of as probe
from labs.helpers import top_cause as top
from labs.reader_emulator import ReaderEmulator, pty_bridge
from posdiag.probes.reader._holders import Holder, holders


@pytest.fixture
def bridge(tmp_path):
    """Factory: a reader emulator on TCP and a real socat bridge that exposes it as a pty link."""
    if shutil.which("socat") is None:
        message = "socat missing: apt-get install socat (.ci/run does)"
        pytest.fail(message) if IN_CI else pytest.skip(message)
    started: list[tuple[ReaderEmulator, subprocess.Popen]] = []

    def make(preset: str = "ingenico-rba", mode: str = "healthy") -> tuple[ReaderEmulator, str, subprocess.Popen]:
        emu = ReaderEmulator(preset, mode, transport="tcp").start()
        link = str(tmp_path / f"ttyVR{len(started)}")
        socat = pty_bridge(emu, link, stderr=subprocess.PIPE)
        started.append((emu, socat))
        assert os.path.exists(link), "socat did not create its pty link"
        return emu, link, socat

    yield make
    for emu, socat in started:
        socat.kill()
        socat.wait()
        emu.stop()


def bridged_report(config_file, tmp_path, link: str, preset: str, **reader) -> tuple[int, dict]:
    section = {"kind": "serial", "port": link, "protocol": preset, "timeout_s": 1.0,
               "sysfs_root": str(tmp_path / "no-sysfs"), **reader}
    rc, out, err = run_cli("diagnose", "--json", "--only", "reader", "--config", str(config_file(reader=section)))
    assert rc != 3, err
    return rc, json.loads(out)


@pytest.mark.parametrize("run", range(3))
def test_reader_behind_a_socat_pty_bridge_is_probed_through_it(bridge, config_file, tmp_path, run):
    emu, link, socat = bridge()
    rc, report = bridged_report(config_file, tmp_path, link, emu.preset)
    serial = probe(report, "reader.serial")
    assert serial["status"] == "ok", serial
    assert rc == 0 and top(report) == "none"
    bridged = next(f for f in serial["findings"] if f["code"] == "reader.bridged")
    assert {"pid": socat.pid, "name": "socat"} in bridged["data"]["bridges"]
    assert emu.received, "the request must have crossed the bridge to the reader"


def test_silent_reader_behind_a_bridge_is_unresponsive_not_held(bridge, config_file, tmp_path):
    emu, link, _ = bridge(mode="silent")
    rc, report = bridged_report(config_file, tmp_path, link, emu.preset, timeout_s=0.5)
    assert "reader.port_held" not in codes(report, "reader.serial")
    assert "reader.no_reply" in codes(report, "reader.serial")
    assert rc == 2 and top(report) == "reader.unresponsive"
    assert emu.received


def test_a_process_holding_only_the_slave_is_still_a_rival(bridge, config_file, tmp_path):
    emu, link, _ = bridge()
    holder = subprocess.Popen(["python3", "-c", "import os, sys, time\nos.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)\n"
                               "print('held', flush=True)\ntime.sleep(60)", link], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        rc, report = bridged_report(config_file, tmp_path, link, emu.preset)
    finally:
        holder.kill()
        holder.wait()
    serial = probe(report, "reader.serial")
    held = next(f for f in serial["findings"] if f["code"] == "probe.could_not_check")  # not asked, not blamed
    assert [h["pid"] for h in held["data"]["holders"]] == [holder.pid]
    assert serial["status"] == "error" and f"(pid {holder.pid})" in serial["summary"]
    assert not emu.received, "a port held by a rival is never written"


def test_configured_bridge_process_names_are_a_fallback(bridge, config_file, tmp_path):
    emu, link, _ = bridge()
    holder = subprocess.Popen(["python3", "-c", "import os, sys, time\nos.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)\n"
                               "print('held', flush=True)\ntime.sleep(60)", link], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        rc, report = bridged_report(config_file, tmp_path, link, emu.preset, bridge_processes=["python3"])
    finally:
        holder.kill()
        holder.wait()
    assert probe(report, "reader.serial")["status"] == "ok"
    assert "reader.bridged" in codes(report, "reader.serial")


# --- who holds a port, read from a /proc of real files (pure logic) -----------------------------------

def fake_proc(root, processes: dict[int, tuple[str, dict[int, tuple[str, str]]]]) -> str:
    """A /proc look-alike: pid → (comm, fd → (where the fd leads, its fdinfo text))."""
    for pid, (comm, fds) in processes.items():
        (root / str(pid) / "fd").mkdir(parents=True)
        (root / str(pid) / "fdinfo").mkdir()
        (root / str(pid) / "comm").write_text(comm + "\n")
        for fd, (link, info) in fds.items():
            (root / str(pid) / "fd" / str(fd)).symlink_to(link)
            (root / str(pid) / "fdinfo" / str(fd)).write_text(info)
    (root / "self").mkdir()
    return str(root)


def test_holders_of_a_pty_are_its_slave_and_the_master_of_its_own_number_but_never_this_process(tmp_path):
    pts = "/dev/pts/4242"  # no such pty here: the paths alone tell
    proc = fake_proc(tmp_path, {
        101: ("posapp", {3: (pts, "pos:\t0\n")}),
        102: ("socat", {5: ("/dev/ptmx", "pos:\t0\ntty-index:\t4242\n")}),
        103: ("ser2net", {6: ("/dev/pts/ptmx", "pos:\t0\ntty-index:\t4242\n")}),
        104: ("xterm", {7: ("/dev/ptmx", "pos:\t0\ntty-index:\t4243\n")}),
        105: ("sshd", {8: ("/dev/pts/ptmx", "pos:\t0\n"), 9: ("/dev/tty1", "tty-index:\t4242\n")}),
        106: ("idle", {}),
        os.getpid(): ("pytest", {3: (pts, "pos:\t0\n")}),
    })
    found, hidden = holders(pts, proc)
    assert sorted(found, key=lambda h: h.pid) == [Holder(101, "posapp"), Holder(102, "socat", device_side=True),
                                                  Holder(103, "ser2net", device_side=True)]
    assert hidden == 0


def test_a_pty_master_is_no_holder_of_a_port_that_is_not_a_pty(tmp_path):
    proc = fake_proc(tmp_path, {201: ("getty", {0: ("/dev/ttyS9", "pos:\t0\n")}),
                                202: ("tmux", {4: ("/dev/ptmx", "pos:\t0\n")})})
    assert holders("/dev/ttyS9", proc) == ([Holder(201, "getty")], 0)
    assert holders("/dev/ttyS9", str(tmp_path / "no-proc")) == ([], 0)
