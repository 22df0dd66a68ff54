"""The transaction-log follower and probe against what a till's file system can throw at them:
a FIFO, a symlink to /dev/zero, a directory, a line of a gigabyte, a storm of rotations, and a file
truncated and regrown between two polls. Real files, FIFOs and devices; no mocks."""

from __future__ import annotations

import json
import os
import resource
import threading
import time

import pytest
from labs.commands import run_cli
from posdiag.agent import logfollow
from posdiag.agent.logfollow import LogFollower


def swap_for_symlink(path, target) -> None:
    """Replace ``path`` atomically by a symlink to ``target`` (``ln -sf T L.new && mv -T L.new L``)."""
    tmp = f"{path}.new-link"
    os.symlink(target, tmp)
    os.replace(tmp, path)


def test_fifo_is_never_opened_for_reading_and_is_named(tmp_path):
    fifo = tmp_path / "pos.log"
    os.mkfifo(fifo)
    follower = LogFollower(str(fifo))
    started = time.monotonic()
    assert follower.poll() == []  # would block in open() forever on a FIFO opened blocking
    assert time.monotonic() - started < 10  # returned at all: a blocking open() never would
    assert "FIFO" in follower.problem


def test_symlink_to_dev_zero_is_not_read_and_the_regular_file_put_back_is(tmp_path):
    log = tmp_path / "pos.log"
    log.write_text("")
    follower = LogFollower(str(log))
    follower.poll()
    os.rename(log, tmp_path / "pos.log.real")
    swap_for_symlink(log, "/dev/zero")
    for _ in range(5):
        assert follower.poll() == []
    assert "character device" in follower.problem
    (tmp_path / "pos.log.new").write_text("2026-11-30 10:00:00 txn=1 code=2824\n")
    os.replace(tmp_path / "pos.log.new", log)  # the regular file is back
    assert follower.poll() == ["2026-11-30 10:00:00 txn=1 code=2824"]
    assert follower.problem is None


def test_directory_is_a_problem_not_a_read(tmp_path):
    (tmp_path / "pos.log").mkdir()
    follower = LogFollower(str(tmp_path / "pos.log"))
    assert follower.poll() == [] and "directory" in follower.problem


def test_a_gigabyte_line_is_cut_and_memory_stays_bounded(tmp_path):
    log = tmp_path / "pos.log"
    log.write_text("")
    follower = LogFollower(str(log))
    follower.poll()
    with open(log, "r+b") as fh:  # a sparse gigabyte without a newline, then one real line
        fh.truncate(1 << 30)
        fh.seek(0, os.SEEK_END)
        fh.write(b"\n2026-11-30 10:00:00 txn=2 code=2824\n")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    lines: list[str] = []
    polls = 0
    while not any("code=2824" in line for line in lines):
        got = follower.poll()
        polls += 1
        assert sum(len(x) for x in got) <= logfollow.MAX_POLL_BYTES
        assert len(follower.current.partial) <= logfollow.MAX_LINE
        lines += got
        assert polls < 2000
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert grown_mb < 20, f"RSS grew {grown_mb:.0f} MB following a 1 GB line"
    assert polls >= (1 << 30) // logfollow.MAX_POLL_BYTES  # bounded bytes per poll
    assert lines[-1] == "2026-11-30 10:00:00 txn=2 code=2824"
    assert len(lines) == 2 and len(lines[0]) == logfollow.MAX_LINE  # the cut head of the long line, once


def test_rotation_storm_loses_no_complete_line(tmp_path):
    """50 renames in 5 s while a writer appends 200 lines/s and the follower polls as the daemon does."""
    log = tmp_path / "pos.log"
    log.write_text("")
    follower = LogFollower(str(log))
    follower.poll()
    written: list[str] = []
    done = threading.Event()

    def writer() -> None:
        i = 0
        while not done.is_set():
            text = f"2026-11-30 10:00:00 txn={i} code=2824"
            with open(log, "a") as fh:
                fh.write(text + "\n")
            written.append(text)
            i += 1
            time.sleep(0.005)

    def rotator() -> None:  # as logrotate does: rename, then create the new log
        for n in range(50):
            time.sleep(0.1)
            os.rename(log, tmp_path / f"pos.log.{n}")
            log.touch()

    threads = [threading.Thread(target=writer), threading.Thread(target=rotator)]
    for t in threads:
        t.start()
    seen: list[str] = []
    while threads[1].is_alive():
        seen += follower.poll()
        time.sleep(0.2)
    done.set()
    threads[0].join()
    for _ in range(3):
        seen += follower.poll()
    assert len(list(tmp_path.glob("pos.log.*"))) == 50
    assert len(written) > 300
    missing = [line for line in written if line not in set(seen)]
    assert not missing, f"{len(missing)} of {len(written)} lines missed, e.g. {missing[:3]}; " + where(tmp_path, missing)
    assert len(seen) == len(written)  # and none read twice


