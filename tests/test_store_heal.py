"""The store heals: a corrupt file is moved aside with its unsent reports recovered, a full disk
prunes the oldest history, and nothing that happens to it goes unsaid or stops a diagnosis."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from pathlib import Path

import jsonschema
import pytest
from labs.commands import run_cli
from labs.helpers import fill_filesystem, wait_for
from posdiag.agent import outbox
from posdiag.agent.control import request
from posdiag.agent.store import DB_NAME, Store, StoreFull
from posdiag.core.paths import report_schema_path
from test_daemon import daemon  # noqa: F401 - the real daemon process fixture
from test_history import fake_report


def queued(state: Path) -> list[str]:
    with Store(state, readonly=True) as store:
        return [row[1] for row in outbox.pending_page(store.db, 0, limit=10_000)]


def corrupt_one_outbox_page(path: Path) -> None:
    """Overwrite, with random bytes, a page in the middle of those holding gzip bodies (outbox rows)."""
    data = bytearray(path.read_bytes())
    pages = [i for i in range(1, len(data) // 4096) if b"\x1f\x8b" in data[i * 4096:(i + 1) * 4096]]
    k = pages[len(pages) // 2]
    data[k * 4096:(k + 1) * 4096] = os.urandom(4096)
    path.write_bytes(bytes(data))


def test_random_bytes_history_is_moved_aside_and_the_daemon_starts(daemon, tmp_path):  # noqa: F811
    state = tmp_path / "state"
    state.mkdir()
    (state / DB_NAME).write_bytes(os.urandom(64 * 1024))
    rc, out, err = run_cli("history", "--config", str(_plain_config(tmp_path)))
    assert rc == 3 and "cannot be read" in err and "Traceback" not in err
    d = daemon()
    assert wait_for(lambda: len(d.reports()) == 1, 15), d.output()
    moved = list(state.glob(f"{DB_NAME}.corrupt-*"))
    assert len(moved) == 1 and moved[0].stat().st_size == 64 * 1024  # kept for the help desk
    assert "was damaged" in d.output() and moved[0].name in d.output()
    status = json.loads(d.cli("status", "--json")[1])
    assert status["store"]["healed"]["moved_to"] == moved[0].name
    assert "healed at" in d.cli("status")[1]
    boot = json.loads(d.cli("history", "--json")[1])[0]
    assert boot["store"]["healed"]["reason"].startswith("file is not a database")
    assert boot["store"]["healed"]["recovered_unsent"] == boot["store"]["healed"]["unreadable_unsent"] == 0
    jsonschema.validate(boot, json.loads(report_schema_path().read_text()))
    assert request(d.socket, {"cmd": "trigger"}, timeout_s=60)["ok"]
    newest = json.loads(d.cli("history", "--json")[1])[0]
    assert "store" not in newest  # said once, in the next report


def _plain_config(tmp_path: Path) -> Path:
    from labs.helpers import write_config

    return write_config(tmp_path / "plain.toml", {"daemon": {"state_dir": str(tmp_path / "state"),
                                                              "control_socket": str(tmp_path / "plain.sock")}})


def damage_outbox_and_its_sequence(state: Path, sequence_page: int) -> None:
    """One outbox page damaged, and the page that says how far the outbox's keys go overwritten too."""
    corrupt_one_outbox_page(state / DB_NAME)
    data = bytearray((state / DB_NAME).read_bytes())
    data[(sequence_page - 1) * 4096:sequence_page * 4096] = os.urandom(4096)
    (state / DB_NAME).write_bytes(bytes(data))


def queue_sixty(state: Path) -> list[str]:
    """Sixty unsent reports in the outbox, a second apart, written through to the main file; their ids."""
    ids = []
    with Store(state) as store:
        for i in range(60):
            report = fake_report(time.time() - 100 + i)
            store.add(report, push=True)
            ids.append(report["report_id"])
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return ids


def test_one_corrupted_page_keeps_the_unsent_reports_that_still_read(tmp_path):
    state = tmp_path / "state"
    ids = queue_sixty(state)
    corrupt_one_outbox_page(state / DB_NAME)
    with Store(state) as store:  # heals on open
        healed = store.healed()
        store.add(fake_report(time.time()), push=True)
    assert "malformed" in healed["reason"]
    recovered = queued(state)[:-1]
    assert healed["recovered_unsent"] == len(recovered) >= 40
    assert healed["unreadable_unsent"] == 60 - len(recovered) > 0  # lost on the bad page, and said so
    assert recovered == [i for i in ids if i in recovered]  # still oldest first
    with Store(state, readonly=True) as store:
        assert {r.report_id for r in store.list()} >= set(recovered)  # back in the history too
        newest = store.get(store.list(limit=1)[0].report_id)
    assert newest["store"]["healed"]["recovered_unsent"] == len(recovered)
    assert (state / healed["moved_to"]).exists()


