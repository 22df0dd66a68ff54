"""Card reader probes against a reader emulator on a real pseudo-terminal, a sysfs-shaped USB tree,
and the real kernel log."""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from labs.commands import REPO, diagnose_in_namespace, run_cli
from labs.helpers import codes_of as codes
from labs.helpers import probe_of as probe
from labs.helpers import top_cause as top
from labs.helpers import wait_for
from labs.reader_emulator import OTHER_SERIAL, SERIAL, ReaderEmulator, hold_port
from labs.usbtree import HUB, KEYBOARD, PRINTER, READER, add_device, device_with_tty, remove_device, terminal_tree
from posdiag.core import settings as cfg
from posdiag.core.settings import DaemonSettings, ReaderSettings, Settings
from posdiag.probes.base import Observation
from posdiag.probes.reader._exchange import Exchange
from posdiag.probes.reader._framing import ACK, EOT, ETX, NAK, SI, SO, STX, Framing, describe, lrc
from posdiag.probes.reader._protocols import protocol_for
from posdiag.probes.reader._turn import lock_path
from posdiag.probes.reader.events import EventsProbe
from posdiag.probes.reader.serial_port import SerialProbe
from posdiag.probes.reader.usb import UsbProbe, enumerate_sysfs


def reader_report(config, *extra: str) -> tuple[int, dict]:
    rc, out, err = run_cli("diagnose", "--json", "--only", "reader", "--config", str(config), *extra)
    assert rc != 3, err
    return rc, json.loads(out)




@pytest.fixture
def serial_config(config_file, tmp_path):
    def make(emu: ReaderEmulator | None = None, port: str | None = None, **reader) -> object:
        section = {"kind": "serial", "port": port or emu.path, "protocol": emu.preset if emu else "generic",
                   "timeout_s": 0.5, "sysfs_root": str(tmp_path / "no-sysfs"), **reader}
        return config_file(reader=section)

    return make


# --- framing -------------------------------------------------------------------------------------

def test_lrc_is_the_xor_of_the_bytes_after_stx_through_etx():
    frame = Framing().encode(b"11.")
    assert frame[:1] == bytes([STX]) and frame[-2] == ETX
    assert frame[-1] == lrc(b"11." + bytes([ETX]))
    assert Framing().check(frame) == (b"11.", True)


def test_framing_variants_change_the_lrc():
    plain, with_begin = Framing(), Framing(lrc_includes_begin=True)
    seeded = Framing(lrc_start=0xFF)
    assert len({plain.encode(b"X")[-1], with_begin.encode(b"X")[-1], seeded.encode(b"X")[-1]}) == 3
    si_so = Framing(begin=SI, end=SO).encode(b"SN")
    assert si_so[0] == SI and si_so[-2] == SO
    corrupt = plain.encode(b"X")[:-1] + b"\x00"
    assert plain.check(corrupt)[1] is False


@pytest.mark.parametrize("framing", [Framing(), Framing(begin=SI, end=SO)], ids=["stx-etx", "si-so"])
def test_a_frame_of_begin_end_and_lrc_alone_is_complete_and_anything_shorter_is_not(framing):
    empty = framing.encode(b"")
    assert len(empty) == 3 and framing.check(empty) == (b"", True)
    for cut in (empty[:2], empty[1:], bytes([framing.begin, 0x41, 0x41])):
        with pytest.raises(ValueError, match="not a complete frame"):
            framing.check(cut)


def test_a_reader_answering_an_empty_frame_gives_an_unexpected_reply_not_an_error():
    ex, _ = scripted_exchange("generic", bytes([ACK]) + Framing().encode(b""))
    assert ex.outcome == "unexpected" and ex.payload == b""


def test_a_frame_whose_lrc_covers_its_start_byte_checks_with_the_same_framing_only():
    with_begin = Framing(lrc_includes_begin=True)
    frame = with_begin.encode(b"42")
    assert frame[-1] == lrc(bytes([STX]) + b"42" + bytes([ETX]))
    assert with_begin.check(frame) == (b"42", True) and Framing().check(frame) == (b"42", False)


@pytest.mark.parametrize(("data", "shown"), [
    (b" ~", " ~"), (b"\x1f\x7f", "\\x1f\\x7f"), (bytes([STX, NAK, ETX]), "<STX><NAK><ETX>"),
    (b"A" * 24, "A" * 24), (b"A" * 25, "A" * 24 + "…"),
], ids=["printable-edges", "just-outside-printable", "control-bytes", "24-bytes-whole", "25-bytes-cut"])
def test_bytes_are_shown_printable_from_space_to_tilde_and_cut_after_24(data, shown):
    assert describe(data) == shown


@pytest.mark.parametrize(("protocol", "framed", "ack", "asked"), [
    ("generic", True, True, b"S"), ("ingenico-rba", True, True, b"11."), ("telium-enq", False, False, b"\x05"),
    ("verifone-si-so", True, True, b"SN"), ("custom", False, False, b"\x02\x31\x03")])
def test_each_protocol_frames_acknowledges_and_asks_as_its_preset_says(protocol, framed, ack, asked):
    reader = ReaderSettings(kind="serial", port="/dev/ttyS0", protocol=protocol, request="02 31 03",
                            expect="^06" if protocol == "custom" else "")
    found = protocol_for(reader)
    assert (found.framing is not None, found.ack, found.request) == (framed, ack, asked)
    assert found.expect_hex is not None or found.reply is not None
    if protocol == "verifone-si-so":
        assert (found.framing.begin, found.framing.end) == (SI, SO)


# --- serial handshake ------------------------------------------------------------------------------

