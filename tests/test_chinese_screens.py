"""Every screen a Chinese-speaking technician meets: each command's ``--help`` and each text output,
run as the real command under ``LANG=zh_CN.UTF-8`` with its stderr on a terminal (a pty), and
``status``, ``trigger`` and ``bundle`` beside a running daemon, ``watch`` on a real terminal (tmux). No
English word of posdiag's own text is left untranslated, and nothing posdiag prints for a person —
on stdout or stderr — runs past 80 display columns (a CJK character takes two).

An "English word of posdiag's own text" is a word of the catalogue's English (msgids) that no Chinese
translation uses: identifiers — options, commands, probe names, cause ids, keys, paths, values, the
upper-case abbreviations (POS, TLS, NTP) — are the same in every language and are left out.
"""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import catalogues
import pytest
from labs import REPO
from labs.commands import IN_CI
from labs.daemonlab import DaemonProcess
from labs.helpers import wait_for, write_config
from labs.terminal import Tmux
from posdiag import probes
from posdiag.agent.cli import build_parser
from posdiag.agent.columns import display_width

ZH_PO = REPO / "core" / "locale" / "zh_CN" / "LC_MESSAGES" / "posdiag.po"
#: a token that is an identifier, not a word: options, paths, ids with dots, digits or underscores
IDENTIFIER = re.compile(r"^(-.*|.*[\d._/:@=%].*)$")
TOKEN = re.compile(r"[A-Za-z0-9_.:/@%+~=-]+")
WORD = re.compile(r"[A-Za-z]{3,}")


def _words(texts) -> set[str]:
    return {w.lower() for text in texts for w in WORD.findall(re.sub(r"\{[^}]*\}|%\([a-z_]+\)[a-z]|%[a-z]", " ", text))}


@pytest.fixture(scope="module")
def untranslated_words() -> set[str]:
    """Words of posdiag's English that its Chinese never uses: seeing one means English was left."""
    catalogue = [m for m in catalogues.read(ZH_PO) if m.id]
    english = [text for m in catalogue for text in (m.id if isinstance(m.id, tuple) else (m.id,))]
    chinese = [text for m in catalogue for text in (m.string if isinstance(m.string, tuple) else (m.string,))]
    return _words(english) - _words(chinese)


def _identifiers() -> set[str]:
    """Commands, their metavars (COMMAND, FILE, LIMIT) and probe names: the same in every language."""
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    names = set(sub.choices) | {"check", "ACTION"}
    for parser in [build_parser(), *sub.choices.values()]:
        names |= {str(a.metavar) for a in parser._actions if a.metavar} | {a.dest.upper() for a in parser._actions}
    for name in probes.CATALOGUE:
        names |= set(name.split("."))
    return names


def english_left(text: str, untranslated: set[str]) -> list[str]:
    ids = _identifiers()
    return sorted({w for token in TOKEN.findall(text) if not IDENTIFIER.match(token) and token not in ids
                   for w in WORD.findall(token) if w.lower() in untranslated})


@pytest.fixture(scope="module")
def till():
    """A short folder (paths take part in the lines), a configuration, and a stored report."""
    folder = Path(tempfile.mkdtemp(prefix="pd"))
    (folder / "state").mkdir()
    base = {"terminal": {"id": "t03", "site": "s042"},
            "daemon": {"state_dir": str(folder / "state"), "control_socket": str(folder / "c.sock")},
            "disk": {"paths": [str(folder)], "min_free_mb": 1}, "system": {"max_load_per_cpu": 1000}}
    write_config(folder / "ok.toml", base)
    write_config(folder / "fault.toml", {**base, "memory": {"min_available_mb": 1_000_000}})
    write_config(folder / "bad.toml", {"memory": {"min_available_mb": "x", "foo": 1}, "disk": {"min_free_mb": 1e16}})
    yield folder
    subprocess.run(["rm", "-rf", str(folder)], check=False)


#: a slow sweep's progress line, redrawn in place on the terminal and cleared before the report
PROGRESS = re.compile(r"\r\x1b\[K[^\r\n]*")


def _chinese(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The command with stdout into a pipe and stderr on a terminal, as a technician's shell has it."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("LC_")}, "LANG": "zh_CN.UTF-8", "COLUMNS": "80"}
    primary, secondary = pty.openpty()
    said: list[bytes] = []
    reader = threading.Thread(target=_drain, args=(primary, said), daemon=True)
    reader.start()
    try:
        proc = subprocess.run([sys.executable, "-m", "posdiag.agent", *args], stdout=subprocess.PIPE, stderr=secondary,
                              text=True, env=env, cwd=cwd, timeout=60)
    finally:
        os.close(secondary)
    reader.join(10)
    os.close(primary)
    err = PROGRESS.sub("", b"".join(said).decode().replace("\r\n", "\n"))
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout, err)


def _drain(fd: int, into: list[bytes]) -> None:
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the terminal's last writer is gone
            return
        if not chunk:
            return
        into.append(chunk)


def _every_help() -> list[tuple[str, ...]]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return [("--help",), *((name, "--help") for name in sub.choices), ("config", "check", "--help")]


