"""What a user (or a hostile file) can hand the command line: numbers that are not numbers, TOML
that is too deep or too big, a configuration that is a FIFO or /dev/zero, a closed or full stdout,
absurd options, an internal error — each ends in one clear line and exit 3, never a traceback or a
hang. Also the probe framework's handling of processes that vanish or refuse to be read."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil
import pytest
from labs.commands import REPO, run_cli, run_posdiag
from posdiag.probes.base import Observation, Probe, Status, declare
from posdiag.probes.memory import total_rss


def check(config) -> tuple[int, str]:
    """``posdiag config check`` as a child process: (exit status, what it said)."""
    proc = run_posdiag("config", "check", "--config", str(config), timeout=20)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, proc.stderr


@pytest.mark.parametrize("key,value", [
    ("daemon.history_max_mb", "nan"), ("daemon.interval_s", "inf"), ("network.timeout_s", "-inf"),
    ("memory.max_swap_percent", "+nan"),
], ids=["nan", "inf", "minus-inf", "plus-nan"])
def test_nan_and_infinities_are_refused(tmp_path, key, value):
    section, name = key.split(".")
    config = tmp_path / "posdiag.toml"
    config.write_text(f"[{section}]\n{name} = {value}\n")
    rc, said = check(config)
    assert rc == 3 and key in said and "finite" in said


def test_an_integer_of_four_hundred_digits_is_refused_before_conversion(tmp_path):
    config = tmp_path / "posdiag.toml"
    config.write_text("[network]\nping_count = 1" + "0" * 400 + "\n[daemon]\ninterval_s = 1" + "0" * 400 + "\n")
    rc, said = check(config)
    assert rc == 3 and "network.ping_count" in said and "daemon.interval_s" in said and "401 digits" in said


def test_toml_nested_five_thousand_deep_is_refused_in_one_paragraph(tmp_path):
    config = tmp_path / "posdiag.toml"
    config.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    rc, said = check(config)
    assert rc == 3 and "nested more than" in said and len(said.strip().splitlines()) == 2


def test_a_configuration_over_a_mebibyte_is_refused_unread(tmp_path):
    config = tmp_path / "posdiag.toml"
    config.write_text("# padding\n" * 200_000)  # valid TOML, 2 MB of comments
    rc, said = check(config)
    assert rc == 3 and "larger than 1024 KiB" in said


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "directory"])
def test_config_that_is_not_a_regular_file_is_refused_at_once(tmp_path, kind):
    config = tmp_path / "posdiag.toml"
    if kind == "fifo":
        os.mkfifo(config)
    elif kind == "dev-zero":
        os.symlink("/dev/zero", config)
    else:
        config.mkdir()
    started = time.monotonic()
    rc, said = check(config)
    assert time.monotonic() - started < 15
    assert rc == 3 and {"fifo": "FIFO", "dev-zero": "character device", "directory": "directory"}[kind] in said


def test_closed_stdout_ends_in_one_line_and_exit_3(config_file):
    proc = subprocess.run(["sh", "-c", f'exec "{sys.executable}" -m posdiag.agent diagnose --only memory '
                           f'--config "{config_file()}" >&-'], capture_output=True, text=True, cwd=REPO, timeout=30)
    assert proc.returncode == 3
    assert proc.stderr.strip() == "posdiag: cannot write the output: standard output is closed"


def test_full_stdout_ends_in_one_line_and_exit_3(config_file):
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "posdiag.agent", "diagnose", "--json", "--config",
                               str(config_file())], stdout=full, stderr=subprocess.PIPE, text=True, cwd=REPO, timeout=30)
    assert proc.returncode == 3
    assert proc.stderr.strip() == "posdiag: cannot write the output: No space left on device"


def test_history_limit_beyond_range_is_a_usage_error(config_file):
    proc = run_posdiag("history", "--limit", str(10**20), "--config", str(config_file()))
    assert proc.returncode == 3 and "--limit" in proc.stderr and "Traceback" not in proc.stderr


def test_internal_error_is_one_line_and_the_traceback_only_with_debug(config_file, monkeypatch):
    import posdiag.agent.sweep

    def broken(*_args, **_kw):
        raise RuntimeError("boom in the engine")

    monkeypatch.setattr(posdiag.agent.sweep, "run_sweep", broken)
    rc, _, err = run_cli("diagnose", "--config", str(config_file()))
    assert rc == 3 and err.count("\n") == 1 and "internal error" in err and "--debug" in err
    rc, _, err = run_cli("diagnose", "--debug", "--config", str(config_file()))
    assert rc == 3 and "Traceback" in err and "boom in the engine" in err


def test_config_is_declared_once_and_shared_by_every_command():
    from posdiag.agent.cli import build_parser

    parser = build_parser()
    for argv in (["diagnose"], ["run"], ["trigger"], ["status"], ["history"], ["config", "check"]):
        args = parser.parse_args([*argv, "--config", "/x.toml", "--debug"])
        assert args.config == "/x.toml" and args.debug is True, argv


def test_exit_statuses_come_from_one_module():
    from posdiag.agent.exits import Exit

    assert [Exit.for_verdict(v) for v in ("healthy", "degraded", "fault", "???")] == [0, 1, 2, 3]
    sources = [p.read_text() for p in (REPO / "agent").glob("*.py") if p.name != "exits.py"]
    assert not any("IntEnum" in s or "EXIT_CODES" in s for s in sources)


# --- probes and processes -------------------------------------------------------------------------

def test_a_pos_process_that_exits_mid_probe_is_not_counted_and_not_an_error():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    found = psutil.Process(child.pid)  # found by the probe ...
    child.kill()  # ... and gone before its memory is read
    child.wait()
    me = psutil.Process()
    assert total_rss([found]) == 0
    assert total_rss([found, me]) > 0


def test_psutil_access_denied_is_reported_as_a_permission_problem():
    class Reads(Probe):
        name = "test.reads"
        findings = declare()

        def check(self, obs: Observation) -> None:
            raise psutil.AccessDenied(pid=1, name="init", msg="/proc/1/environ")

    from posdiag.core.settings import Settings

    result = Reads(Settings()).run()
    assert result.status is Status.ERROR and "permission denied" in result.summary
    assert [f.code for f in result.findings] == ["probe.permission_denied"]