@pytest.mark.parametrize("preset", ["generic", "ingenico-rba", "telium-enq", "verifone-si-so"])
def test_healthy_reader_answers_each_preset(serial_config, preset):
    with ReaderEmulator(preset, "healthy") as emu:
        rc, report = reader_report(serial_config(emu))
    serial_probe = probe(report, "reader.serial")
    assert serial_probe["status"] == "ok", serial_probe
    assert rc == 0 and top(report) == "none"
    assert serial_probe["metrics"]["reply_ms"] < 500
    # the whole exchange, in ms too: at least the reply's wait, well under a minute
    assert serial_probe["metrics"]["reply_ms"] <= serial_probe["metrics"]["exchange_ms"] < 60_000
    assert emu.received, "the probe must really have sent its request"


@pytest.mark.parametrize("mode,code,cause", [
    ("silent", "reader.no_reply", "reader.unresponsive"),
    ("garbage", "reader.garbage", "reader.unresponsive"),
    ("nak", "reader.nak", "reader.unresponsive"),
    ("bad_lrc", "reader.bad_lrc", "reader.unresponsive"),
])
def test_faulty_reader_modes_are_classified(serial_config, mode, code, cause):
    with ReaderEmulator("ingenico-rba", mode) as emu:
        rc, report = reader_report(serial_config(emu))
    assert codes(report, "reader.serial") == [code]
    assert rc == 2 and top(report) == cause


@pytest.mark.parametrize("preset", ["ingenico-rba", "telium-enq"])  # framed, and raw bytes as given
def test_silent_reader_is_asked_twice_within_its_timeout(serial_config, preset):
    with ReaderEmulator(preset, "silent") as emu:
        rc, report = reader_report(serial_config(emu, timeout_s=1.0))
    [finding] = probe(report, "reader.serial")["findings"]
    assert finding["code"] == "reader.no_reply" and finding["data"]["attempts"] == 2
    assert len(emu.request_times) == 2  # asked again once: a request lost to line noise is not a dead reader
    assert "within 1 s (2 tries)" in finding["message"]


@pytest.mark.parametrize("preset", ["ingenico-rba", "telium-enq"])  # framed, and raw bytes as given
def test_reader_answering_late_but_within_its_timeout_passes_and_its_second_answer_is_drained(preset):
    """Slower than three quarters of its timeout, so asked again, but answering within it: the answer
    counts, timed from the first request, and the reader's answer to the repeat is read before the
    port is let go (left in the line, it would pass for the next exchange's fast reply)."""
    import serial
    from posdiag.core.settings import ReaderSettings
    from posdiag.probes.reader._exchange import exchange
    from posdiag.probes.reader._protocols import protocol_for

    timeout_s = 2.0
    proto = protocol_for(ReaderSettings(kind="serial", port="/dev/null", protocol=preset))
    with ReaderEmulator(preset, "slow", delay_s=0.875 * timeout_s) as emu, \
            serial.Serial(emu.path, 9600, timeout=timeout_s, exclusive=True) as conn:
        ex = exchange(conn, proto, timeout_s)
        assert ex.outcome == "ok" and ex.attempts == 2 and len(emu.request_times) == 2, ex
        assert ex.latency_ms >= 0.875 * timeout_s * 1000
        assert wait_for(lambda: emu.answered == 2, 5), "the reader never answered the repeat"
        assert conn.in_waiting == 0, "the answer to the repeated request was left in the line"


def test_reader_answering_after_its_timeout_is_silent(serial_config):
    with ReaderEmulator("ingenico-rba", "slow", delay_s=1.5) as emu:
        rc, report = reader_report(serial_config(emu, timeout_s=1.0))
    assert codes(report, "reader.serial") == ["reader.no_reply"]
    assert rc == 2 and top(report) == "reader.unresponsive"


def test_silent_reader_says_so_in_chinese(serial_config, speak_chinese):
    with ReaderEmulator("ingenico-rba", "silent") as emu:
        rc, out, err = run_cli("diagnose", "--json", "--lang", "zh_CN", "--only", "reader", "--config",
                               str(serial_config(emu)))
    report = json.loads(out)
    [finding] = probe(report, "reader.serial")["findings"]
    assert finding["code"] == "reader.no_reply"  # the contract stays English
    assert finding["message"] == f"{emu.path} 上的读卡器在 0.5 秒内没有应答（尝试 2 次）"
    assert report["lang"] == "zh_CN"


def test_nak_is_retried_a_bounded_number_of_times(serial_config):
    with ReaderEmulator("generic", "nak") as emu:
        rc, report = reader_report(serial_config(emu))
    assert emu.frames == 4  # the first request and three retries, no more
    assert probe(report, "reader.serial")["metrics"]["attempts"] == 4


@pytest.mark.parametrize("preset", ["ingenico-rba", "telium-enq"])  # framed, and raw bytes as given
def test_slow_reader_is_a_warning_with_its_latency(serial_config, preset):
    with ReaderEmulator(preset, "slow", delay_s=0.7) as emu:
        rc, report = reader_report(serial_config(emu, timeout_s=1.0))
    assert codes(report, "reader.serial") == ["reader.slow"]
    took = probe(report, "reader.serial")["metrics"]["reply_ms"]
    assert 700 <= took < 7000 and took == round(took, 2)  # ms, to two decimals
    assert rc == 1 and top(report) == "reader.unresponsive"


@pytest.mark.parametrize(("slow_ms", "slow"), [(150, True), (None, False)], ids=["limit-150-ms", "default-500-ms"])
def test_a_reader_answering_in_300_ms_is_slow_only_beyond_its_limit(serial_config, slow_ms, slow):
    limit = {"slow_ms": slow_ms} if slow_ms else {}
    with ReaderEmulator("ingenico-rba", "slow", delay_s=0.3) as emu:
        rc, report = reader_report(serial_config(emu, timeout_s=1.0, **limit))
    assert codes(report, "reader.serial") == (["reader.slow"] if slow else []), probe(report, "reader.serial")
    metrics = probe(report, "reader.serial")["metrics"]
    assert metrics["reply_ms"] >= 300
    # the whole exchange, in ms too: at least the reply's wait, far from ten times it
    assert metrics["reply_ms"] <= metrics["exchange_ms"] < 10 * metrics["reply_ms"], metrics