def _watch(config: Path, cwd: Path) -> str:
    env = {**os.environ, "LANG": "zh_CN.UTF-8"}
    proc = subprocess.Popen([sys.executable, "-m", "posdiag.agent", "watch", "--interval", "0.5", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd)
    time.sleep(2)
    proc.send_signal(signal.SIGINT)
    return proc.communicate(timeout=30)[0]


def _screens(till: Path) -> dict[str, tuple[str, str]]:
    """Each screen: (stdout, stderr)."""
    ok, fault = str(till / "ok.toml"), str(till / "fault.toml")
    runs = {" ".join(args): _chinese(*args, cwd=till) for args in _every_help()}
    for name, args in {"diagnose": ("diagnose", "--config", ok), "diagnose, a fault": ("diagnose", "--config", fault),
                       "probes": ("probes",), "history": ("history", "--config", ok),
                       "status": ("status", "--config", ok), "config check": ("config", "check", "--config", ok),
                       "config check, refused": ("config", "check", "--config", str(till / "bad.toml")),
                       "push": ("push", "--config", ok), "trigger": ("trigger", "--config", fault),
                       "bad usage": ("diagnose", "--frobnicate"), "show, unknown": ("show", "0000", "--config", ok)
                       }.items():
        runs[name] = _chinese(*args, cwd=till)
    runs["watch, unknown probe"] = _chinese("watch", "--only", "nosuch", "--config", ok, cwd=till)
    short = runs["history"].stdout.splitlines()[-1].split()[-1]
    runs["show"] = _chinese("show", short, "--config", ok, cwd=till)
    # a Chinese till's daemon: what its probes wrote is Chinese too (an English daemon's stays English)
    daemon = DaemonProcess(till / "fault.toml", till / "state", env={"LANG": "zh_CN.UTF-8", "LC_ALL": "", "LC_MESSAGES": ""},
                           socket=till / "c.sock")
    try:
        assert wait_for(lambda: any(r.trigger == "boot" for r in daemon.reports()), 30), daemon.output()
        for name, args in {"status, daemon running": ("status", "--config", fault),
                           "trigger, daemon running": ("trigger", "--config", fault),
                           "bundle": ("bundle", "-o", str(till / "b.tar.gz"), "--config", fault)}.items():
            runs[name] = _chinese(*args, cwd=till)
    finally:
        daemon.stop()
    screens = {name: (run.stdout, run.stderr) for name, run in runs.items()}
    screens["watch"] = (_watch(till / "fault.toml", till), "")
    screens["watch, on a terminal"] = (_watch_on_a_terminal(till / "fault.toml"), "")
    return screens


def _watch_on_a_terminal(config: Path) -> str:
    """The redrawn screen of ``watch`` on an 80×24 terminal, then what is left on it after Ctrl-C."""
    if not Tmux.available():
        message = "tmux is missing: apt-get install tmux (.ci/run does)"
        pytest.fail(message) if IN_CI else pytest.skip(message)
    with Tmux(f"{sys.executable} -m posdiag.agent watch --interval 0.5 --config {config}", columns=80, rows=24,
              env={"LANG": "zh_CN.UTF-8"}) as term:
        assert wait_for(lambda: "第 2 轮" in term.screen(), timeout=30), term.screen()  # redrawn once at least
        screen = term.screen()
        term.keys("C-c")
        assert wait_for(lambda: "posdiag show" in term.screen(), timeout=30), term.screen()
        return screen + "\n" + term.screen()


def test_every_help_and_text_output_is_chinese_and_fits_80_columns(till, untranslated_words):
    screens = _screens(till)
    english, long_lines = {}, {}
    for name, (out, err) in screens.items():
        left = english_left(out + err, untranslated_words)
        if left:
            english[name] = left
        wide = [line for line in (out + err).splitlines() if display_width(line) > 80]
        if wide:
            long_lines[name] = wide
    assert not english, f"English left in Chinese output: {english}"
    assert not long_lines, "lines wider than 80 columns:\n" + "\n".join(f"{k}: {v}" for k, v in long_lines.items())
    assert "用法：posdiag" in screens["--help"][0] and "故障：" in screens["diagnose, a fault"][0]
    assert "按需" in screens["history"][0] and "实时观察：" in screens["watch"][0]
    assert "1e+" not in screens["config check, refused"][1] and "10000000000000000" in screens["config check, refused"][1]


def test_the_usage_continues_under_its_first_option_in_chinese(till):
    out = _chinese("diagnose", "--help", cwd=till).stdout
    first, second = out.splitlines()[:2]
    assert first.startswith("用法：posdiag diagnose [-h]")
    assert second.startswith(" ") and display_width(second) - display_width(second.lstrip()) == \
        display_width(first[:first.index("[-h]")])


def test_help_sentences_wrap_by_display_width_and_subcommands_describe_themselves(till):
    out = _chinese("watch", "--help", cwd=till).stdout
    description = out.split("\n\n")[1]
    assert "一轮接一轮地反复诊断" in description and len(description.splitlines()) > 1
    assert all(70 <= display_width(line) <= 78 for line in description.splitlines()[:-1]), description
