"""What a user (or a hostile file) can hand the command line: numbers that are not numbers, TOML
that is too deep or too big, a configuration that is a FIFO or /dev/zero, a closed or full stdout,
absurd options, an internal error — each ends in one clear line and exit 3, never a traceback or a
hang. Also the probe framework's handling of processes that vanish or refuse to be read."""

from __future__ import annotations

import ast
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


@pytest.mark.parametrize("command", ["diagnose --only memory --config {config}", "probes", "config check --config {config}"])
def test_closed_stdout_ends_in_one_line_and_exit_3(config_file, command):
    command = command.format(config=f'"{config_file()}"')
    proc = subprocess.run(["sh", "-c", f'exec "{sys.executable}" -m posdiag.agent {command} >&-'], capture_output=True,
                          text=True, cwd=REPO, timeout=30)
    assert proc.returncode == 3
    assert proc.stderr.strip() == "posdiag: cannot write the output: standard output is closed"


def test_full_stdout_ends_in_one_line_and_exit_3(config_file):
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "posdiag.agent", "diagnose", "--json", "--config",
                               str(config_file())], stdout=full, stderr=subprocess.PIPE, text=True, cwd=REPO, timeout=30)
    assert proc.returncode == 3
    assert proc.stderr.strip() == "posdiag: cannot write the output: No space left on device"


@pytest.mark.parametrize("args", [(), ("config",)], ids=["no-command", "config-without-action"])
def test_a_command_missing_is_a_usage_error_naming_what_is_missing(args):
    proc = run_posdiag(*args)
    assert proc.returncode == 3 and proc.stdout == "", proc.stdout
    assert "usage: posdiag" in proc.stderr and "required" in proc.stderr and "Traceback" not in proc.stderr


def test_history_limit_beyond_range_is_a_usage_error(config_file):
    proc = run_posdiag("history", "--limit", str(10**20), "--config", str(config_file()))
    assert proc.returncode == 3 and "--limit" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("args", [("--lang", "{}", "probes"), ("history", "--limit", "{}"),
                                  ("watch", "--interval", "{}")], ids=["lang", "limit", "interval"])
def test_a_refused_argument_of_100_kb_is_quoted_by_its_first_forty_characters(config_file, args):
    value = "7" + "x" * 100_000  # the kernel takes at most 128 KiB in one argument
    proc = run_posdiag(*(a.format(value) for a in args), "--config", str(config_file()))
    rc, out, err = proc.returncode, proc.stdout, proc.stderr
    assert rc == 3 and out == ""
    assert repr(value[:40]) in err and value[:41] not in err and len(err) < 1000, err[:300]


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


def _returns(function: ast.AST) -> list[ast.Return]:
    """The function's own return statements (not those of functions defined inside it)."""
    found, stack = [], list(ast.iter_child_nodes(function))
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Return):
            found.append(node)
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            stack.extend(ast.iter_child_nodes(node))
    return found


def _agent_functions() -> tuple[dict[tuple[str, str], list[ast.FunctionDef]], dict[str, dict[str, str]]]:
    """agent/'s functions and methods by (module, name) (a function and methods may share a name), and
    each module's ``from posdiag.agent.X import name`` (lazy ones too) as name → module."""
    functions: dict[tuple[str, str], list[ast.FunctionDef]] = {}
    imports: dict[str, dict[str, str]] = {}
    for path in sorted((REPO / "agent").glob("*.py")):
        module = path.stem
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                functions.setdefault((module, node.name), []).append(node)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("posdiag.agent."):
                imports.setdefault(module, {}).update({a.asname or a.name: node.module.rsplit(".", 1)[1]
                                                       for a in node.names})
    return functions, imports