@pytest.mark.root
def test_full_disk_prunes_the_oldest_history_and_says_what_it_could_not_store(tmpfs):
    state = tmpfs("3m") / "state"
    history = []
    with Store(state) as store:
        for i in range(120):  # ~1 MB of history
            report = fake_report(time.time() - 10_000 + i)
            report["probes"][0]["metrics"]["padding"] = os.urandom(2500).hex()
            store.add(report)
            history.append(report["report_id"])
        fill_filesystem(state.parent)
        pushed = []
        for i in range(15):
            report = fake_report(time.time() + i)
            report["probes"][0]["metrics"]["padding"] = os.urandom(2500).hex()
            store.add(report, push=True)  # fits: the oldest history made room
            pushed.append(report)
        assert any(r.get("store", {}).get("pruned_for_space") for r in pushed)
        kept = [r.report_id for r in reversed(store.list())]
        assert kept[-15:] == [r["report_id"] for r in pushed]
        assert kept[0] != history[0] and kept[:-15] == history[-(len(kept) - 15):]  # the oldest went first
        assert [row[1] for row in outbox.pending_page(store.db, 0)] == [r["report_id"] for r in pushed]
        huge = fake_report(time.time() + 100)
        huge["probes"][0]["metrics"]["padding"] = os.urandom(2_000_000).hex()
        with pytest.raises(StoreFull):
            store.add(huge, push=True)
        after = fake_report(time.time() + 200)
        store.add(after, push=True)
    assert after["store"]["unstored"]["count"] == 1
    assert after["store"]["unstored"]["report_ids"] == [huge["report_id"]]
    jsonschema.validate(after, json.loads(report_schema_path().read_text()))
    assert queued(state) == [r["report_id"] for r in pushed] + [after["report_id"]]  # no unsent report pruned


@pytest.mark.root
def test_diagnose_push_on_a_full_disk_still_prints_the_report_and_says_it_was_not_stored(tmpfs, config_file, tmp_path):
    fs = tmpfs("1m")
    token = tmp_path / "token"
    token.write_text("t0k3n")
    token.chmod(0o600)
    config = config_file(daemon={"state_dir": str(fs / "state")},
                         server={"url": "https://127.0.0.1:9", "token_file": str(token)})
    fill_filesystem(fs)
    rc, out, err = run_cli("diagnose", "--push", "--json", "--config", str(config))
    assert rc in (0, 1, 2) and json.loads(out)["schema"] == "posdiag.report/1"
    assert "could not queue the report" in err


def test_status_and_history_read_a_damaged_store_without_a_traceback(tmp_path):
    state = tmp_path / "state"
    with Store(state) as store:
        for i in range(30):
            store.add(fake_report(time.time() - 100 + i), push=True)
    corrupt_one_outbox_page(state / DB_NAME)
    config = _plain_config(tmp_path)
    for args in (["history"], ["history", "--json"], ["status"], ["status", "--json"]):
        rc, out, err = run_cli(*args, "--config", str(config))
        assert "Traceback" not in out + err and "internal error" not in err, args