def where(folder, lines: list[str]) -> str:
    """Which files hold ``lines`` (to tell a follower bug from a test bug when the storm test fails)."""
    wanted, found = set(lines), {}
    for path in sorted(folder.iterdir()):
        hits = [x for x in path.read_text().splitlines() if x in wanted]
        if hits:
            found[f"{path.name} (inode {path.stat().st_ino})"] = len(hits)
    return f"they are in {found}"


def test_truncate_and_regrow_within_one_poll_is_read_from_the_start(tmp_path):
    log = tmp_path / "pos.log"
    log.write_text("")
    follower = LogFollower(str(log))
    follower.poll()
    with open(log, "a") as fh:
        fh.write("2026-11-30 09:00:00 txn=1 code=0\n")
    assert follower.poll() == ["2026-11-30 09:00:00 txn=1 code=0"]
    with open(log, "w") as fh:  # truncated, and longer than before by the next poll
        fh.write("2026-11-30 10:00:00 txn=2 code=2824 after truncation\n2026-11-30 10:00:01 txn=3 code=0\n")
    assert follower.poll() == ["2026-11-30 10:00:00 txn=2 code=2824 after truncation",
                               "2026-11-30 10:00:01 txn=3 code=0"]


def test_txlog_probe_names_a_fifo_or_device_and_blames_the_configuration(config_file, tmp_path):
    fifo = tmp_path / "pos.fifo"
    os.mkfifo(fifo)
    swap_for_symlink(tmp_path / "pos.log", "/dev/zero")
    for path, kind in ((fifo, "FIFO"), (tmp_path / "pos.log", "character device")):
        started = time.monotonic()
        rc, out, err = run_cli("diagnose", "--json", "--only", "txlog", "--config",
                               str(config_file(txlog={"path": str(path)})))
        assert time.monotonic() - started < 5, "the probe blocked on the txlog"
        report = json.loads(out)
        finding = report["probes"][0]["findings"][0]
        assert finding["code"] == "txlog.not_regular" and kind in finding["message"]
        assert report["diagnosis"]["causes"][0]["id"] == "config.invalid"


def test_config_check_refuses_a_txlog_that_is_not_a_regular_file(config_file, tmp_path):
    fifo = tmp_path / "pos.fifo"
    os.mkfifo(fifo)
    rc, _, err = run_cli("config", "check", "--config", str(config_file(txlog={"path": str(fifo)})))
    assert rc == 3 and "txlog.path" in err and "FIFO" in err


def test_a_writer_that_keeps_the_rotated_file_open_is_still_heard(tmp_path):
    log = tmp_path / "pos.log"
    log.write_text("")
    follower = LogFollower(str(log))
    follower.poll()
    with open(log, "a") as old:  # the POS application holds its log open across the rename
        os.rename(log, tmp_path / "pos.log.1")
        log.write_text("first in the new file\n")
        assert follower.poll() == ["first in the new file"]  # the old file finished, the new one read
        old.write("2026-11-30 10:00:00 txn=9 code=2824 written late to the old file\n")
        old.flush()
    assert follower.poll() == ["2026-11-30 10:00:00 txn=9 code=2824 written late to the old file"]


@pytest.mark.parametrize(("after_s", "heard"), [(1.9, True), (2.1, False)])
def test_a_rotated_file_is_listened_to_for_two_seconds_more(tmp_path, monkeypatch, after_s, heard):
    """A rotated file is still read by the polls within LINGER_S (2 s) of the move: a line its writer adds
    then is heard; after that the file is closed. The follower's clock is the test's: no waiting."""
    now = [1000.0]
    monkeypatch.setattr(logfollow.time, "monotonic", lambda: now[0])
    log = tmp_path / "pos.log"
    log.write_text("")
    follower = LogFollower(str(log))
    follower.poll()
    with open(log, "a") as old:
        os.rename(log, tmp_path / "pos.log.1")
        log.write_text("")
        assert follower.poll() == []  # the old file read to its end, then listened to
        now[0] += after_s
        assert follower.poll() == []
        old.write("late line in the old file\n")
        old.flush()
        assert follower.poll() == (["late line in the old file"] if heard else [])
    now[0] += 5
    follower.poll()
    assert follower.lingering == []  # given up in the end: no descriptor kept for ever
    follower.close()