def test_a_port_another_program_locked_exclusively_is_said_locked_and_not_asked(tmp_path):
    """A lock pyserial's exclusive open meets although /proc shows no other holder (here: one this process
    took, which the probe does not count as a rival)."""
    with ReaderEmulator("generic", "healthy") as emu:
        fd = os.open(emu.path, os.O_RDWR | os.O_NOCTTY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            settings = Settings(reader=ReaderSettings(kind="serial", port=emu.path, timeout_s=0.5,
                                                      sysfs_root=str(tmp_path / "no-sysfs")))
            result = SerialProbe(settings).run()
        finally:
            os.close(fd)
    assert [f.code for f in result.findings] == ["reader.port_locked"], result
    assert bytes(emu.received) == b""


def test_the_serial_probe_takes_its_turn_in_the_configured_state_folder(tmp_path):
    with ReaderEmulator("generic", "healthy") as emu:
        settings = Settings(reader=ReaderSettings(kind="serial", port=emu.path, timeout_s=0.5,
                                                  sysfs_root=str(tmp_path / "no-sysfs")),
                            daemon=DaemonSettings(state_dir=str(tmp_path)))
        result = SerialProbe(settings).run()
    assert result.status.value != "error", result  # the reader was asked (in time or not: a busy machine)
    assert os.path.isfile(lock_path(str(tmp_path), emu.path))


def _serial_probe(**reader) -> SerialProbe:
    return SerialProbe(Settings(reader=ReaderSettings(kind="serial", port="/dev/ttyS0", **reader)))


def test_the_serial_probe_allows_two_timeouts_and_a_second():
    assert _serial_probe(timeout_s=1.5).deadline_s() == pytest.approx(4.0)
    assert _serial_probe(timeout_s=0.25).deadline_s() == pytest.approx(1.5)


@pytest.mark.parametrize(("left_s", "wait_s"), [(10.0, 7.5), (1.0, 0.0)], ids=["time-to-wait", "no-time-left"])
def test_the_wait_for_another_posdiags_turn_leaves_one_timeout_and_half_a_second(left_s, wait_s):
    probe_ = _serial_probe(timeout_s=2.0)
    probe_.deadline_at = time.monotonic() + left_s
    assert wait_s - 1.0 <= probe_.turn_wait_s() <= wait_s  # a little of it passes while the test runs
    assert probe_.turn_wait_s() >= 0.0


@pytest.mark.parametrize(("latency_ms", "slow"), [(500.0, False), (500.5, True), (499.0, False)])
def test_a_reply_is_slow_only_strictly_beyond_slow_ms(latency_ms, slow):
    obs = Observation()
    _serial_probe(slow_ms=500.0).judge(obs, "/dev/ttyS0", Exchange("ok", latency_ms=latency_ms, attempts=1))
    assert [f.code for f in obs.findings] == (["reader.slow"] if slow else [])
    assert obs.metrics["reply_ms"] == latency_ms and obs.metrics["attempts"] == 1


def test_the_reply_time_is_kept_to_two_decimals():
    obs = Observation()
    _serial_probe().judge(obs, "/dev/ttyS0", Exchange("ok", latency_ms=12.34567, attempts=1))
    assert obs.metrics["reply_ms"] == 12.35


def test_a_protocol_that_reports_no_serial_cannot_check_the_one_on_file(serial_config):
    with ReaderEmulator("telium-enq", "healthy") as emu:
        rc, report = reader_report(serial_config(emu, expected_serial=SERIAL))
    found = probe(report, "reader.serial")["findings"]
    assert [(f["code"], f["severity"]) for f in found] == [("reader.serial_unknown", "info")], found
    assert rc == 0


def test_wrong_serial_number_blames_substitution_with_both_numbers(serial_config):
    with ReaderEmulator("verifone-si-so", "wrong_serial") as emu:
        rc, report = reader_report(serial_config(emu, expected_serial=SERIAL))
    finding = next(f for f in probe(report, "reader.serial")["findings"] if f["code"] == "reader.serial_mismatch")
    assert finding["data"] == {"expected": SERIAL, "found": OTHER_SERIAL}
    assert rc == 2 and top(report) == "reader.substituted"


def test_right_serial_number_passes(serial_config):
    with ReaderEmulator("verifone-si-so", "healthy") as emu:
        rc, report = reader_report(serial_config(emu, expected_serial=SERIAL))
    assert probe(report, "reader.serial")["metrics"]["serial"] == SERIAL
    assert rc == 0


def test_missing_port_blames_disconnected_reader(serial_config, tmp_path):
    rc, report = reader_report(serial_config(port=str(tmp_path / "ttyUSB7")))
    assert codes(report, "reader.serial") == ["reader.port_missing"]
    assert rc == 2 and top(report) == "reader.disconnected"


def test_custom_protocol_uses_request_and_expect(serial_config):
    with ReaderEmulator("telium-enq", "healthy") as emu:
        rc, report = reader_report(serial_config(emu, protocol="custom", request="05", expect="^06$"))
    assert probe(report, "reader.serial")["status"] == "ok"
    with ReaderEmulator("telium-enq", "garbage") as emu:
        rc, report = reader_report(serial_config(emu, protocol="custom", request="05", expect="^06$"))
    assert codes(report, "reader.serial") == ["reader.unexpected_reply"]


class ScriptedReader(ReaderEmulator):
    """A reader on a pty that answers each thing the host writes (a request, an ACK, a NAK) with the
    next of ``replies`` and then falls silent: the exact bytes an edge of the exchange needs."""

    def __init__(self, *replies: bytes) -> None:
        super().__init__("generic")
        self.replies = list(replies)

    def _handle(self, buf: bytearray) -> bytearray:
        if self.replies:
            self._send(self.replies.pop(0))
        return bytearray()


def scripted_exchange(preset: str, *replies: bytes, timeout_s: float = 0.5):
    """One exchange of ``preset`` with a reader that answers ``replies``, and what the reader heard."""
    import serial
    from posdiag.core.settings import ReaderSettings
    from posdiag.probes.reader._exchange import exchange
    from posdiag.probes.reader._protocols import protocol_for

    proto = protocol_for(ReaderSettings(kind="serial", port="/dev/null", protocol=preset))
    with ScriptedReader(*replies) as emu, serial.Serial(emu.path, 9600, timeout=timeout_s, exclusive=True) as conn:
        ex = exchange(conn, proto, timeout_s)
        time.sleep(0.1)  # what the host wrote last (an ACK, a NAK) reaches the reader
    return ex, bytes(emu.received)


@pytest.mark.parametrize(("payload_bytes", "outcome"), [(1023, "ok"), (1024, "garbage")])
def test_a_reply_frame_longer_than_1024_bytes_before_its_end_byte_is_garbage(payload_bytes, outcome):
    """STX, then the payload: a 1023-byte payload fits, one byte more is garbage at once (not cut off)."""
    payload = b"OK" + b"0" * (payload_bytes - 2)
    ex, _ = scripted_exchange("generic", bytes([ACK]) + Framing().encode(payload))
    assert ex.outcome == outcome and ex.notes == [], ex.notes
    assert ex.payload == (payload if outcome == "ok" else b"")


@pytest.mark.parametrize("preset", ["generic", "telium-enq"])  # framed, and raw bytes as given
def test_an_unintelligible_reader_is_read_for_256_bytes_at_most(preset):
    ex, _ = scripted_exchange(preset, b"A" * 1000)
    assert ex.outcome == ("garbage" if preset == "generic" else "unexpected")
    assert len(ex.received) == 256


def test_a_reader_ending_the_session_with_eot_is_an_unexpected_reply():
    ex, _ = scripted_exchange("generic", bytes([EOT]))
    assert ex.outcome == "unexpected" and ex.notes == ["reader ended the session (EOT) instead of replying"]
    assert ex.attempts == 1


def test_a_reader_that_acknowledges_but_never_replies_is_silent_and_said_so():
    ex, heard = scripted_exchange("generic", bytes([ACK]))
    assert ex.outcome == "no_reply" and ex.notes == ["reader acknowledged the request but sent no reply"]
    assert heard == Framing().encode(b"S")  # asked once: the reader is there, it just did not answer


def test_a_good_reply_frame_is_acknowledged_and_its_serial_read():
    ex, heard = scripted_exchange("generic", bytes([ACK]) + Framing().encode(b"OK"))
    assert ex.outcome == "ok" and heard == Framing().encode(b"S") + bytes([ACK])
    ex, heard = scripted_exchange("verifone-si-so", Framing(begin=SI, end=SO).encode(b"SN" + SERIAL.encode()))
    assert ex.outcome == "ok" and ex.serial == SERIAL and heard.endswith(bytes([ACK]))


@pytest.mark.parametrize(("corrupt", "outcome"), [(3, "ok"), (4, "bad_lrc")])
def test_a_corrupt_frame_is_asked_for_again_three_times_and_the_last_answer_is_read(corrupt, outcome):
    """Three retries: each corrupt frame is NAKed and the repeat judged, up to the third repeat; a fourth
    corrupt frame is the end, without a NAK whose answer nobody would read."""
    good = bytes([ACK]) + Framing().encode(b"OK")
    bad = good[:-1] + bytes([good[-1] ^ 0x5A])
    ex, heard = scripted_exchange("generic", *[bad] * corrupt, good)
    assert (ex.outcome, ex.attempts, ex.bad_lrcs) == (outcome, 4, corrupt)
    assert heard.count(NAK) == 3


def test_the_repeated_request_gets_the_last_quarter_of_the_timeout():
    from posdiag.probes.reader._exchange import _first_byte_wait

    assert [_first_byte_wait(2.0, attempt) for attempt in (1, 2, 3)] == [1.5, 0.5, 0.5]


def _held_report(serial_config, *lang: str) -> tuple[int, dict, subprocess.Popen, ReaderEmulator]:
    with ReaderEmulator("ingenico-rba", "healthy") as emu:
        holder = hold_port(emu.path)
        try:
            rc, report = reader_report(serial_config(emu), *lang)
            time.sleep(0.2)
        finally:
            holder.kill()
            holder.wait()
    return rc, report, holder, emu


def test_port_held_by_another_process_names_the_holder_and_does_not_blame_the_reader_it_could_not_ask(serial_config):
    rc, report, holder, emu = _held_report(serial_config)
    serial = probe(report, "reader.serial")
    assert serial["status"] == "error"  # not checked: never "fine"
    assert f"(pid {holder.pid})" in serial["summary"] and "python" in serial["summary"]
    assert [h["pid"] for h in serial["findings"][0]["data"]["holders"]] == [holder.pid]
    assert bytes(emu.received) == b"", "a busy reader must never be written to"
    assert top(report) == "none" and rc == 0
    none = report["diagnosis"]["causes"][0]
    assert none["certainty"] <= 0.6
    assert any(e.startswith("not checked: card reader — ") and f"(pid {holder.pid})" in e for e in none["evidence"])
    assert [u["probes"] for u in report["diagnosis"]["not_checked"] if u["area"] == "reader"] == [["reader.serial"]]


def test_port_held_by_another_process_says_so_in_chinese(serial_config):
    rc, report, holder, _ = _held_report(serial_config, "--lang", "zh_CN")
    none = report["diagnosis"]["causes"][0]
    line = next(e for e in none["evidence"] if e.startswith("未检查：读卡器 — "))
    assert "python" in line and f"（PID {holder.pid}）" in line and "没有询问读卡器" in line


def test_port_held_by_another_process_than_the_running_pos_is_a_reader_fault(serial_config, tmp_path):
    script = tmp_path / "posapp.py"
    script.write_text("import time\nprint('up', flush=True)\ntime.sleep(60)\n")
    pos = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert pos.stdout.readline().strip() == "up"
    try:
        with ReaderEmulator("ingenico-rba", "healthy") as emu:
            holder = hold_port(emu.path)
            try:
                path = serial_config(emu)
                path.write_text(path.read_text() + "\n[terminal]\npos_process = 'posapp.py'\n")
                rc, report = reader_report(path)
            finally:
                holder.kill()
                holder.wait()
    finally:
        pos.kill()
        pos.wait()
    finding = next(f for f in probe(report, "reader.serial")["findings"] if f["code"] == "reader.port_held")
    assert finding["severity"] == "fail" and f"(pid {holder.pid})" in finding["message"]
    assert top(report) == "reader.unresponsive" and rc == 2


def test_port_held_by_the_pos_application_is_left_alone_and_not_a_fault(serial_config, tmp_path):
    script = tmp_path / "posapp.py"
    script.write_text("import os, sys, time\nfd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)\n"
                      "print('held', flush=True)\ntime.sleep(60)\n")
    with ReaderEmulator("ingenico-rba", "healthy") as emu:
        pos = subprocess.Popen([sys.executable, str(script), emu.path], stdout=subprocess.PIPE, text=True)
        assert pos.stdout.readline().strip() == "held"
        try:
            path = serial_config(emu)
            text = path.read_text() + "\n[terminal]\npos_process = 'posapp.py'\n"
            path.write_text(text)
            rc, report = reader_report(path)
        finally:
            pos.kill()
            pos.wait()
    assert codes(report, "reader.serial") == ["reader.in_use_by_pos"]
    assert rc == 0 and bytes(emu.received) == b""


@pytest.mark.root
def test_permission_denied_names_the_missing_group(serial_config):
    with ReaderEmulator("generic", "healthy") as emu:
        os.chown(emu.path, 4242, 20)  # owned by another user, group dialout (gid 20)
        os.chmod(emu.path, 0o660)
        config = serial_config(emu)
        os.chmod(config, 0o644)
        # Root without the capabilities that bypass file permissions: an unprivileged reader of the tty.
        proc = subprocess.run(["setpriv", "--bounding-set", "-dac_override,-dac_read_search", sys.executable, "-m",
                               "posdiag.agent", "diagnose", "--json", "--only", "reader.serial", "--config", str(config)],
                              capture_output=True, text=True, cwd=REPO, timeout=30)
    report = json.loads(proc.stdout)
    # Besides it: the emulator (this process) holds the pty master, noted as a bridge (the device side), and
    # processes this unprivileged reader cannot inspect are counted; neither is a rival for the port.
    findings = probe(report, "reader.serial")["findings"]
    assert {f["code"] for f in findings} <= {"reader.permission_denied", "reader.bridged", "reader.holders_unknown"}
    finding = next(f for f in findings if f["code"] == "reader.permission_denied")
    assert finding["data"]["group"] in ("dialout", "20")
    assert "group" in finding["message"]
    assert bytes(emu.received) == b""


@pytest.mark.root
def test_processes_the_agent_may_not_inspect_are_counted_and_not_taken_for_rivals(serial_config):
    """A process of another user (nobody) and an agent without the capabilities to look into it: it is counted
    as unchecked, and the reader is still asked."""
    other = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sleep", "60"])
    try:
        with ReaderEmulator("generic", "healthy") as emu:
            config = serial_config(emu)
            os.chmod(config, 0o644)
            proc = subprocess.run(["setpriv", "--bounding-set", "-sys_ptrace,-dac_override,-dac_read_search",
                                   sys.executable, "-m", "posdiag.agent", "diagnose", "--json", "--only", "reader.serial",
                                   "--config", str(config)], capture_output=True, text=True, cwd=REPO, timeout=30)
    finally:
        other.kill()
        other.wait()
    serial = probe(json.loads(proc.stdout), "reader.serial")
    unknown = next(f for f in serial["findings"] if f["code"] == "reader.holders_unknown")
    assert unknown["severity"] == "info" and re.search(r"^\d+ process(es)? of (another user|other users) could not be "
                                                      r"checked for ", unknown["message"]), unknown
    assert serial["status"] == "ok" and bytes(emu.received), serial


# --- USB inventory ----------------------------------------------------------------------------------

@pytest.fixture
def usb_config(config_file, tmp_path):
    root = terminal_tree(tmp_path / "sys")

    def make(**reader) -> object:
        return config_file(reader={"kind": "usb", "usb": f"{READER['vid']}:{READER['pid']}",
                                   "sysfs_root": str(root), **reader})

    make.root = root
    return make


def test_usb_reader_present_records_a_baseline_then_stays_quiet(usb_config, tmp_path):
    rc, report = reader_report(usb_config())
    assert rc == 0
    assert {"reader.usb_present", "reader.usb_baseline_created"} <= set(codes(report, "reader.usb"))
    baseline = json.loads((tmp_path / "state" / "usb-baseline.json").read_text())
    assert {d["vid"] + ":" + d["pid"] for d in baseline["devices"]} == {"0b00:0084", "04b8:0e15"}
    rc, report = reader_report(usb_config())
    assert "reader.usb_baseline_created" not in codes(report, "reader.usb")
    assert probe(report, "reader.usb")["status"] == "ok"


#: the kernel's view of one USB-serial port, as pyserial reads it: /sys/class/tty/<tty>/device (a tmpfs of
#: the namespace over the class folder) leading to the test's tree ($1, $2), and the port in /dev
PYSERIAL_VIEW = ('mount -t tmpfs tty /sys/class/tty && mkdir "/sys/class/tty/$2" && ln -s "$1" "/sys/class/tty/$2/device"'
                 ' && mount -t tmpfs dev /dev && mknod -m 666 /dev/null c 1 3 && : > "/dev/$2"')


@pytest.mark.root
def test_without_a_usb_bus_in_sysfs_the_reader_is_found_in_pyserials_port_list_with_its_name(config_file, tmp_path):
    """Where sysfs shows no USB bus, pyserial's list of USB-serial ports is asked instead; the reader is
    found by VID:PID and named by its maker and model, as from sysfs. pyserial reads the kernel's fixed
    paths: the test's tree is shown there in a mount namespace that only this diagnosis sees."""
    iface, tty = device_with_tty(tmp_path / "sys", READER)
    config = config_file(reader={"kind": "usb", "usb": f"{READER['vid']}:{READER['pid']}",
                                 "sysfs_root": str(tmp_path / "no-sysfs")})
    report = diagnose_in_namespace(PYSERIAL_VIEW, str(iface), tty, config=config, only="reader.usb")
    usb = probe(report, "reader.usb")
    assert usb["metrics"]["source"] == "pyserial" and usb["metrics"]["usb_devices"] == 1, usb
    present = next(f for f in usb["findings"] if f["code"] == "reader.usb_present")
    assert "0b00:0084 Ingenico iPP350" in present["message"] and f"{iface.name} ({tty})" in present["message"]
    assert present["data"]["serial"] == READER["serial"]


def test_usb_reader_missing_blames_disconnected(usb_config):
    reader_report(usb_config())
    remove_device(usb_config.root, READER["name"])
    rc, report = reader_report(usb_config())
    assert "reader.usb_missing" in codes(report, "reader.usb")
    assert rc == 2 and top(report) == "reader.disconnected"


def test_new_keyboard_since_baseline_is_a_tamper_fault_named_by_vid_pid_and_path(usb_config):
    reader_report(usb_config())
    add_device(usb_config.root, KEYBOARD)
    rc, report = reader_report(usb_config())
    finding = next(f for f in probe(report, "reader.usb")["findings"] if f["code"] == "reader.usb_new_keyboard")
    assert "1a2c:0e24" in finding["message"] and "1-3" in finding["message"]
    assert finding["severity"] == "fail"
    assert rc == 2 and top(report) == "reader.substituted"


def test_new_hub_since_baseline_is_a_tamper_warning(usb_config):
    reader_report(usb_config())
    add_device(usb_config.root, HUB)
    rc, report = reader_report(usb_config())
    assert "reader.usb_new_hub" in codes(report, "reader.usb")
    assert rc == 1 and top(report) == "reader.substituted"


def test_swapped_usb_reader_with_another_serial_is_substitution(usb_config):
    reader_report(usb_config(expected_serial=READER["serial"]))
    remove_device(usb_config.root, READER["name"])
    add_device(usb_config.root, {**READER, "serial": "PP1000-66666"})
    rc, report = reader_report(usb_config(expected_serial=READER["serial"]))
    assert "reader.serial_mismatch" in codes(report, "reader.usb")
    assert top(report) == "reader.substituted"


@pytest.mark.parametrize(("newcomer", "code"), [
    ({**PRINTER, "name": "1-5", "serial": "X5E4099999"}, "reader.usb_new_device"),
    ({**KEYBOARD, "name": "1-6"}, "reader.usb_new_keyboard"),
    ({**READER, "name": "1-7", "serial": "PP1000-99999", "interfaces": [("02", "01", None), ("0a", "00", "ttyACM1")]},
     "reader.usb_new_device")],
    ids=["second-printer-of-the-same-model", "second-keyboard-of-the-same-model-without-serial",
         "second-device-of-the-readers-model"])
def test_a_second_unit_of_a_known_model_is_a_newcomer(usb_config, tmp_path, newcomer, code):
    """Identity is more than VID:PID: another unit of a model already there (told apart by its serial, or
    by its port when it has none) appeared since the baseline — the reader's own model included."""
    if newcomer["name"] == "1-6":
        add_device(usb_config.root, KEYBOARD)  # the keyboard of the baseline, at its own port
    reader_report(usb_config())
    add_device(usb_config.root, newcomer)
    rc, report = reader_report(usb_config())
    found = [f for f in probe(report, "reader.usb")["findings"] if f["code"] == code]
    assert [f["data"]["path"] for f in found] == [newcomer["name"]], probe(report, "reader.usb")
    assert "reader.usb_present" in codes(report, "reader.usb")


def test_printer_unplugged_is_only_noted(usb_config):
    reader_report(usb_config())
    remove_device(usb_config.root, PRINTER["name"])
    rc, report = reader_report(usb_config())
    assert "reader.usb_gone" in codes(report, "reader.usb") and rc == 0


def test_the_reader_is_matched_by_vendor_and_product_both(usb_config):
    rc, report = reader_report(usb_config(usb=f"{READER['vid']}:0085"))
    assert "reader.usb_missing" in codes(report, "reader.usb") and "reader.usb_present" not in codes(report, "reader.usb")
    rc, report = reader_report(usb_config(usb=f"0b01:{READER['pid']}"))
    assert "reader.usb_missing" in codes(report, "reader.usb")
    rc, report = reader_report(usb_config(usb="0B00:0084"))  # hex in capitals, as lsusb prints some
    assert "reader.usb_present" in codes(report, "reader.usb")


def test_an_unreadable_baseline_is_said_and_recorded_anew(usb_config, tmp_path):
    reader_report(usb_config())
    baseline = tmp_path / "state" / "usb-baseline.json"
    baseline.write_text("{not json")
    rc, report = reader_report(usb_config())
    assert {"reader.usb_baseline_unreadable", "reader.usb_baseline_created"} <= set(codes(report, "reader.usb"))
    assert len(json.loads(baseline.read_text())["devices"]) == 2
    rc, report = reader_report(usb_config())
    usb = probe(report, "reader.usb")
    assert usb["status"] == "ok" and usb["metrics"]["baseline_devices"] == 2 and usb["metrics"]["usb_devices"] == 2


def test_the_usb_baseline_is_kept_in_the_configured_state_folder(usb_config, tmp_path):
    settings = cfg.load(str(usb_config()))
    result = UsbProbe(settings).run()  # no state folder in the probe's context: the configured one
    assert "reader.usb_baseline_created" in [f.code for f in result.findings], result
    assert (Path(settings.daemon.state_dir) / "usb-baseline.json").is_file()


def test_sysfs_lists_devices_not_root_hubs_or_interfaces_with_their_ports_and_kinds(tmp_path):
    """A USB-serial driver puts its ttyUSB right in the interface folder; CDC ACM nests it under tty/."""
    root = terminal_tree(tmp_path / "sys", HUB, KEYBOARD)
    adapter = {**PRINTER, "name": "1-5", "vid": "0403", "pid": "6001", "serial": "FT1", "interfaces": [("ff", "00", None)]}
    add_device(root, adapter)
    (root / "bus" / "usb" / "devices" / "1-5" / "1-5:1.0" / "ttyUSB0").mkdir()
    found = {d.path: (d.ident, d.kind, d.tty) for d in enumerate_sysfs(str(root))}
    assert found == {"1-1": ("0b00:0084", "serial", "ttyACM0"), "1-2": ("04b8:0e15", "other", ""),
                     "1-3": ("1a2c:0e24", "keyboard", ""), "1-4": ("05e3:0608", "hub", ""),
                     "1-5": ("0403:6001", "serial", "ttyUSB0")}
    assert enumerate_sysfs(str(tmp_path / "no-sysfs")) is None


# --- flapping ---------------------------------------------------------------------------------------

@pytest.mark.root
def test_reader_disconnects_in_the_kernel_log_are_flapping(config_file, tmp_path):
    name = f"9-{uuid.uuid4().int % 9000 + 1000}"  # a bus path no real device or earlier run used
    root = tmp_path / "sys"
    terminal_tree(root)
    add_device(root, {**READER, "name": name, "vid": "0b00", "pid": "0085"})
    config = config_file(reader={"kind": "usb", "usb": "0b00:0085", "sysfs_root": str(root)})
    rc, report = reader_report(config)
    assert probe(report, "reader.events")["metrics"]["disconnects"] == 0
    written_at = time.monotonic()
    with open("/dev/kmsg", "w") as kmsg:  # the real kernel log, as the kernel writes these lines
        for n in range(3):
            kmsg.write(f"<6>usb {name}: USB disconnect, device number {10 + n}\n")
            kmsg.flush()
            kmsg.write(f"<6>usb {name}: new full-speed USB device number {11 + n} using xhci_hcd\n")
            kmsg.flush()
    rc, report = reader_report(config)
    events = probe(report, "reader.events")
    assert events["metrics"]["disconnects"] == 3 and events["metrics"]["reconnects"] == 3
    assert "reader.flapping" in codes(report, "reader.events")
    flapping = next(f for f in events["findings"] if f["code"] == "reader.flapping")
    last = re.search(r", last (\d+) min ago$", flapping["message"])  # how long ago, counted back from now
    assert last and int(last.group(1)) <= round((time.monotonic() - written_at) / 60), flapping["message"]
    assert rc == 1 and top(report) == "reader.disconnected"


def test_a_serial_reader_is_known_in_the_kernel_log_by_its_tty_and_its_own_usb_path_only(config_file, tmp_path):
    """The kernel says "usb 1-7: USB disconnect" of the reader behind /dev/ttyACM5: the USB path whose
    tty the port is counts as the reader, the printer's beside it on ttyACM6 never does."""
    from posdiag.core import settings as config
    from posdiag.probes.reader.events import EventsProbe

    root = tmp_path / "sys"
    terminal_tree(root)
    add_device(root, {**READER, "name": "1-7", "interfaces": [("02", "00", "ttyACM5")]})
    add_device(root, {**PRINTER, "name": "1-8", "interfaces": [("02", "00", "ttyACM6")]})
    path = config_file(reader={"kind": "serial", "port": "/dev/ttyACM5", "sysfs_root": str(root)})
    assert EventsProbe(config.load(str(path))).identities() == ["ttyACM5", "1-7"]


@pytest.mark.root
@pytest.mark.parametrize(("disconnects", "flapping"), [(3, True), (2, False)])
def test_flapping_starts_at_the_threshold_of_disconnects(config_file, tmp_path, disconnects, flapping):
    """flap_threshold = 3: three disconnects in the window are flapping, two are not."""
    name = f"9-{uuid.uuid4().int % 9000 + 1000}"
    root = tmp_path / "sys"
    terminal_tree(root)
    add_device(root, {**READER, "name": name, "vid": "0b00", "pid": "0086"})
    config = config_file(reader={"kind": "usb", "usb": "0b00:0086", "sysfs_root": str(root), "flap_threshold": 3})
    with open("/dev/kmsg", "w") as kmsg:
        for n in range(disconnects):
            kmsg.write(f"<6>usb {name}: USB disconnect, device number {20 + n}\n")
            kmsg.flush()
    rc, report = reader_report(config)
    assert probe(report, "reader.events")["metrics"]["disconnects"] == disconnects
    assert ("reader.flapping" in codes(report, "reader.events")) is flapping


def test_a_pty_of_the_same_number_in_a_containers_own_devpts_is_not_a_holder(serial_config, tmp_path):
    """A container with a devpts of its own has a /dev/pts/N too: its processes holding that one (an
    agetty, say) neither hold our reader's port nor are its bridge."""
    import re
    import subprocess
    import sys

    script = tmp_path / "hold.py"
    script.write_text("import os, pty, sys, time\nkeep = [pty.openpty() for _ in range(int(sys.argv[1]) + 1)]\n"
                      "print(os.ttyname(keep[-1][1]), flush=True)\ntime.sleep(60)\n")
    with ReaderEmulator("generic", "healthy") as emu:
        number = int(re.search(r"\d+$", emu.path).group(0))
        other = subprocess.Popen(["unshare", "--mount", "sh", "-c", "mount -t devpts -o newinstance,ptmxmode=0666 devpts "
                                  f"/dev/pts && mount --bind /dev/pts/ptmx /dev/ptmx && exec {sys.executable} {script} "
                                  f"{number}"], stdout=subprocess.PIPE, text=True)
        try:
            assert other.stdout.readline().strip() == emu.path  # the same path, another pty
            rc, report = reader_report(serial_config(emu))
        finally:
            other.kill()
            other.wait()
    serial = next(p for p in report["probes"] if p["name"] == "reader.serial")
    assert serial["status"] == "ok" and [f["code"] for f in serial["findings"]] == [], serial


@pytest.mark.parametrize(("age_min", "flapping"), [(9, True), (11, False)], ids=["within-the-window", "older"])
def test_a_disconnect_counts_towards_flapping_only_within_the_window(usb_config, tmp_path, age_min, flapping):
    """A kernel log of one record in /dev/kmsg's format (its time on the monotonic clock), ``age_min`` old,
    against a 10-minute window and a threshold of one disconnect."""
    log = tmp_path / "kmsg.reader"
    log.write_text(f"6,1,{int((time.monotonic() - age_min * 60) * 1e6)},-;usb {READER['name']}: USB disconnect, "
                   "device number 10\n")
    rc, report = reader_report(usb_config(kernel_log=str(log), flap_window_min=10, flap_threshold=1))
    events = probe(report, "reader.events")
    assert events["metrics"]["disconnects"] == int(flapping) and events["metrics"]["window_min"] == 10
    assert ("reader.flapping" in codes(report, "reader.events")) is flapping, events
    if flapping:
        assert events["findings"][0]["message"] == (f"the reader ({READER['name']}) disconnected 1 time in the last "
                                                    f"10 min, last {age_min} min ago")


@pytest.mark.parametrize(("record", "disconnects", "reconnects"), [
    (f"usb {READER['name']}: new full-speed USB device number 11 using xhci_hcd", 0, 1),
    (f"usb {PRINTER['name']}: USB disconnect, device number 10", 0, 0),
    (f"usb {PRINTER['name']}: new full-speed USB device number 11 using xhci_hcd", 0, 0),
    (f"cdc_acm {READER['name']}:1.0: ttyACM0: USB ACM device", 0, 1),
], ids=["the-reader-back", "the-printer-gone", "the-printer-back", "the-readers-tty-back"])
def test_only_the_readers_own_records_are_counted_as_its_disconnects_and_reconnects(usb_config, tmp_path, record,
                                                                                     disconnects, reconnects):
    log = tmp_path / "kmsg.reader"
    log.write_text(f"6,1,{int((time.monotonic() - 60) * 1e6)},-;{record}\n")
    rc, report = reader_report(usb_config(kernel_log=str(log), flap_window_min=10, flap_threshold=1))
    events = probe(report, "reader.events")
    assert (events["metrics"]["disconnects"], events["metrics"]["reconnects"]) == (disconnects, reconnects), events
    assert events["status"] == "ok" and events["summary"] == f"0 disconnects of {READER['name']} in 10 min"


def test_a_usb_reader_is_known_in_the_kernel_log_by_the_usb_path_of_its_model_only(usb_config):
    assert EventsProbe(cfg.load(str(usb_config(usb="0B00:0084")))).identities() == [READER["name"]]
    assert EventsProbe(cfg.load(str(usb_config(usb="0b00:0085")))).identities() == []


def test_without_a_kernel_log_reader_flapping_is_not_checked_and_said_so(usb_config, tmp_path):
    rc, report = reader_report(usb_config(kernel_log=str(tmp_path / "no-kmsg")))
    events = probe(report, "reader.events")
    assert [(f["code"], f["severity"]) for f in events["findings"]] == [("reader.kernel_log_missing", "info")], events
    assert events["summary"] == "no kernel log" and events["status"] == "ok"


@pytest.mark.root
def test_a_kernel_log_the_agent_may_not_read_is_said_so(usb_config, tmp_path):
    """A root without the capability to override file permissions, as a hardened service runs, and a
    kernel log only its owner may read (another user's)."""
    log = tmp_path / "kmsg.private"
    log.write_text("")
    os.chown(log, 65534, 65534)
    log.chmod(0o600)
    config = usb_config(kernel_log=str(log))
    proc = subprocess.run(["setpriv", "--bounding-set", "-dac_override,-dac_read_search", sys.executable, "-m",
                           "posdiag.agent", "diagnose", "--json", "--only", "reader.events", "--config", str(config)],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    events = probe(json.loads(proc.stdout), "reader.events")
    assert [(f["code"], f["severity"]) for f in events["findings"]] == [("reader.kernel_log_denied", "info")], events
    assert events["summary"] == "kernel log not readable"


@pytest.mark.parametrize(("interfaces", "code", "kind"), [
    ([("03", "02", None)], "reader.usb_new_device", "hid"),  # a mouse
    ([("ff", "00", "ttyUSB0")], "reader.usb_new_device", "serial"),  # a USB-serial adapter
    ([("03", "02", None), ("03", "01", None)], "reader.usb_new_keyboard", "keyboard"),  # a mouse that types too
    ([("ff", "ff", None)], "reader.usb_new_device", "other")],
    ids=["mouse", "serial-adapter", "mouse-with-a-keyboard-interface", "vendor-specific"])
def test_a_newcomer_is_judged_by_what_its_interfaces_say_it_is(usb_config, interfaces, code, kind):
    reader_report(usb_config())
    add_device(usb_config.root, {**KEYBOARD, "name": "1-8", "vid": "dead", "pid": "beef", "interfaces": interfaces})
    rc, report = reader_report(usb_config())
    [found] = [f for f in probe(report, "reader.usb")["findings"] if f["data"].get("path") == "1-8"]
    assert (found["code"], found["data"]["device_kind"]) == (code, kind), found


def test_a_reader_that_reports_no_serial_is_not_taken_for_another(usb_config):
    """A serial number on file, and the reader at the configured VID:PID reports none: nothing to compare."""
    remove_device(usb_config.root, READER["name"])
    add_device(usb_config.root, {**READER, "serial": ""})
    rc, report = reader_report(usb_config(expected_serial=READER["serial"]))
    assert "reader.serial_mismatch" not in codes(report, "reader.usb") and "reader.usb_present" in codes(report, "reader.usb")
