"""The transaction-log probe on real log files, and the follower that tails them like ``tail -F``."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta

import pytest
from labs.commands import run_cli
from labs.helpers import unwrapped
from posdiag.agent.logfollow import LogFollower


def stamp(seconds_ago: float = 0) -> str:
    return (datetime.now() - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%d %H:%M:%S")


def line(code: str = "0", rc: str | None = None, ago: float = 0, txn: int = 1, amount: str = "12.50") -> str:
    return f"{stamp(ago)} txn={txn} amount={amount} code={code}" + (f" rc={rc}" if rc else "") + "\n"


def diagnose_log(config_file, tmp_path, lines: list[str], **txlog) -> tuple[int, dict]:
    log = tmp_path / "pos.log"
    log.write_text("".join(lines))
    config = config_file(txlog={"path": str(log), **txlog})
    rc, out, err = run_cli("diagnose", "--json", "--only", "txlog", "--config", str(config))
    assert rc != 3, err
    return rc, json.loads(out)


def findings(report: dict) -> dict[str, dict]:
    return {f["code"]: f for f in report["probes"][0]["findings"]}


@pytest.mark.parametrize("codes,finding,cause", [
    (["51", "05", "51", "61"], "txlog.declines", "account.declined"),
    (["55", "55", "75"], "txlog.input_errors", "operator.input"),
    (["30", "30", "12"], "txlog.format_errors", "data.format"),
    (["91", "96", "91"], "txlog.host_errors", "host.service_down"),
], ids=["declines", "pin-errors", "format-errors", "host-outage"])
def test_response_codes_point_at_whose_fault_it_is(config_file, tmp_path, codes, finding, cause):
    lines = [line("2824", rc, ago=60 * (i + 1), txn=i) for i, rc in enumerate(codes)]
    rc, report = diagnose_log(config_file, tmp_path, lines)
    found = findings(report)
    assert found[finding]["data"]["count"] == len(codes)
    assert found["txlog.errors_2824"]["data"]["count"] == len(codes)
    assert report["diagnosis"]["causes"][0]["id"] == cause


def test_repeated_identical_attempts_within_seconds_are_operator_input(config_file, tmp_path):
    lines = [line("2824", ago=30 - i * 3, txn=7) for i in range(4)]
    rc, report = diagnose_log(config_file, tmp_path, lines)
    assert findings(report)["txlog.repeated_attempts"]["data"]["count"] == 3
    assert report["diagnosis"]["causes"][0]["id"] == "operator.input"


#: ISO 8583 field 39 codes and whose outcome each is: the issuer's account decision, the operator's or
#: cardholder's input, a malformed message, the host or the network
RESPONSE_CODES = {"txlog.declines": "05 14 41 43 51 54 57 61 62 65", "txlog.input_errors": "13 17 19 55 75",
                  "txlog.format_errors": "12 30", "txlog.host_errors": "68 91 92 96"}


@pytest.mark.parametrize(("response", "finding"), [(code, finding) for finding, codes in RESPONSE_CODES.items()
                                                   for code in codes.split()])
def test_each_response_code_is_counted_in_its_own_kind(config_file, tmp_path, response, finding):
    rc, report = diagnose_log(config_file, tmp_path, [line("2824", response, ago=60)])
    assert [c for c in findings(report) if c in RESPONSE_CODES] == [finding]


def test_an_approval_and_an_unlisted_code_are_counted_in_no_kind(config_file, tmp_path):
    rc, report = diagnose_log(config_file, tmp_path, [line("0", "00", ago=90), line("2824", "01", ago=60)])
    assert not [c for c in findings(report) if c in RESPONSE_CODES]


@pytest.mark.parametrize(("attempts", "gap_s", "repeated"), [(3, 3, True), (2, 3, False), (3, 10, True), (3, 11, False)],
                         ids=["3-attempts", "2-attempts-are-one-repeat", "10-s-apart", "11-s-apart"])
def test_identical_attempts_count_from_two_repeats_within_ten_seconds(config_file, tmp_path, attempts, gap_s, repeated):
    base = datetime.now() - timedelta(seconds=120)
    lines = [f"{(base + timedelta(seconds=i * gap_s)).strftime('%Y-%m-%d %H:%M:%S')} txn=7 amount=12.50 code=2824\n"
             for i in range(attempts)]
    rc, report = diagnose_log(config_file, tmp_path, lines)
    assert ("txlog.repeated_attempts" in findings(report)) is repeated, findings(report)


def test_a_line_whose_time_cannot_be_read_counts_as_recent_and_is_said(config_file, tmp_path):
    """Better a 2824 counted than one lost: a stamp that does not parse is taken as now, and the probe says so."""
    lines = ["someday soon txn=3 amount=9.99 code=2824 rc=91\n", line("0", "00", ago=30)]
    rc, report = diagnose_log(config_file, tmp_path, lines)
    found = findings(report)
    assert found["txlog.undated"]["severity"] == "info"
    assert found["txlog.errors_2824"]["data"]["count"] == 1 and found["txlog.host_errors"]["data"]["count"] == 1


def test_only_the_window_counts(config_file, tmp_path):
    lines = [line("2824", "51", ago=3 * 3600), line("0", "00", ago=10)]
    rc, report = diagnose_log(config_file, tmp_path, lines, window_min=15)
    assert "txlog.declines" not in findings(report)
    assert report["probes"][0]["metrics"]["errors_2824"] == 0
    assert rc == 0


@pytest.mark.parametrize(("minutes_ago", "counted"), [(14, True), (16, False)], ids=["inside-15-min", "outside-15-min"])
def test_the_window_is_window_min_minutes_back_from_now(config_file, tmp_path, minutes_ago, counted):
    rc, report = diagnose_log(config_file, tmp_path, [line("2824", "91", ago=minutes_ago * 60)], window_min=15)
    assert report["probes"][0]["metrics"]["errors_2824"] == (1 if counted else 0)
    assert ("txlog.host_errors" in findings(report)) is counted


def test_the_quoted_2824_line_is_the_last_and_cut_at_500_characters(config_file, tmp_path):
    long = line("2824", "91", ago=60, txn=2).replace(" amount=", " note=" + "x" * 600 + " amount=")
    rc, report = diagnose_log(config_file, tmp_path, [line("2824", "91", ago=120, txn=1), long])
    quoted = findings(report)["txlog.errors_2824"]["data"]["last_line"]
    assert len(quoted) == 500 and quoted.startswith(long[:19]) and "txn=2 note=xxx" in quoted


@pytest.mark.parametrize("lines", [[], ["completely different format\n", line("0", "00")]], ids=["empty-log", "one-match"])
def test_a_log_with_no_line_or_one_that_matches_is_not_said_to_match_nothing(config_file, tmp_path, lines):
    rc, report = diagnose_log(config_file, tmp_path, lines)
    assert "txlog.unparsed" not in findings(report) and rc == 0


@pytest.mark.parametrize("fmt", ["%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S",
                                 "%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z", "%d.%m.%Y %H:%M:%S", "%d/%m/%Y %H:%M:%S"])
def test_every_stamp_a_pos_writes_is_read_so_an_old_2824_stays_out_of_the_window(config_file, tmp_path, fmt):
    """Day first (06.12.2026, 06/12/2026) as European tills write it, ISO with a T, with fractions, with
    an offset: a 2824 of three hours ago is out of a 15-minute window, one of 30 seconds ago is in."""
    def at(seconds_ago: float) -> str:
        return (datetime.now().astimezone() - timedelta(seconds=seconds_ago)).strftime(fmt)

    lines = [f"{at(3 * 3600)} txn=1 amount=9.99 code=2824 rc=91\n", f"{at(30)} txn=2 amount=9.99 code=2824 rc=91\n"]
    one_token = r"^(?P<ts>\S+) .*?code=(?P<code>\d+)(?: .*?rc=(?P<response>\w\w))?"
    rc, report = diagnose_log(config_file, tmp_path, lines, window_min=15, **({} if " " in fmt else {"pattern": one_token}))
    found = findings(report)
    assert "txlog.undated" not in found, found
    assert report["probes"][0]["metrics"]["errors_2824"] == 1


def test_garbage_bytes_and_unmatched_lines_do_not_break_the_probe(config_file, tmp_path):
    log = tmp_path / "pos.log"
    log.write_bytes(b"\xff\xfe garbage \x00\x81\n" + line("2824", "91").encode() + b"half a line without newl")
    config = config_file(txlog={"path": str(log)})
    rc, out, _ = run_cli("diagnose", "--json", "--only", "txlog", "--config", str(config))
    report = json.loads(out)
    assert report["probes"][0]["status"] == "warn"
    assert "txlog.host_errors" in findings(report)


#: what a POS application writes beside the codes: every shape of card data the mask knows, and the name
#: of a secret with no value of its own before the code (``online PIN: code=2824``)
CARD_DATA = ["pan=4111111111111111", "card 5500 0000 0000 0004", "t2=;5105105105105100=28121015432112345678?",
             "t1=%B4000056655665556^PRIVACY/TESTER^2812101987654321?", "cvv=7351", "pinblock=8A3F1C2D4E5B6A79",
             "online PIN:", "emv 57134761739001010119D28122011143804400000F", "token:", "card 41111111 11111111 password:",
             "pan=3400-000000-00009"]


def test_codes_are_counted_from_masked_lines_as_from_clean_ones(config_file, tmp_path):
    """Masking must not cost the diagnosis: the same transactions, with card data between their fields,
    give the same counts, findings and cause; the line quoted as evidence is masked."""
    codes = ["91", "96", "91", "05", "51", "30", "55", "91", "91", "91", "55"]
    clean = [line("2824", rc, ago=60 * (i + 1), txn=i) for i, rc in enumerate(codes)]
    dirty = [text.replace(" code=", f" {CARD_DATA[i]} code=") for i, text in enumerate(clean)]
    _, plain_report = diagnose_log(config_file, tmp_path, clean)
    _, masked_report = diagnose_log(config_file, tmp_path, dirty)
    plain, masked = findings(plain_report), findings(masked_report)
    assert {c: f["data"].get("count") for c, f in masked.items()} == {c: f["data"].get("count") for c, f in plain.items()}
    assert masked["txlog.errors_2824"]["data"]["count"] == len(codes)
    assert masked["txlog.host_errors"]["data"]["codes"] == {"91": 5, "96": 1}
    assert masked["txlog.input_errors"]["data"]["codes"] == {"55": 2}
    assert masked_report["diagnosis"]["causes"][0]["id"] == plain_report["diagnosis"]["causes"][0]["id"]
    quoted = masked["txlog.errors_2824"]["data"]["last_line"]
    assert quoted.endswith("txn=10 amount=12.50 pan=3400-00****-*0009 code=2824 rc=55")  # the last in the file
    text = json.dumps(masked_report)
    for secret in ("4111111111111111", "5105105105105100", "28121015432112345678", "PRIVACY/TESTER", "7351",
                   "8A3F1C2D4E5B6A79", "0000 0000", "000000-0", "4761739001010119", "41111111 11111111"):
        assert secret not in text


def test_log_that_matches_nothing_says_the_pattern_is_wrong(config_file, tmp_path):
    rc, report = diagnose_log(config_file, tmp_path, ["completely different format\n"] * 3)
    assert "txlog.unparsed" in findings(report)


# --- the follower --------------------------------------------------------------------------------

def test_follower_starts_at_the_end_and_returns_new_complete_lines(tmp_path):
    log = tmp_path / "pos.log"
    log.write_text("old line\n")
    f = LogFollower(str(log))
    assert f.poll() == []
    with open(log, "a") as fh:
        fh.write("new one\nhalf")
    assert f.poll() == ["new one"]
    with open(log, "a") as fh:
        fh.write(" done\n")
    assert f.poll() == ["half done"]


def test_follower_survives_rotation_and_reads_the_new_file_from_its_start(tmp_path):
    log = tmp_path / "pos.log"
    log.write_text("")
    f = LogFollower(str(log))
    f.poll()
    with open(log, "a") as fh:
        fh.write("before rotation\n")
    os.rename(log, tmp_path / "pos.log.1")
    with open(tmp_path / "pos.log.1", "a") as fh:
        fh.write("late write to the old file\n")
    assert f.poll() == ["before rotation", "late write to the old file"]
    log.write_text("first in new file\n")
    assert f.poll() == ["first in new file"]


def test_follower_handles_truncation_in_place(tmp_path):
    log = tmp_path / "pos.log"
    log.write_text("a long first line that makes the file big\n")
    f = LogFollower(str(log))
    f.poll()
    with open(log, "r+") as fh:
        fh.truncate(0)
    with open(log, "a") as fh:
        fh.write("after truncate\n")
    assert f.poll() == ["after truncate"]


def test_follower_reads_a_log_created_after_it_started_from_the_beginning(tmp_path):
    log = tmp_path / "later.log"
    f = LogFollower(str(log))
    assert f.poll() == []
    log.write_text("one\ntwo\n")
    assert f.poll() == ["one", "two"]


def test_follower_replaces_undecodable_bytes(tmp_path):
    log = tmp_path / "pos.log"
    log.write_bytes(b"")
    f = LogFollower(str(log))
    f.poll()
    with open(log, "ab") as fh:
        fh.write(b"caf\xe9 code=2824\n")
    assert f.poll() == ["caf\ufffd code=2824"]


# --- the POS log as evidence of the symptom -------------------------------------------------------

def six_2824s_in_six_minutes() -> list[str]:
    return [line("2824", ago=60 * (i + 0.5), txn=100 + i) for i in range(6)]


def test_2824s_with_nothing_else_configured_are_never_healthy(config_file, tmp_path):
    log = tmp_path / "pos.log"
    log.write_text("".join(six_2824s_in_six_minutes()))
    config = config_file(txlog={"path": str(log)})
    rc, out, err = run_cli("diagnose", "--json", "--config", str(config))
    report = json.loads(out)
    assert rc == 1 and report["diagnosis"]["verdict"] == "degraded"
    top = report["diagnosis"]["causes"][0]
    assert top["id"] == "host.upstream"
    assert top["certainty"] <= 0.6  # network and reader were never checked
    assert "txlog: 6 transactions failed with 2824 in the last 15 min" in top["evidence"]
    assert "checked and passed: memory, disk, system, clock" in top["evidence"]
    assert "not checked: network — no payment host configured ([[payment_hosts]])" in top["evidence"]
    rc, out, _ = run_cli("diagnose", "--format", "nagios", "--config", str(config))
    assert rc == 1 and out.startswith("POSDIAG WARNING - host.upstream (")


def test_2824s_beyond_a_clean_terminal_read_in_both_languages(config_file, tmp_path):
    log = tmp_path / "pos.log"
    log.write_text("".join(six_2824s_in_six_minutes()))
    config = config_file(txlog={"path": str(log)})
    rc, out, _ = run_cli("diagnose", "--config", str(config))
    assert rc == 1 and "Verdict: DEGRADED" in out
    top = "Most likely cause: Payments fail beyond the terminal: escalate to the acquirer  [host.upstream"
    assert unwrapped(top) in unwrapped(out)
    # network and reader were never checked: checking them comes before escalating
    assert unwrapped("  1. Configure what was not checked (network, card reader)") in unwrapped(out)
    assert unwrapped("  2. Escalate to the acquirer's help desk now with this report") in unwrapped(out)
    rc, out, _ = run_cli("diagnose", "--lang", "zh_CN", "--config", str(config))
    assert rc == 1 and "结论：性能下降" in out
    assert unwrapped("最可能的原因：服务器故障：支付在终端以外失败，请升级给收单机构  [host.upstream") in unwrapped(out)
    assert unwrapped("  - 未检查：网络 — ") in unwrapped(out)
    assert unwrapped("  1. 先配置未检查的项目（网络，读卡器）") in unwrapped(out) and "各项检查都通过" not in unwrapped(out)


def test_2824s_on_a_terminal_with_a_fault_of_its_own_are_its_consequence(config_file, tmp_path):
    lines = six_2824s_in_six_minutes()
    rc, report = diagnose_log(config_file, tmp_path, lines + [line("2824", "55", ago=30, txn=7),
                                                             line("2824", "55", ago=20, txn=8)])
    top = report["diagnosis"]["causes"][0]
    assert top["id"] == "operator.input"
    assert "host.upstream" not in [c["id"] for c in report["diagnosis"]["causes"]]
    assert any("failed with 2824" in c for c in top["consequences"])


def test_response_codes_weigh_by_how_often_they_occur(config_file, tmp_path):
    # five 2824s: host errors 91, 96, 91 and one format error 30 (and one without a code)
    responses = ["91", "96", None, "91", "30"]
    lines = [line("2824", rc, ago=60 * (i + 1), txn=i) for i, rc in enumerate(responses)]
    rc, report = diagnose_log(config_file, tmp_path, lines)
    found = findings(report)
    assert found["txlog.host_errors"]["data"]["count"] == 3 and found["txlog.host_errors"]["data"]["classified"] == 4
    ranked = [c["id"] for c in report["diagnosis"]["causes"]]
    assert ranked[0] == "host.service_down"
    assert ranked.index("data.format") > ranked.index("host.service_down")


@pytest.mark.parametrize(("gaps", "repeats"), [((3.0, 3.0), 2), ((-3.0, -3.0), 0), ((0.0, 0.0), 2), ((10.0, -0.5), 1)],
                         ids=["seconds-apart", "going-back-in-time", "the-same-second", "forward-then-back"])
def test_identical_attempts_count_as_repeats_only_going_forward_in_time(gaps, repeats):
    """A log whose lines go back in time (a clock set back, lines merged from two files) holds no repeated swipe."""
    from posdiag.probes.txlog import TxEvent, repeated_attempts

    times = [1000.0]
    for gap in gaps:
        times.append(times[-1] + gap)
    events = [TxEvent(t, "2824", "", "SALE 12.50 EUR terminal 3") for t in times]
    assert repeated_attempts(events) == repeats


def test_only_the_last_four_mib_of_a_log_are_read_and_the_line_cut_there_is_dropped(tmp_path):
    from posdiag.probes.txlog import read_tail

    log = tmp_path / "tx.log"
    line = "2026-12-06 10:00:00 code=0 SALE 12.50 EUR\n"  # 42 bytes
    with open(log, "w") as f:
        f.write("2026-12-06 09:00:00 code=2824 the oldest line\n")
        f.write(line * (4 * 1024 * 1024 // len(line) + 1))
    lines = read_tail(str(log))
    assert [seen for seen in lines if seen != line.rstrip("\n")] == []  # (small values: a failure reads at once)
    assert len(lines) == 4 * 1024 * 1024 // len(line)  # whole lines of the last 4 MiB: the one cut at its start is not


@pytest.mark.parametrize(("events", "repeats"), [
    ([(1000.0, "SALE 12.50"), (1003.0, "SALE 99.00"), (1006.0, "SALE 12.50")], 0),
    ([(None, "SALE 12.50"), (1003.0, "SALE 12.50"), (1006.0, "SALE 12.50")], 1),
    ([(1000.0, "SALE 12.50"), (None, "SALE 12.50"), (1006.0, "SALE 12.50")], 0),
    ([(1000.0, "SALE 12.50"), (1010.0, "SALE 12.50"), (1020.5, "SALE 12.50")], 1),
], ids=["other-attempts-between", "first-undated", "middle-undated", "ten-seconds-then-ten-and-a-half"])
def test_a_repeat_is_the_same_attempt_dated_and_at_most_ten_seconds_after_the_one_before(events, repeats):
    from posdiag.probes.txlog import TxEvent, repeated_attempts

    assert repeated_attempts([TxEvent(ts, "2824", "05", rest) for ts, rest in events]) == repeats