@pytest.mark.parametrize(("length", "kept"), [(64 * 1024, 64 * 1024), (64 * 1024 + 1, 64 * 1024)])
def test_a_line_is_kept_whole_up_to_64_kib_and_cut_there(tmp_path, length, kept):
    log = tmp_path / "pos.log"
    log.write_text("")
    follower = LogFollower(str(log))
    follower.poll()
    with open(log, "a") as fh:
        fh.write("x" * length + "\nnext code=2824\n")
    assert [len(line) for line in follower.poll()] == [kept, len("next code=2824")]


def test_a_poll_reads_at_most_one_mib_and_the_rest_waits_for_the_next(tmp_path):
    log = tmp_path / "pos.log"
    log.write_text("")
    follower = LogFollower(str(log))
    follower.poll()
    line = "y" * 1023  # 1 KiB with its newline
    with open(log, "a") as fh:
        fh.write((line + "\n") * 1024 + "last code=2824\n")  # one line more than a mebibyte holds
    assert follower.poll() == [line] * 1024
    assert follower.poll() == ["last code=2824"]


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".xz", ".zst", ".lz4", ".Z", ".zip", ""])
def test_a_compressed_rotation_is_left_alone(tmp_path, suffix):
    """Rotated copies that appear between two polls are read, unless compressed (they would be bytes)."""
    log = tmp_path / "pos.log"
    log.write_text("")
    follower = LogFollower(str(log))
    follower.poll()
    (tmp_path / f"pos.log.2{suffix}").write_text("in a copy rotated in between code=2824\n")
    os.rename(log, tmp_path / "pos.log.1")
    log.write_text("in the new log\n")
    assert follower.poll() == ([] if suffix else ["in a copy rotated in between code=2824"]) + ["in the new log"]


def test_the_rest_of_a_cut_line_written_later_is_skipped_not_taken_for_a_line(tmp_path):
    log = tmp_path / "pos.log"
    log.write_text("")
    follower = LogFollower(str(log))
    follower.poll()
    with open(log, "a") as fh:
        fh.write("a" * (70 * 1024))  # longer than a line is kept, and not finished yet
        fh.flush()
        assert follower.poll() == ["a" * (64 * 1024)]  # its head, cut, at once
        fh.write("b" * 1024 + "\nnext code=2824\n")
    assert follower.poll() == ["next code=2824"]


@pytest.mark.parametrize("from_end", [True, False], ids=["opened-at-its-end", "read-from-its-start"])
def test_a_log_rewritten_in_place_whose_last_32_bytes_read_changed_is_read_again_from_its_start(tmp_path, from_end):
    """A POS that rewrites its log in place (truncate, write anew) between two polls: the follower notices
    that the 32 bytes before where it stopped are not what it read there, even when the new file is longer
    and ends its lines the same way, and reads the new content from its start."""
    log = tmp_path / "pos.log"
    old = "2026-11-30 09:00:00 txn=1 code=0\n" * 3
    log.write_text(old)
    follower = LogFollower(str(log), from_end=from_end)
    assert follower.poll() == ([] if from_end else ["2026-11-30 09:00:00 txn=1 code=0"] * 3)
    new = "2026-11-30 10:00:00 txn=7 code=2824 " + "r" * 55 + " code=0\n" + "2026-11-30 10:00:01 txn=8 code=0\n"
    assert len(new) > len(old) and new[len(old) - 3:len(old)] == old[-3:] and new[len(old) - 32:len(old)] != old[-32:]
    with open(log, "r+") as fh:  # in place: the same inode, never shorter than what was read
        fh.write(new)
    assert follower.poll() == new.splitlines()


@pytest.mark.parametrize("style", ["numbered", "dateext"])
def test_a_log_rotated_twice_between_two_polls_is_read_through_the_file_in_between(tmp_path, style):
    """logrotate names a rotated log pos.log.1 or, with dateext, pos.log-20261130: either way the file
    rotated away between two polls is found beside the log and read, in order."""
    log = tmp_path / "pos.log"
    log.write_text("")
    follower = LogFollower(str(log))
    follower.poll()
    names = ["pos.log.2", "pos.log.1"] if style == "numbered" else ["pos.log-20261130-1", "pos.log-20261130-2"]
    for n, name in enumerate(names):
        with open(log, "a") as fh:
            fh.write(f"2026-11-30 10:00:0{n} txn={n} code=2824\n")
        os.rename(log, tmp_path / name)
        log.write_text("")
    with open(log, "a") as fh:
        fh.write("2026-11-30 10:00:09 txn=9 code=0\n")
    assert follower.poll() == ["2026-11-30 10:00:00 txn=0 code=2824", "2026-11-30 10:00:01 txn=1 code=2824",
                               "2026-11-30 10:00:09 txn=9 code=0"]
