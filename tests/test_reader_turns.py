"""Several posdiag processes at one card reader: the daemon's scheduled sweeps, a technician's
``watch`` and ``diagnose`` take turns at the port, and none of them ever takes another for a rival
program holding it (``reader.port_held``) or locking it (``reader.port_locked``).

Real processes on a real pty reader (tests/labs/reader_emulator.py) that answers slowly, so that a
``watch`` every half second keeps the port open most of the time."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from labs import REPO
from labs.daemonlab import DaemonProcess
from labs.helpers import wait_for
from labs.reader_emulator import ReaderEmulator
from posdiag.agent.store import Store
from posdiag.probes.reader._turn import ReaderBusy, lock_path, reader_turn

RIVAL_CODES = {"reader.port_held", "reader.port_locked"}


def _reader_findings(state, skip: set[str] = frozenset()) -> list[tuple[str, str, list[str]]]:
    """(trigger, reader.serial status, its finding codes) of every stored report."""
    found = []
    with Store(state) as store:
        for row in store.list():
            if row.report_id in skip:
                continue
            report = store.get(row.report_id)
            serial = next(p for p in report["probes"] if p["name"] == "reader.serial")
            found.append((report["trigger"], serial["status"], [f["code"] for f in serial["findings"]]))
    return found


def test_the_daemon_never_blames_a_technician_s_watch_or_diagnose_for_holding_the_reader(config_file, tmp_path):
    (tmp_path / "state").mkdir()
    with ReaderEmulator("generic", "slow", delay_s=0.35) as emu:
        config = config_file(reader={"kind": "serial", "port": emu.path, "protocol": "generic", "timeout_s": 1.0,
                                     "slow_ms": 5000, "sysfs_root": str(tmp_path / "no-sysfs")},
                             terminal={"id": "lane-03", "pos_process": "posapp"}, daemon={"interval_s": 5})
        watch = subprocess.Popen([sys.executable, "-m", "posdiag.agent", "watch", "--only", "reader", "--interval", "0.5",
                                  "--config", str(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 cwd=REPO)
        try:
            assert wait_for(lambda: emu.frames >= 2, timeout=30), "watch never asked the reader"
            daemon = DaemonProcess(config, tmp_path / "state")
            try:
                # the boot sweep and two scheduled ones, each beside the watch; a diagnose joins in
                for _ in range(3):
                    subprocess.run([sys.executable, "-m", "posdiag.agent", "diagnose", "--only", "reader.serial",
                                    "--config", str(config)], capture_output=True, cwd=REPO, timeout=60)
                assert wait_for(lambda: sum(r.trigger != "on-demand" for r in daemon.reports()) >= 3, timeout=40), \
                    daemon.output()
            finally:
                daemon.stop()
        finally:
            watch.send_signal(2)
            out, err = watch.communicate(timeout=30)
    seen = _reader_findings(tmp_path / "state")
    blamed = [s for s in seen if RIVAL_CODES & set(s[2])]
    assert not blamed, f"a posdiag process was taken for the reader's rival: {blamed}"
    daemon_sweeps = [s for s in seen if s[0] in ("boot", "schedule")]
    assert len(daemon_sweeps) >= 3 and all(status == "ok" for _, status, _ in daemon_sweeps), seen
    assert "→ fail" not in out and "→ error" not in out, out  # the watch never saw the daemon as a rival either


def test_a_second_posdiag_waits_for_the_first_to_finish_with_the_reader(tmp_path):
    port = "/dev/ttyUSB9"
    with reader_turn(str(tmp_path), port, wait_s=0):
        child = subprocess.Popen([sys.executable, "-c", "import time; from posdiag.probes.reader._turn import "
                                  "reader_turn\nt = time.monotonic()\n"
                                  f"with reader_turn({str(tmp_path)!r}, {port!r}, wait_s=10): "
                                  "print(round(time.monotonic() - t, 2))"], stdout=subprocess.PIPE, text=True)
        time.sleep(0.5)
        assert child.poll() is None, "the second posdiag did not wait for the first"
    waited = float(child.communicate(timeout=10)[0])
    assert 0.3 <= waited < 10


def test_a_reader_busy_beyond_the_wait_is_said_not_blamed(tmp_path):
    with reader_turn(str(tmp_path), "/dev/ttyUSB9", wait_s=0):
        child = subprocess.run([sys.executable, "-c", "from posdiag.probes.reader._turn import ReaderBusy, reader_turn\n"
                                "try:\n"
                                f"    with reader_turn({str(tmp_path)!r}, '/dev/ttyUSB9', wait_s=0.2): print('in')\n"
                                "except ReaderBusy: print('busy')"], capture_output=True, text=True, timeout=10)
    assert child.stdout.strip() == "busy"
    with reader_turn(str(tmp_path), "/dev/ttyUSB9", wait_s=0):  # free again once the first is done
        pass
    assert issubclass(ReaderBusy, Exception)


@pytest.mark.root
def test_the_turn_made_by_root_is_taken_by_the_daemon_s_user():
    """A technician (root, umask 077) takes the first turn; the daemon, running as another user that
    can only read the state folder, still takes its turns and never works beside it."""
    state = Path(tempfile.mkdtemp(prefix="posdiag-turn-"))  # pytest's own folders are root's alone
    os.chmod(state, 0o755)
    try:
        _turns_across_users(state)
    finally:
        shutil.rmtree(state)


def _turns_across_users(state: Path) -> None:
    old = os.umask(0o077)
    try:
        with reader_turn(str(state), "/dev/ttyUSB9", wait_s=0):
            pass
    finally:
        os.umask(old)
    assert os.stat(lock_path(str(state), "/dev/ttyUSB9")).st_mode & 0o777 == 0o644
    # imported before the user changes: this machine's Python lives in root's home, out of nobody's reach
    script = ("import os\nfrom posdiag.probes.reader._turn import ReaderBusy, reader_turn\n"
              "os.setgid(65534); os.setuid(65534)\ntry:\n"
              f"    with reader_turn({str(state)!r}, '/dev/ttyUSB9', wait_s=0.2): print('in')\n"
              "except ReaderBusy: print('busy')")
    free = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=10)
    with reader_turn(str(state), "/dev/ttyUSB9", wait_s=0):
        held = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=10)
    assert (free.stdout.strip(), held.stdout.strip()) == ("in", "busy"), (free.stderr, held.stderr)


def test_with_something_else_than_a_file_at_the_lock_the_exchange_goes_ahead_without_a_turn(tmp_path):
    """A FIFO put where the lock file goes (which would hang an open) is no turn to take: the exchange
    proceeds without one; a real lock file is a turn to wait for."""
    entered = []
    os.mkfifo(lock_path(str(tmp_path), "/dev/ttyUSB9"))
    with reader_turn(str(tmp_path), "/dev/ttyUSB9", wait_s=0), reader_turn(str(tmp_path), "/dev/ttyUSB9", wait_s=0):
        entered.append("a fifo at the lock")
    assert entered == ["a fifo at the lock"]
    with reader_turn(str(tmp_path), "/dev/ttyUSB8", wait_s=0), pytest.raises(ReaderBusy), \
            reader_turn(str(tmp_path), "/dev/ttyUSB8", wait_s=0):  # a real lock file is a turn to wait for
        pass


@pytest.mark.parametrize("state_dir", [None, ""], ids=["none", "empty"])
def test_without_a_state_folder_the_exchange_goes_ahead_without_a_turn(state_dir):
    entered = []
    with reader_turn(state_dir, "/dev/ttyUSB9", wait_s=0):
        entered.append(True)
    assert entered == [True]