def test_a_page_damaged_under_an_open_store_heals_at_the_next_write_and_loses_no_report(tmp_path):
    import sqlite3

    state = tmp_path / "state"
    store = Store(state)
    ids = []
    for i in range(60):
        report = fake_report(time.time() - 100 + i)
        store.add(report, push=True)
        ids.append(report["report_id"])
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    path = state / DB_NAME
    data = path.read_bytes()
    history_pages = [i for i in range(1, len(data) // 4096) if b"posdiag.report/1" in data[i * 4096:(i + 1) * 4096]]
    with open(path, "r+b") as fh:  # the history's newest pages go bad while the daemon runs
        for k in history_pages[-2:]:
            fh.seek(k * 4096)
            fh.write(os.urandom(4096))
    other = sqlite3.connect(path)  # another writer (a sender) makes the open store re-read the file
    with other:
        other.execute("INSERT INTO meta VALUES ('touched', '1')")
    other.close()
    new = fake_report(time.time())
    store.add(new, push=True)  # "database disk image is malformed" → moved aside, healed, stored
    store.close()
    assert new["store"]["healed"]["recovered_unsent"] == 60
    assert queued(state) == ids + [new["report_id"]]


def _sqlite_error(path: Path, sql: str) -> BaseException:
    db = sqlite3.connect(path, timeout=0)
    try:
        db.execute(sql)
    except sqlite3.Error as exc:
        return exc
    finally:
        db.close()
    raise AssertionError(f"{sql} on {path} raised nothing")


def test_only_a_damaged_file_is_taken_for_corruption_and_only_a_full_disk_for_full(tmp_path):
    """What the store moves aside is a file SQLite calls damaged (its own code, or the store's own
    integrity check, which has no code); a lock, a read-only file or a full disk never is."""
    from posdiag.agent.heal import is_corruption, is_full

    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(os.urandom(8192))
    not_a_db = _sqlite_error(garbage, "SELECT * FROM sqlite_master")
    assert getattr(not_a_db, "sqlite_errorcode", None) is not None
    assert is_corruption(not_a_db) and not is_full(not_a_db)
    assert is_corruption(sqlite3.DatabaseError("database disk image is malformed (*** in database main ***)"))
    assert is_corruption(sqlite3.DatabaseError("file is not a database"))  # no code: SQLite's words say it
    locked_path = tmp_path / "locked.sqlite3"
    holder = sqlite3.connect(locked_path)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        locked = _sqlite_error(locked_path, "SELECT * FROM t")
    finally:
        holder.rollback()
        holder.close()
    assert "locked" in str(locked) and not is_corruption(locked) and not is_full(locked)
    assert is_full(sqlite3.OperationalError("database or disk is full")) and not is_corruption(
        sqlite3.OperationalError("database or disk is full"))
    assert not is_corruption(OSError("malformed")) and not is_full(OSError("disk is full"))


@pytest.mark.root
def test_a_256_kib_reserve_is_kept_beside_the_store_while_the_disk_has_room(tmpfs):
    """With room, a 256 KiB reserve file waits beside the store for a full disk; spent on one, it is made
    again at the next report once there is room, and no report of the history is given up for it."""
    from posdiag.agent.store import RESERVE_NAME

    state = tmpfs("8m") / "state"
    with Store(state) as store:
        reports = [fake_report(time.time() - 100 + i) for i in range(4)]
        for report in reports[:3]:
            store.add(report)
        assert (state / RESERVE_NAME).stat().st_size == 256 * 1024
        (state / RESERVE_NAME).unlink()  # spent on a full disk that has room again
        store.add(reports[3])
        assert [r.report_id for r in reversed(store.list())] == [r["report_id"] for r in reports]
    assert (state / RESERVE_NAME).stat().st_size == 256 * 1024


def test_a_disk_too_tight_for_the_reserve_keeps_the_history_that_could_not_make_room_for_it(tmpfs):
    """Less free disk than the reserve needs, and a history far too small to free that much: giving up
    the history would buy nothing, so every report stays and no reserve is made."""
    from posdiag.agent.store import RESERVE_NAME

    disk = tmpfs("2m")
    state = disk / "state"
    with Store(state) as store:
        reports = [fake_report(time.time() - 100 + i) for i in range(2)]
        for report in reports:
            store.add(report)
    (state / RESERVE_NAME).unlink()
    filler = disk / "filler"
    with open(filler, "wb") as fh:  # leave about 400 KiB: room for a report, not for two reserves
        fh.write(b"\0" * (shutil.disk_usage(disk).free - 400 * 1024))
    with Store(state) as store:
        store.add(fake_report(time.time()))
        kept = [r.report_id for r in store.list()]
    assert {r["report_id"] for r in reports} <= set(kept), kept
    assert not (state / RESERVE_NAME).exists()


def test_unsent_reports_past_a_bad_page_are_found_even_when_the_highest_key_cannot_be_read(tmp_path):
    """The outbox scan breaks on a damaged page and the page that says how far its keys go is damaged
    too: the rows after the bad page are still looked for, key by key, and recovered."""
    state = tmp_path / "state"
    ids = queue_sixty(state)
    with Store(state) as store:
        sequence_page = store.db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'sqlite_sequence'").fetchone()[0]
    damage_outbox_and_its_sequence(state, sequence_page)
    with Store(state) as store:  # heals on open
        healed = store.healed()
    recovered = queued(state)
    assert healed["recovered_unsent"] == len(recovered) >= 40
    assert recovered[-1] == ids[-1]  # the newest, well past the bad page
    assert healed["unreadable_unsent"] == 60 - len(recovered) > 0  # the rows on the bad page, counted key by key


def test_the_daemons_store_that_cannot_be_opened_yet_is_tried_again_at_each_report(config_file, tmp_path):
    """The daemon must start (and diagnose) even when its store cannot be opened: each report tries
    again, and the first one stored says how many could not be."""
    from posdiag.core import settings as config

    state = tmp_path / "state"
    (state / DB_NAME).mkdir(parents=True)  # something in the way of the database file
    settings = config.load(str(config_file()))
    with pytest.raises(sqlite3.Error):
        Store.for_settings(settings)  # a command's store says so at once
    store = Store.for_daemon(settings)  # the daemon's starts without one
    lost = fake_report(time.time() - 10)
    with pytest.raises(StoreFull, match="cannot be opened"):
        store.add(lost)
    (state / DB_NAME).rmdir()
    kept = fake_report(time.time())
    store.add(kept)
    store.close()
    assert kept["store"]["unstored"]["count"] == 1 and kept["store"]["unstored"]["report_ids"] == [lost["report_id"]]


@pytest.mark.root
def test_unsent_reports_up_to_twenty_thousand_keys_past_a_bad_page_are_probed_for(tmp_path):
    """With the highest key unreadable too, the keys after a bad page are probed one by one for 20 000
    past the last row read: rows 5 000 keys further on (keys a long-lived till has skipped) are found."""
    state = tmp_path / "state"
    queue_sixty(state)
    with Store(state) as store:
        with store.db:
            store.db.execute("INSERT INTO outbox (seq, report_id, queued_at, started_at, size, body) "
                             "SELECT seq + 5000, report_id || '-far', queued_at, started_at, size, body FROM outbox "
                             "WHERE seq > 55")
        far = [row[0] for row in store.db.execute("SELECT report_id FROM outbox WHERE seq > 5000 ORDER BY seq")]
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        sequence_page = store.db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'sqlite_sequence'").fetchone()[0]
    damage_outbox_and_its_sequence(state, sequence_page)
    with Store(state) as store:  # heals on open
        healed = store.healed()
    recovered = queued(state)
    assert len(far) == 5 and recovered[-5:] == far, (far, recovered[-6:])
    assert healed["recovered_unsent"] == len(recovered)


def test_reports_that_could_not_be_stored_are_all_counted_and_the_last_20_named(tmp_path):
    """The note the next stored report carries counts every lost report since the last one stored and
    names the 20 most recent of them (a day of lost reports does not grow every report after it)."""
    with Store(tmp_path) as store:
        lost = [fake_report(time.time() - 100 + i) for i in range(21)]
        for report in lost[:20]:
            store._note_unstored(report, "disk I/O error")
        assert store.unstored["count"] == 20 and store.unstored["report_ids"] == [r["report_id"] for r in lost[:20]]
        store._note_unstored(lost[20], "disk I/O error")
        assert store.unstored["count"] == 21 and store.unstored["report_ids"] == [r["report_id"] for r in lost[1:]]
        kept = fake_report(time.time())
        store.add(kept)
    assert kept["store"]["unstored"]["count"] == 21 and kept["store"]["unstored"]["error"] == "disk I/O error"


def test_why_a_store_was_healed_is_kept_on_one_line_of_at_most_300_characters(tmp_path):
    """SQLite's reason, as the status and the next report say it: one line, bounded."""
    with Store(tmp_path) as store:
        store.add(fake_report(time.time()), push=True)
        store.db = store._heal("database disk image is malformed\n\t(page 7)  " + "x " * 400, store.db)
        healed = store.healed()
    assert healed["reason"].startswith("database disk image is malformed (page 7) x x ")
    assert len(healed["reason"]) == 300 and "\n" not in healed["reason"] and "  " not in healed["reason"]
    assert healed["recovered_unsent"] == 1 and (tmp_path / healed["moved_to"]).exists()


def test_a_damaged_store_is_moved_aside_with_its_wal_under_a_name_no_earlier_one_took(tmp_path, monkeypatch):
    """Two heals within the same second keep both damaged files (the second gets .2, the third .3); the
    index (-shm) is rebuilt, so it goes."""
    from posdiag.agent import heal

    monkeypatch.setattr(heal, "compact_stamp", lambda: "20261206T101010Z")
    path = tmp_path / DB_NAME
    moved = []
    for n in range(3):
        path.write_text(f"damaged {n}")
        Path(f"{path}-wal").write_text(f"wal {n}")
        Path(f"{path}-shm").write_text("index")
        moved.append(heal.move_aside(path))
    assert [m.name for m in moved] == [f"{DB_NAME}.corrupt-20261206T101010Z", f"{DB_NAME}.corrupt-20261206T101010Z.2",
                                       f"{DB_NAME}.corrupt-20261206T101010Z.3"]
    assert [m.read_text() for m in moved] == ["damaged 0", "damaged 1", "damaged 2"]
    assert Path(f"{moved[1]}-wal").read_text() == "wal 1"
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(f"{DB_NAME}.corrupt-")) == []