def command_returns() -> list[tuple[str, ast.Return]]:
    """Every return statement whose value a command hands to the shell as its exit status: those of
    cli.py's ``cmd_*`` and ``main``, and of each agent/ function whose result they return, transitively."""
    functions, imports = _agent_functions()
    todo = [key for key in functions if key[0] == "cli" and (key[1].startswith("cmd_") or key[1] == "main")]
    seen, out = set(), []
    while todo:
        key = todo.pop()
        if key in seen or key not in functions:
            continue
        seen.add(key)
        for ret in (ret for function in functions[key] for ret in _returns(function)):
            out.append((f"agent/{key[0]}.py:{ret.lineno} ({key[1]})", ret))
            call = ret.value if isinstance(ret.value, ast.Call) else None
            if call and isinstance(call.func, ast.Name):
                todo.append((imports.get(key[0], {}).get(call.func.id, key[0]), call.func.id))
            elif call and isinstance(call.func, ast.Attribute):  # obj.method(): a method of that name in the module
                todo.append((key[0], call.func.attr))
    return out


def test_every_command_returns_exit_members_never_a_bare_number():
    returns = command_returns()
    where = {w.split(" ")[0] for w, _ in returns}
    assert {"agent/push.py", "agent/daemon.py", "agent/cli.py"} <= {w.split(":")[0] for w in where}, where
    bare = [f"{w}: return {ast.unparse(r.value)}" for w, r in returns
            if isinstance(r.value, ast.Constant) and type(r.value.value) is int
            or isinstance(r.value, ast.UnaryOp) and isinstance(r.value.operand, ast.Constant)]
    assert not bare, "exit statuses are Exit members (agent/exits.py):\n" + "\n".join(bare)


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


def test_the_bounded_reader_takes_exactly_the_last_bytes_asked_for(tmp_path):
    from posdiag.core.files import read_tail

    path = tmp_path / "log"
    path.write_bytes(b"0123456789")
    assert read_tail(str(path), 4) == (b"6789", True)
    assert read_tail(str(path), 9) == (b"123456789", True)
    assert read_tail(str(path), 10) == (b"0123456789", False)
    assert read_tail(str(path), 11) == (b"0123456789", False)


@pytest.mark.parametrize("limit", [10, 65536, 200_000])
def test_the_bounded_reader_reads_a_file_of_exactly_its_limit_and_refuses_one_byte_more(tmp_path, limit):
    """Up to the limit, whole, also when it takes several reads (65536 bytes a read); one byte more is refused."""
    from posdiag.core.files import FileTooLarge, read_bounded

    path = tmp_path / "file"
    data = bytes(range(256)) * (limit // 256) + b"x" * (limit % 256)
    path.write_bytes(data)
    assert read_bounded(str(path), limit) == data
    path.write_bytes(data + b"y")
    with pytest.raises(FileTooLarge, match=f"larger than {limit} bytes"):
        read_bounded(str(path), limit)
    assert read_bounded(str(path), limit + 1) == data + b"y"


@pytest.mark.parametrize(("lists", "refused"), [(15, False), (16, True)], ids=["16-levels", "17-levels"])
def test_a_configuration_sixteen_levels_deep_is_read_and_seventeen_refused(tmp_path, lists, refused):
    """The file's table and 15 nested lists are 16 levels: read (then refused for its unknown key); one more is not read."""
    config = tmp_path / "posdiag.toml"
    config.write_text("x = " + "[" * lists + "]" * lists + "\n")
    rc, said = check(config)
    assert rc == 3 and ("nested more than 16" in said) is refused and ("unknown" in said) is not refused, said


@pytest.mark.parametrize(("size", "taken"), [(1024 * 1024, True), (1024 * 1024 + 1, False), (0, True)])
def test_a_configuration_of_exactly_a_mebibyte_is_read_whole_one_byte_more_is_refused(tmp_path, size, taken):
    from posdiag.core import settings as config

    path = tmp_path / "posdiag.toml"
    path.write_bytes((b"#" * 63 + b"\n") * (size // 64) + b"#" * (size % 64))
    if taken:
        assert config.read_config_bytes(str(path)) == path.read_bytes()
    else:
        with pytest.raises(config.ConfigError, match="larger than 1024 KiB"):
            config.read_config_bytes(str(path))
