"""Nothing sensitive leaves the till: card data and secrets are planted, in their real shapes, everywhere
posdiag reads — the POS log, the configuration, the token file, URLs, the kernel log, the reader's names —
then every command (``watch`` ended by SIGTERM; ``show`` of a report an older posdiag stored unmasked
too) and the daemon (pushing to a loopback server) run, and every byte that comes out is scanned:
stdout and stderr, written files, bundle members (decompressed), the stored history and outbox, the
bodies the server received, and the daemon's and sender's journal lines.

Traffic goes to loopback only: the payment host, the central server and the reader live on 127.0.0.1 or
in a sysfs tree inside the test's folder; the kernel log is the real /dev/kmsg (root).
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import secrets
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import tarfile
import threading
import unicodedata
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from labs.commands import REPO, run_posdiag
from labs.daemonlab import DaemonProcess
from labs.helpers import make_certs, wait_for
from labs.push_server import PushServer
from labs.usbtree import READER, add_device, terminal_tree
from posdiag.core.redact import luhn

RUN = secrets.token_hex(4)  # this run's own secrets: nothing else on the machine can hold them
TOKEN = f"tok_{secrets.token_hex(16)}"
URL_PASSWORD = f"Pw-{secrets.token_hex(5)}!x"
API_KEY = f"AK-{secrets.token_hex(6)}"
SESSION = f"SESS-{secrets.token_hex(6)}"
BASIC = base64.b64encode(f"pos:planted-{RUN}".encode()).decode()
OTHER_BEARER = f"eyJ{secrets.token_hex(10)}.e30.{secrets.token_hex(4)}"
PASSWORD = f"Hunter2-{secrets.token_hex(4)}"
PIN_BLOCK = secrets.token_hex(8).upper()
FIELD_52 = secrets.token_hex(8).upper()
PIN_BLOCK_SPACED = secrets.token_hex(8).upper()
RUN_DIGITS = f"{secrets.randbelow(10 ** 8):08d}"
EMV_DATA = f"2812201{RUN_DIGITS}"  # expiry, service code and discretionary data of an EMV track 2


def card(body: str) -> str:
    """``body`` and the check digit that makes it a card number."""
    return next(body + d for d in "0123456789" if luhn(body + d))


def fours(pan: str, separator: str) -> str:
    return separator.join(pan[i:i + 4] for i in range(0, len(pan), 4))


def wide(digits: str) -> str:
    """In full-width digits, as a Chinese input method types them."""
    return digits.translate({c: c + 0xFEE0 for c in range(48, 58)})


UNIONPAY_19 = card("621234567890123456")
EIGHT_EIGHT, DOUBLE_SPACED, FOUR_EIGHT_FOUR = card("453201511283036"), card("552960223658974"), card("491761000000000")
DOTTED, SLASHED, FULL_WIDTH = card("356600202036050"), card("520082828282821"), card("620000000000000")
EMV_TRACK2, EMV_TAG_5A, LOWER_TRACK1 = card("476173900101011"), card("426398264026929"), card("400000250000315")

#: every card number planted, as written → its digits (none may come out whole, with or without separators)
PANS = {"4111111111111111": "visa, bare (POS log)", "5500 0000 0000 0004": "mastercard, spaced (POS log)",
        "3400-000000-00009": "amex, dashed 4-6-5 (POS log)", "6011000990139424": "discover, in JSON (POS log)",
        "4012888888881881": "visa, in a URL path (POS log)", "4000056655665556": "visa, in track 1 (POS log)",
        "4242424242424242": "visa, in bare track 2 (POS log)", "5105105105105100": "mastercard, in track 2 (kernel log)",
        UNIONPAY_19: "unionpay, 19 digits (kernel log)", "2223-0000-4840-0011": "mastercard 2-series, dashed (kernel log)",
        "3530 1113 3330 0000": "jcb, spaced (reader's product name)", "378282246310005": "amex, bare (reader's serial)",
        "30569309025904": "diners, bare ([reader] expected_serial)",
        f"{EIGHT_EIGHT[:8]} {EIGHT_EIGHT[8:]}": "visa, 8-8 (POS log)",
        fours(DOUBLE_SPACED, "  "): "mastercard, double spaces (POS log)",
        f"{FOUR_EIGHT_FOUR[:4]} {FOUR_EIGHT_FOUR[4:12]} {FOUR_EIGHT_FOUR[12:]}": "visa, 4-8-4 (POS log)",
        fours(DOTTED, "."): "jcb, dotted (POS log)", fours(SLASHED, "/"): "mastercard, slashes in a path (POS log)",
        wide(FULL_WIDTH): "unionpay, full-width digits (POS log)",
        EMV_TRACK2: "visa, EMV track 2 glued to tag 57 (POS log)", EMV_TAG_5A: "visa, glued to EMV tag 5A (POS log)",
        LOWER_TRACK1: "visa, in a lowercase %b track 1 (POS log)"}
#: every other secret planted → where; none may come out at all
SECRETS = {TOKEN: "push token (token file; POS log, bare and after Bearer; kernel log)",
           URL_PASSWORD: "URL password ([server] url; POS log)",
           API_KEY: "query value ([[payment_hosts]] health_path)", SESSION: "query value (POS log URL)",
           BASIC: "Authorization: Basic (POS log)", OTHER_BEARER: "bearer token (POS log)",
           PASSWORD: "password= field (POS log)", PIN_BLOCK: "PIN block (POS log)", FIELD_52: "ISO 8583 DE52 (POS log)",
           "PRIVACY/TESTER": "track 1 name", "2812101987654321": "track 1 discretionary data",
           "28121015432112345678": "track 2 discretionary data", "2812101777777": "bare track 2 expiry and data",
           "LOWER/CASE": "lowercase track 1 name", f"2812101{RUN_DIGITS}": "lowercase track 1 discretionary data",
           EMV_DATA: "EMV track 2 expiry and data", PIN_BLOCK_SPACED: "PIN block with no sign (POS log)"}
#: card codes: the value may appear elsewhere by chance (a port, a duration), never after its name
CARD_CODES = re.compile(r"(?i)(?:cvv|cvc|cvc2)\W{0,4}(?:7351|9314|8823)")


def stamp(seconds_ago: float = 0) -> str:
    return (datetime.now() - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%d %H:%M:%S")


def pos_log_lines() -> list[str]:
    """Transactions as a POS application might log them, card data and credentials between the fields."""
    return [
        f"{stamp(300)} txn=1 pan=4111111111111111 code=2824 rc=91",
        f"{stamp(290)} txn=2 card 5500 0000 0000 0004 exp=2812 code=2824 rc=96",
        f"{stamp(280)} txn=3 t1=%B4000056655665556^PRIVACY/TESTER^2812101987654321000000? code=2824 rc=91",
        f"{stamp(270)} txn=4 t2=4242424242424242=2812101777777 cvv=7351 code=2824 rc=05",
        f'{stamp(260)} txn=5 {{"pan":"6011000990139424","cvc":"9314"}} pinblock={PIN_BLOCK} DE52={FIELD_52} code=0 rc=00',
        f"{stamp(250)} txn=6 amex 3400-000000-00009 CVV 8823 code=2824 rc=91",
        f"{stamp(240)} txn=7 POST https://ops:{URL_PASSWORD}@pay.example/auth?session={SESSION} "
        f"Authorization: Bearer {TOKEN} code=0 rc=00",
        f"{stamp(230)} txn=8 Authorization: Basic {BASIC} password={PASSWORD} bearer {OTHER_BEARER} code=0 rc=00",
        f"{stamp(228)} txn=20 card {EIGHT_EIGHT[:8]} {EIGHT_EIGHT[8:]} alt {fours(DOUBLE_SPACED, '  ')} code=0 rc=00",
        f"{stamp(227)} txn=21 card {FOUR_EIGHT_FOUR[:4]} {FOUR_EIGHT_FOUR[4:12]} {FOUR_EIGHT_FOUR[12:]} code=0 rc=00",
        f"{stamp(226)} txn=22 ref {fours(DOTTED, '.')} GET /v/{fours(SLASHED, '/')}/x code=0 rc=00",
        f"{stamp(225)} txn=23 卡号 {wide(FULL_WIDTH)} code=0 rc=00",
        f"{stamp(224)} txn=24 emv 9F2701805713{EMV_TRACK2}D{EMV_DATA}F5A08{EMV_TAG_5A}5F2403281231 code=0 rc=00",
        f"{stamp(223)} txn=25 t1=%b{LOWER_TRACK1}^LOWER/CASE^2812101{RUN_DIGITS}? pin_block {PIN_BLOCK_SPACED} code=0 rc=00",
        f"{stamp(222)} txn=26 online PIN: code=2824 rc=55",
        f"{stamp(220)} txn=9 GET /cards/4012888888881881/status ref {TOKEN} code=2824 rc=91",  # the token bare
    ]


KERNEL_LINES = [f"usb 9-9: posdiag-privacy-{RUN}: reader sent ;5105105105105100=28121015432112345678? pan {UNIONPAY_19}",
                f"usb 9-9: posdiag-privacy-{RUN}: debug token={TOKEN} card 2223-0000-4840-0011 cvc2=9314"]


class HealthServer:
    """The payment host's HTTPS service on loopback: answers every request 404, so that the TLS probe
    quotes the configured health path (with its query) in a finding."""

    def __init__(self, cert: str, key: str) -> None:
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(cert, key)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.paths: list[bytes] = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.answer, args=(conn,), daemon=True).start()

    def answer(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(10)
            with self.ctx.wrap_socket(conn, server_side=True) as tls:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = tls.recv(4096)
                    if not chunk:
                        return
                    data += chunk
                self.paths.append(data.split(b"\r\n", 1)[0])
                tls.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()


@pytest.fixture
def till(tmp_path, push_certs, config_file):
    """A terminal with a secret in every place posdiag reads, a payment host and a central server on loopback."""
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    pos_log = tmp_path / "pos.log"
    pos_log.write_text("\n".join(pos_log_lines()) + "\n")
    sysfs = terminal_tree(tmp_path / "sys")
    add_device(sysfs, {**READER, "product": "iPP350 3530 1113 3330 0000", "serial": "378282246310005"})
    with open("/dev/kmsg", "w") as kmsg:
        for line in KERNEL_LINES:
            kmsg.write(f"<6>{line}\n")
            kmsg.flush()
    (tmp_path / "pay-certs").mkdir()
    certs = make_certs(tmp_path / "pay-certs", "pay.test")
    health = HealthServer(*certs["valid"])
    server = PushServer(*push_certs["good"], TOKEN).start()
    common = {
        "terminal": {"id": "lane-privacy", "site": "store-042"},
        "payment_hosts": [{"name": "primary", "host": "127.0.0.1", "port": health.port, "tls": True,
                           "server_name": "pay.test", "ca_file": certs["ca"],
                           "health_path": f"/health?apikey={API_KEY}&lane=7"}],
        "network": {"gateway": "off"},
        "reader": {"kind": "usb", "usb": "0b00:0084", "sysfs_root": str(sysfs), "kernel_log": "/dev/kmsg",
                   "expected_serial": "30569309025904"},
        "txlog": {"path": str(pos_log)},
        "daemon": {"interval_s": 3600, "event_min_gap_s": 0},
    }
    pushing = config_file(**common, server={"url": server.url, "ca_file": push_certs["ca"], "token_file": str(token)})
    os.rename(pushing, tmp_path / "push.toml")
    with_password = config_file(**common, server={"url": server.url.replace("https://", f"https://ops:{URL_PASSWORD}@"),
                                                  "ca_file": push_certs["ca"], "token_file": str(token)})
    os.rename(with_password, tmp_path / "password.toml")
    card_in_config = config_file(terminal={"id": "lane-privacy", "site": "4111 1111 1111 1111"})
    os.rename(card_in_config, tmp_path / "card.toml")
    older = config_file(**{**common, "daemon": {**common["daemon"], "state_dir": str(tmp_path / "older-state"),
                                                "control_socket": str(tmp_path / "older.sock")}},
                        server={"url": server.url, "ca_file": push_certs["ca"], "token_file": str(token)})
    os.rename(older, tmp_path / "older.toml")
    yield {"push": tmp_path / "push.toml", "password": tmp_path / "password.toml", "card": tmp_path / "card.toml",
           "older": tmp_path / "older.toml", "server": server, "health": health, "pos_log": pos_log,
           "state": tmp_path / "state", "older_state": tmp_path / "older-state", "dir": tmp_path}
    server.stop()
    health.sock.close()


def store_unmasked(state: Path, report: dict) -> str:
    """A report as an older posdiag, which did not mask, kept it: POS log lines whole in its txlog
    finding and in the top cause's evidence (the bare token, track 1, EMV track 2, a card number as a
    JSON number). Its id."""
    from posdiag.agent.store import Store

    older = json.loads(json.dumps(report))
    older["report_id"] = str(uuid.uuid4())
    raw = [line for line in pos_log_lines() if any(f"txn={n} " in line for n in (3, 9, 24))]
    txlog = next(p for p in older["probes"] if p["name"] == "txlog")
    txlog["findings"][0]["message"] += " " + raw[0]
    txlog["findings"][0]["data"].update(last_line=raw[-1], lines=raw, pan=int(EIGHT_EIGHT))
    older["diagnosis"]["causes"][0]["evidence"].insert(0, raw[0])  # what the text shows first
    with Store(state) as store:
        store.add(older)
    return older["report_id"]


class Outputs:
    """Everything that came out, by where it came from."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []

    def add(self, where: str, text: str) -> str:
        self.texts.append((where, text))
        return text

    def command(self, *args: str, lang: str = "en", timeout: float = 60) -> tuple[int, str, str]:
        env = {**os.environ, "LANG": "C.UTF-8" if lang == "en" else f"{lang}.UTF-8"}
        proc = run_posdiag(*args, env=env, timeout=timeout)
        shown = " ".join(a for a in args if not a.startswith("/"))
        self.add(f"posdiag {shown} [{lang}] stdout", proc.stdout)
        self.add(f"posdiag {shown} [{lang}] stderr", proc.stderr)
        return proc.returncode, proc.stdout, proc.stderr

    def watch(self, config: Path, requests_seen) -> str:
        """``posdiag watch --interval 1`` with its stdout on a pipe (not a terminal), ended by SIGTERM once
        its second sweep has reached the payment host (``requests_seen`` counts the health requests), so
        that it has a summary to print and keep."""
        before = requests_seen()
        proc = subprocess.Popen([sys.executable, "-m", "posdiag.agent", "watch", "--interval", "1", "--config",
                                 str(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                                env={**os.environ, "LANG": "C.UTF-8"})
        try:
            assert wait_for(lambda: requests_seen() >= before + 2 or proc.poll() is not None, 120)
            proc.send_signal(signal.SIGTERM)
            stdout, stderr = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.add("posdiag watch --interval 1 (SIGTERM) [en] stdout", stdout)
        self.add("posdiag watch --interval 1 (SIGTERM) [en] stderr", stderr)
        return stdout

    def bundle(self, path: Path) -> dict[str, str]:
        with tarfile.open(path) as tar:
            found = {m.name: tar.extractfile(m).read().decode() for m in tar.getmembers() if m.isfile()}
        for name, text in found.items():
            self.add(f"bundle {path.name}: {name}", text)
        return {name.split("/", 1)[1]: text for name, text in found.items()}

    def store(self, state: Path) -> None:
        """The state directory: its files as bytes, and every value of every table (gzip bodies opened)."""
        for path in sorted(state.rglob("*")):
            if path.is_file() and path.name != "usb-baseline.json":
                self.add(f"state file {path.name}", path.read_bytes().decode("latin-1"))
        with sqlite3.connect(state / "history.sqlite3") as db:
            for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
                for row in db.execute(f"SELECT * FROM {table}"):  # the names come from sqlite_master itself
                    for value in row:
                        if isinstance(value, bytes):
                            value = gzip.decompress(value).decode() if value[:2] == b"\x1f\x8b" else value.decode("latin-1")
                        self.add(f"history table {table}", str(value))

    def leaks(self) -> list[str]:
        found = []
        for where, text in self.texts:
            # full-width digits as ASCII, and whatever may separate a card's digit groups taken out
            joined = re.sub(r"(?<=\d)[\s./-]+(?=\d)", "", unicodedata.normalize("NFKC", text))
            for pan, what in PANS.items():
                digits = re.sub(r"\D", "", unicodedata.normalize("NFKC", pan))
                if pan in text or digits in joined:
                    found.append(f"{what} in {where}")
            found += [f"{what} in {where}" for secret, what in SECRETS.items() if secret in text]
            found += [f"card code {m.group()!r} in {where}" for m in CARD_CODES.finditer(text)]
        return found


@pytest.mark.root
def test_no_planted_card_data_or_secret_comes_out_of_any_command_the_daemon_or_the_push(till):
    out = Outputs()
    # --- commands on a till with no daemon -------------------------------------------------------------
    for lang in ("en", "zh_CN"):
        rc, stdout, stderr = out.command("config", "check", "--config", str(till["password"]), lang=lang)
        assert rc == 3 and "https://<redacted>@127.0.0.1" in stderr  # refused: it would replace the bearer token
        rc, stdout, _ = out.command("config", "check", "--config", str(till["push"]), lang=lang)
        assert rc == 0 and "/health?apikey=<redacted>&lane=<redacted>" in stdout
        rc, _, stderr = out.command("config", "check", "--config", str(till["card"]), lang=lang)
        assert rc == 3 and "terminal.site" in stderr
    rc, _, stderr = out.command("diagnose", "--config", str(till["password"]))
    assert rc == 3 and "server.url" in stderr
    rc, text, _ = out.command("diagnose", "--config", str(till["push"]))
    assert rc == 2, text
    rc, report_json, _ = out.command("diagnose", "--json", "--config", str(till["push"]))
    report = json.loads(report_json)
    out.command("diagnose", "--format", "nagios", "--config", str(till["push"]))
    out.command("diagnose", "--format", "prometheus", "--config", str(till["push"]))
    out.command("diagnose", "--json", "-o", str(till["dir"] / "report.json"), "--config", str(till["push"]))
    out.add("diagnose -o report.json", (till["dir"] / "report.json").read_text())
    out.command("diagnose", "--push", "--config", str(till["push"]), lang="zh_CN")
    out.command("history", "--config", str(till["push"]))
    out.command("history", "--json", "--config", str(till["push"]))
    out.command("history", "--since", "4111111111111111", "--config", str(till["push"]))
    out.command("history", "--limit", "4111111111111111", "--config", str(till["push"]))
    out.command("status", "--config", str(till["push"]))
    out.command("status", "--json", "--config", str(till["push"]))
    rc, _, stderr = out.command("push", "--config", str(till["push"]))
    assert rc == 0, stderr
    rc, _, stderr = out.command("bundle", "--config", str(till["push"]), "-o", str(till["dir"] / "alone.tar.gz"))
    assert rc == 0, stderr
    alone = out.bundle(till["dir"] / "alone.tar.gz")
    out.command("probes")

    # --- watch on a pipe, ended by SIGTERM; show of the summary it kept --------------------------------
    summary = out.watch(till["push"], lambda: len(till["health"].paths))
    watched = re.search(r"posdiag show (\S+)", summary)
    assert watched, summary
    rc, shown, _ = out.command("show", watched[1], "--config", str(till["push"]))
    assert rc == 2 and "lane-privacy" in shown
    out.command("show", watched[1], "--json", "--config", str(till["push"]), lang="zh_CN")

    # --- show of a report an older posdiag stored unmasked (its own state, not scanned): masked again -----
    older_id = store_unmasked(till["older_state"], report)
    rc, shown, _ = out.command("show", older_id[:8], "--config", str(till["older"]))
    assert rc == 2 and "%B400005******5556^<redacted>?" in shown
    rc, shown, _ = out.command("show", older_id, "--json", "--config", str(till["older"]))
    older = next(p for p in json.loads(shown)["probes"] if p["name"] == "txlog")["findings"][0]["data"]
    assert older["pan"] == f"{EIGHT_EIGHT[:6]}******{EIGHT_EIGHT[-4:]}"
    assert older["last_line"].endswith("GET /cards/401288******1881/status ref <redacted> code=2824 rc=91")
    out.command("history", "--json", "--config", str(till["older"]))

    # --- the daemon: boot sweep, a 2824 event quoting a line, on-demand sweeps, pushes -------------------
    daemon = DaemonProcess(till["push"], till["state"])
    try:
        assert wait_for(lambda: len(till["server"].received()) >= 2, 30), daemon.output()  # queued + boot
        with open(till["pos_log"], "a") as log:
            log.write(f"{stamp()} txn=10 pan=6011000990139424 cvv=7351 Authorization: Bearer {TOKEN} code=2824 rc=91\n")
        assert wait_for(lambda: any(r.trigger == "event" for r in daemon.reports()), 30), daemon.output()
        out.command("trigger", "--config", str(till["push"]))
        out.command("trigger", "--json", "--config", str(till["push"]), lang="zh_CN")
        out.command("status", "--config", str(till["push"]))
        out.command("status", "--json", "--config", str(till["push"]))
        out.command("history", "--json", "--config", str(till["push"]))
        rc, _, stderr = out.command("bundle", "--config", str(till["push"]), "-o", str(till["dir"] / "daemon.tar.gz"))
        assert rc == 0, stderr
        beside = out.bundle(till["dir"] / "daemon.tar.gz")
        assert wait_for(lambda: len(till["server"].received()) >= 5, 30), daemon.output()
    finally:
        daemon.stop()
    journal = out.add("daemon and sender journal", daemon.output())
    out.store(till["state"])
    for report_id, body in till["server"].stored.items():
        out.add(f"pushed body {report_id}", json.dumps(body))

    # --- nothing came out whole ---------------------------------------------------------------------------
    assert len(out.texts) > 60
    leaks = out.leaks()
    assert not leaks, f"{len(leaks)} leaks:\n" + "\n".join(leaks)

    # --- and the planted secrets did reach every kind of output, masked: the scan above means something --
    assert f"Bearer {TOKEN}" in till["server"].auth_seen  # the token was read and used, never shown
    assert any(API_KEY.encode() in p for p in till["health"].paths)  # the health request was really sent
    findings = {f["code"]: f for p in report["probes"] for f in p["findings"]}
    assert findings["txlog.errors_2824"]["data"]["count"] == 7  # codes counted from masked lines
    assert findings["txlog.host_errors"]["data"]["codes"] == {"91": 4, "96": 1}
    assert findings["txlog.input_errors"]["data"]["codes"] == {"55": 1}  # online PIN: code=2824 rc=55
    assert findings["txlog.errors_2824"]["data"]["last_line"].endswith(
        "GET /cards/401288******1881/status ref <redacted> code=2824 rc=91")  # the bare token, remembered
    assert findings["http.client_error"]["message"].startswith("primary /health?apikey=<redacted>&lane=<redacted>: HTTP 404")
    assert "3530 11** **** 0000" in findings["reader.usb_present"]["message"]  # the reader's name
    assert "378282*****0005" in findings["reader.serial_mismatch"]["message"]  # its serial, and the one on file
    assert "Bearer <redacted>" in alone["pos.log"] and "%B400005******5556^<redacted>?" in alone["pos.log"]
    assert f"卡号 {wide(FULL_WIDTH[:6])}******{wide(FULL_WIDTH[-4:])}" in alone["pos.log"]
    assert f"5713{EMV_TRACK2[:6]}******{EMV_TRACK2[-4:]}=<redacted>" in alone["pos.log"]
    assert "pin_block <redacted> code=0" in alone["pos.log"]
    assert f"posdiag-privacy-{RUN}: reader sent ;510510******5100=<redacted>?" in alone["kernel.log"]
    assert "diagnosis.json" in alone and "diagnosis.json" not in beside
    assert json.loads(alone["token.json"])["mode"] == "0600"
    assert "/health?apikey=<redacted>" in alone["config.toml.json"]
    assert re.search(r"2824 in \S+: \S+ \S+ txn=10 pan=601100\*{6}9424 cvv=<redacted> Authorization: Bearer <redacted>",
                     journal), journal
    event = next(r for r in till["server"].stored.values() if r["trigger"] == "event")
    assert next(p for p in event["probes"] if p["name"] == "txlog")["metrics"]["errors_2824"] == 8


def test_an_error_nobody_caught_in_the_daemon_or_the_sender_is_logged_masked():
    """Python prints an uncaught exception itself, past the log's formatter: the daemon and the sender
    route it through their masked log instead, from the main thread and from any other."""
    import subprocess
    import sys

    code = ("import threading\n"
            "from posdiag.agent.logs import setup_logging\n"
            "setup_logging()\n"
            "def fail():\n"
            "    raise ValueError('pan=4111111111111111 token=tok_thread_0123456789')\n"
            "worker = threading.Thread(target=fail, name='pusher')\n"
            "worker.start()\n"
            "worker.join()\n"
            "raise RuntimeError('https://ops:Pw-main-0123@collector.example/x?apikey=AK-main-0123')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert "<2>uncaught ValueError in thread pusher" in proc.stderr and "<2>uncaught RuntimeError" in proc.stderr
    assert "<2>ValueError: pan=411111******1111 token=<redacted>" in proc.stderr
    assert "<2>RuntimeError: https://<redacted>@collector.example/x?apikey=<redacted>" in proc.stderr
    assert not any(s in proc.stderr for s in ("4111111111111111", "tok_thread", "Pw-main", "AK-main"))


def test_a_library_that_sets_up_pythons_root_logger_gets_none_of_the_daemons_lines():
    """A library that configures Python's root logger (``logging.basicConfig``, or its first
    ``logging.warning``) must not print posdiag's lines a second time, past the masking formatter."""
    import subprocess
    import sys

    code = ("import logging\n"
            "from posdiag.agent.logs import setup_logging\n"
            "setup_logging()\n"
            "logging.warning('a library speaks')\n"
            "logging.getLogger('posdiag.daemon').warning('reader sent pan=4111111111111111')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "WARNING:root:a library speaks" in proc.stderr  # the root logger is the library's, and it works
    assert proc.stderr.count("reader sent pan=") == 1, proc.stderr
    assert "<4>reader sent pan=411111******1111" in proc.stderr and "4111111111111111" not in proc.stderr


def test_a_command_that_never_pushes_still_masks_the_bare_token(config_file, tmp_path):
    """``diagnose`` reads the token only to mask it, as push reads it and silently: a token file that
    cannot be read as one (here a FIFO, which a plain read would wait on forever) holds nothing to
    remember, and that is no error for a command that does not push."""
    token = f"tok_{secrets.token_hex(16)}"
    (tmp_path / "token").write_text(token + "\n")
    (tmp_path / "token").chmod(0o600)
    os.mkfifo(tmp_path / "fifo")
    pos_log = tmp_path / "pos.log"
    pos_log.write_text(f"{stamp(60)} txn=1 sent {token} code=2824 rc=91\n")
    for token_file in ("token", "fifo"):
        config = config_file(txlog={"path": str(pos_log)},
                             server={"url": "https://127.0.0.1:9/", "token_file": str(tmp_path / token_file)})
        proc = run_posdiag("diagnose", "--json", "--only", "txlog", "--config", str(config))
        assert proc.returncode != 3, proc.stderr
        quoted = json.loads(proc.stdout)["probes"][0]["findings"][0]["data"]["last_line"]
        assert quoted.endswith("txn=1 sent <redacted> code=2824 rc=91" if token_file == "token" else
                               f"txn=1 sent {token} code=2824 rc=91"), quoted
        assert "token" not in proc.stderr
