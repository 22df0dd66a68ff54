"""The ``posdiag`` command line: a thin shell that parses arguments and maps outcomes to exit codes.

Exit codes follow the monitoring-plugin convention (:mod:`posdiag.agent.exits`). Streams are passed
in so tests run the real CLI without patching globals. ``main`` turns every failure into one line on
stderr and exit 3; the traceback of an internal error is shown only with ``--debug``.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
from typing import Any, TextIO

from posdiag.agent import __version__, i18n
from posdiag.agent.exits import Exit
from posdiag.agent.i18n import tr

#: ``history --limit`` above this is refused by the parser (SQLite takes 64-bit integers only)
MAX_LIMIT = 1_000_000
#: ``diagnose --format``: for a person, for programs, for monitoring plugins, for Prometheus.
FORMATS = ("text", "json", "nagios", "prometheus")


class UsageError(Exception):
    """Options that contradict each other: said in one line, exit 3 like any bad usage."""


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on bad usage, which monitoring would read as "fault": exit 3 instead."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(Exit.UNKNOWN, tr("{prog}: error: {message}", prog=self.prog, message=message) + "\n")


def _limit(text: str) -> int:
    try:
        value = int(text) if len(text) <= 20 else None
    except ValueError:
        value = None
    if value is None or not 1 <= value <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to {MAX_LIMIT}, got {text[:40]!r}")
    return value


def _language(text: str) -> str:
    lang = i18n.normalise(text)
    if lang is None:
        raise argparse.ArgumentTypeError(tr("expected one of {choices}, got {value!r}",
                                            choices=", ".join(i18n.LANGUAGES), value=text[:40]))
    return lang


def _lang_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lang", metavar="LANG", type=_language,
                        help=tr("language of the output: zh_CN or en (default: [terminal] language, then LANG)"))


def _common() -> argparse.ArgumentParser:
    """Options every command that reads the configuration shares, declared once."""
    common = _Parser(add_help=False)
    common.add_argument("--config", metavar="F", help=tr("configuration file"))
    common.add_argument("--debug", action="store_true", help=tr("show the traceback of an internal error"))
    _lang_option(common)
    return common


def _option(argv: list[str], name: str) -> str | None:
    """The value of ``name`` in ``argv`` (``--x V`` or ``--x=V``, the last one wins, as argparse does),
    read before parsing because it decides the language the parser itself speaks."""
    value = None
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == name and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(name + "="):
            value = arg.split("=", 1)[1]
    return value


def speak(argv: list[str]) -> str:
    """Choose this run's language — ``--lang``, then ``[terminal] language`` of the configuration it
    reads, then the locale — and make everything the process says use it, argparse's words included."""
    from posdiag.agent.config import configured_language

    lang = i18n.choose(_option(argv, "--lang"), configured_language(_option(argv, "--config")))
    translator = i18n.use(lang)
    argparse._ = translator.gettext  # argparse looks its words up through this module global
    argparse.ngettext = translator.ngettext
    return translator.lang


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="posdiag", description="Find out why a POS terminal fails payments "
                                     "with error 2824.")
    parser.add_argument("--version", action="version", version=f"posdiag {__version__}",
                        help=tr("show the version and exit"))
    _lang_option(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    common = [_common()]

    diag = sub.add_parser("diagnose", parents=common, help="run a one-shot diagnosis")
    diag.add_argument("--json", action="store_true", help="print the report as JSON (posdiag.report/1)")
    diag.add_argument("--only", metavar="P,...", help="run only these probes (names or areas, comma-separated)")
    diag.add_argument("--push", action="store_true", help="also queue the report for the central server")
    diag.add_argument("--format", choices=FORMATS, help="text (default), json (the same as --json), nagios (one "
                      "monitoring-plugin line) or prometheus (node_exporter textfile)")
    diag.add_argument("-o", "--output", metavar="FILE", help="write to FILE (atomically replaced) instead of stdout")

    probes = sub.add_parser("probes", help="list the probes and what each one checks")
    probes.set_defaults(debug=False)
    _lang_option(probes)
    sub.add_parser("run", parents=common,
                   help="the daemon: diagnose at boot, on schedule, on demand and on 2824 events")

    trig = sub.add_parser("trigger", parents=common, help="ask the running daemon to diagnose now")
    trig.add_argument("--json", action="store_true", help="print the report as JSON")

    stat = sub.add_parser("status", parents=common, help="daemon state: last verdict, history, pushes")
    stat.add_argument("--json", action="store_true", help="print the status as JSON")

    hist = sub.add_parser("history", parents=common, help="stored reports, newest first")
    hist.add_argument("--json", action="store_true", help="print the reports as JSON")
    hist.add_argument("--since", metavar="AGE", help="only reports younger than AGE, e.g. 90s, 30m, 2h, 7d")
    hist.add_argument("--limit", type=_limit, default=50, help="at most this many reports (default 50)")

    push = sub.add_parser("push", parents=common,
                          help="send the queued reports to the central server now (when no daemon runs)")
    push.add_argument("--requeue-refused", action="store_true", help="first put back reports the server refused")

    bundle = sub.add_parser("bundle", parents=common, help="support bundle for the help desk, secrets redacted")
    bundle.add_argument("-o", "--output", metavar="FILE", help="where to write it (default: "
                        "./posdiag-bundle-<terminal>-<time>.tar.gz)")

    cfg = sub.add_parser("config", help="configuration commands")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True, metavar="ACTION", parser_class=_Parser)
    cfg_sub.add_parser("check", parents=common, help="validate a configuration and say what is wrong")
    return parser


class Progress:
    """A live line on a terminal while probes run; silent when the stream is not a TTY."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.enabled = stream.isatty()

    def __call__(self, result: Any, done: int, total: int) -> None:
        if self.enabled:
            self.stream.write(f"\r\033[Kprobing… {done}/{total}  {result.name}: {result.status.value}")
            self.stream.flush()

    def clear(self) -> None:
        if self.enabled:
            self.stream.write("\r\033[K")
            self.stream.flush()


def cmd_diagnose(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from posdiag.agent import config

    if args.json and args.format not in (None, "json"):
        raise UsageError(f"--json and --format {args.format} ask for two different outputs; give one")
    fmt = "json" if args.json else args.format or "text"
    settings = config.load(args.config)
    if args.push:
        _require_push(settings)
    only = [p.strip() for p in args.only.split(",") if p.strip()] if args.only else None
    return _diagnose(settings, fmt, out, err, only=only, push=args.push, output=args.output)


def _diagnose(settings: Any, fmt: str, out: TextIO, err: TextIO, only: list[str] | None = None,
              push: bool = False, output: str | None = None) -> int:
    """One local diagnosis within the deadline, printed (and queued for the server with ``push``);
    shared by ``diagnose`` and ``trigger``."""
    from posdiag.agent.sweep import run_sweep

    progress = Progress(err)
    try:
        report = run_sweep(settings, trigger="on-demand", only=only, on_result=progress,
                           deadline_s=_remaining(settings.diagnosis.deadline_s))
    finally:
        progress.clear()
    if push:
        from posdiag.agent.push import queue

        queue(settings, report, err)
    code = Exit.for_verdict(report["diagnosis"]["verdict"])
    ran = [p for p in report["probes"] if p["status"] != "skipped"]
    if ran and all(p["status"] == "error" for p in ran):
        code = Exit.UNKNOWN
    _emit(report, fmt, code, out, output)
    if code is Exit.UNKNOWN:
        err.write("posdiag: no probe could check anything; cannot diagnose\n")
    return code


def _remaining(deadline_s: float) -> float:
    """The probes' share of the deadline once this process's own start-up is paid for, so that the
    command as a whole — what cron or Nagios waits for — ends within the configured deadline."""
    return max(deadline_s * 0.5, deadline_s - _startup_s() - 0.1)


def _startup_s() -> float:
    """Seconds since this process started. On Linux from /proc in clock ticks since boot (10 ms):
    psutil's create_time() adds the boot time, which the kernel gives in whole seconds, so the
    difference from time.time() could be off by up to a second and cut the probes' share short."""
    try:
        with open("/proc/self/stat", "rb") as fh:
            started_ticks = int(fh.read().rsplit(b")", 1)[1].split()[19])
        with open("/proc/uptime", "rb") as fh:
            uptime_s = float(fh.read().split()[0])
        return max(0.0, uptime_s - started_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        import time

        import psutil

        return max(0.0, time.time() - psutil.Process().create_time())


def cmd_probes(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from posdiag import probes

    classes = probes.all_probes()
    width = max(len(c.name) for c in classes)
    for cls in classes:
        needs = f"  (after {', '.join(cls.requires)})" if cls.requires else ""
        out.write(f"{cls.name:<{width}}  {cls.description}{needs}\n")
    return Exit.OK


def _require_push(settings: Any) -> None:
    """Push needs a server and a token file only its owner can read: refused like a bad config."""
    from posdiag.agent.config import ConfigError
    from posdiag.agent.pushsetup import check

    if not settings.server.url:
        raise ConfigError(settings.source, ["server.url: expected the central server's URL to push to"])
    problems = check(settings.server)
    if problems:
        raise ConfigError(settings.source, problems)


def cmd_push(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from posdiag.agent import config
    from posdiag.agent.push import push_now

    settings = config.load(args.config)
    _require_push(settings)
    return push_now(settings, out, err, requeue_refused=args.requeue_refused)


def cmd_run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from posdiag.agent.daemon import run

    return run(args.config)


def _emit(report: dict, fmt: str, code: int, out: TextIO, output: str | None = None) -> None:
    """Render the report in ``fmt``; to ``output`` atomically (a textfile collector or a monitor
    reading it never sees half a file), else to ``out``."""
    from posdiag.agent import formats
    from posdiag.agent.report import render_text

    text = {"json": lambda: json.dumps(report, indent=2) + "\n", "text": lambda: render_text(report),
            "nagios": lambda: formats.nagios_line(report, code),
            "prometheus": lambda: formats.prometheus_text(report, code)}[fmt]()
    if output:
        formats.write_atomically(output, text)
    else:
        out.write(text)


def _print_report(report: dict, as_json: bool, out: TextIO) -> int:
    code = Exit.for_verdict(report["diagnosis"]["verdict"])
    _emit(report, "json" if as_json else "text", code, out)
    return code


def cmd_trigger(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from posdiag.agent import config
    from posdiag.agent.control import DaemonBusy, DaemonNotRunning, request

    settings = config.load(args.config)
    try:
        reply = request(settings.daemon.control_socket, {"cmd": "trigger"},
                        timeout_s=settings.diagnosis.deadline_s + 35)
    except DaemonNotRunning as exc:
        err.write(f"posdiag: {exc}; diagnosing locally instead\n")
        return _diagnose(settings, "json" if args.json else "text", out, err)
    except DaemonBusy as exc:  # a live daemon owns the probes: never diagnose beside it
        err.write(f"posdiag: {exc}; try again in a moment\n")
        return Exit.UNKNOWN
    if not reply.get("ok"):
        err.write(f"posdiag: the daemon could not diagnose: {reply.get('error')}\n")
        return Exit.UNKNOWN
    return _print_report(reply["report"], args.json, out)


def cmd_status(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from posdiag.agent import config
    from posdiag.agent.control import DaemonBusy, DaemonNotRunning, request

    settings = config.load(args.config)
    try:
        status = request(settings.daemon.control_socket, {"cmd": "status"}, timeout_s=5)["status"]
    except (DaemonNotRunning, DaemonBusy) as exc:
        from posdiag.agent.push import read_status, status_lines

        running = isinstance(exc, DaemonBusy)
        _, push, store = read_status(settings)  # the outbox waits all the same
        if args.json:
            out.write(json.dumps({"running": running, "error": str(exc), "push": push, "store": store}) + "\n")
        else:
            out.write("\n".join([f"posdiag daemon: {'busy' if running else 'not running'} ({exc})",
                                 *status_lines(push, store)]) + "\n")
        return Exit.UNKNOWN
    if args.json:
        out.write(json.dumps({"running": True, **status}, indent=2) + "\n")
        return Exit.OK
    last = status["last"]
    lines = [f"posdiag daemon {status['version']}: running, pid {status['pid']}, up {_age(status['uptime_s'])}",
             f"  config:   {status['config']} (reloaded {status['reloads']}x), every {status['interval_s']:g} s",
             f"  sweeps:   {status['sweeps']}, history: {status['history_reports']} report(s)"]
    if last:
        lines.append(f"  last:     {last['verdict'].upper()} — {last['top_cause']} ({last['confidence']:.0%}), "
                     f"{last['trigger']} at {last['started_at']}")
    lines.append(f"  txlog:    {status['txlog'] or 'not watched'}")
    from posdiag.agent.push import status_lines

    lines += status_lines(status["push"], status.get("store"))
    if status.get("last_error"):
        lines.append(f"  problem:  {status['last_error']}")
    out.write("\n".join(lines) + "\n")
    return Exit.OK


def _age(seconds: float) -> str:
    rest = int(seconds)
    days, rest = divmod(rest, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return " ".join(f"{v}{u}" for v, u in ((days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")) if v) or "0s"


def parse_age(text: str) -> float:
    """'90s', '30m', '2h', '7d' → seconds."""
    import re

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not match:
        raise ValueError(f"--since: expected an age such as 90s, 30m, 2h or 7d, got {text!r}")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def cmd_history(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    import time

    from posdiag.agent import config
    from posdiag.agent.report import utc_iso
    from posdiag.agent.store import open_readonly

    settings = config.load(args.config)
    try:
        since = time.time() - parse_age(args.since) if args.since else None
    except ValueError as exc:
        err.write(f"posdiag: {exc}\n")
        return Exit.UNKNOWN
    import sqlite3

    rows = []
    try:
        store = open_readonly(settings.daemon.state_dir)
        if store is not None:
            with store:
                rows = store.list(since=since, limit=args.limit)
                if args.json:
                    out.write(json.dumps([store.get(r.report_id) for r in rows], indent=2) + "\n")
                    return Exit.OK
    except sqlite3.DatabaseError as exc:
        err.write(f"posdiag: the history in {settings.daemon.state_dir} cannot be read ({exc}); the daemon moves a "
                  "damaged store aside and starts a fresh one when it next writes\n")
        return Exit.UNKNOWN
    if args.json:
        out.write("[]\n")
        return Exit.OK
    if not rows:
        out.write(f"no stored reports in {settings.daemon.state_dir}\n")
        return Exit.OK
    out.write(f"{'started (UTC)':<20}  {'trigger':<9}  {'verdict':<8}  {'top cause':<19}  conf  report\n")
    for r in rows:
        out.write(f"{utc_iso(r.started_at):<20}  {r.trigger:<9}  {r.verdict:<8}  {r.top_cause:<19}  "
                  f"{r.confidence:4.0%}  {r.report_id}\n")
    return Exit.OK


def cmd_bundle(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    import time
    from pathlib import Path

    from posdiag.agent import config
    from posdiag.agent.bundle import make_bundle

    settings = config.load(args.config)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = Path(args.output or f"posdiag-bundle-{settings.terminal_id}-{stamp}.tar.gz")
    path, size = make_bundle(settings, settings.source, target)
    out.write(f"support bundle written to {path.resolve()} ({size / 1024:.1f} KiB); send it with the ticket\n")
    return Exit.OK


def cmd_config_check(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from posdiag.agent import config
    from posdiag.agent.diagnosis import load_knowledge
    from posdiag.agent.paths import causes_path

    settings = config.load(args.config)
    problems = config.check_paths(settings)
    if problems:
        raise config.ConfigError(settings.source, problems)
    if settings.server.url:
        _require_push(settings)
    load_knowledge(causes_path())
    hosts = ", ".join(h.label for h in settings.payment_hosts) or "none"
    out.write(f"{settings.source}: OK (terminal {settings.terminal_id}, payment hosts: {hosts}, "
              f"reader: {settings.reader.kind}, push: {settings.server.url or 'not configured'})\n")
    return Exit.OK


def main(argv: list[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout or _Closed()
    err = err or sys.stderr or _Closed()
    argv = sys.argv[1:] if argv is None else list(argv)
    speak(argv)
    args = build_parser().parse_args(argv)
    handler = {"diagnose": cmd_diagnose, "probes": cmd_probes, "config": cmd_config_check, "run": cmd_run,
               "trigger": cmd_trigger, "status": cmd_status, "history": cmd_history, "push": cmd_push,
               "bundle": cmd_bundle}[args.command]
    try:
        code = int(handler(args, out, err))
        out.flush()
        return code
    except Exception as exc:  # noqa: BLE001 - every failure ends in one line and exit 3, never a traceback
        return _report_failure(exc, args.debug, err)
    except KeyboardInterrupt:
        _say(err, "posdiag: interrupted\n")
        return Exit.UNKNOWN


def _report_failure(exc: Exception, debug: bool, err: TextIO) -> int:
    """One line that says what went wrong; the traceback only when ``--debug`` asked for it."""
    from posdiag.agent.access import AccessDenied
    from posdiag.agent.config import ConfigError
    from posdiag.agent.control import SocketPathTaken
    from posdiag.agent.sweep import UnknownProbe

    if isinstance(exc, ConfigError):
        message = exc.render()
    elif isinstance(exc, (UnknownProbe, SocketPathTaken, UsageError)):
        message = str(exc)
    elif isinstance(exc, AccessDenied):
        message = str(exc)  # already says which group would let the user in
    elif isinstance(exc, PermissionError):
        message = f"permission denied: {exc}"
    elif isinstance(exc, OSError) and exc.errno in (errno.EPIPE, errno.EBADF, errno.ENOSPC):
        message = f"cannot write the output: {exc.strerror or exc}"
    else:
        message = f"internal error: {exc!r}" + ("" if debug else " (run with --debug for the traceback)")
    _say(err, f"posdiag: {message}\n")
    if debug:
        import traceback

        _say(err, "".join(traceback.format_exception(exc)))
    return Exit.UNKNOWN


def _say(err: TextIO, text: str) -> None:
    try:
        err.write(text)
        err.flush()
    except (OSError, ValueError):
        pass  # stderr itself is gone: the exit status is all that is left


class _Closed:
    """Stands in for a standard stream that was closed (``posdiag diagnose >&-``)."""

    def write(self, _text: str) -> int:
        raise OSError(errno.EBADF, "standard output is closed")

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def _hold_standard_fds() -> None:
    """Keep fds 0-2 taken: when the caller closed one, the first file a probe opens would get it,
    and the report would be written into that file. A read-only /dev/null there makes writes fail."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDONLY)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


def entry() -> None:
    _hold_standard_fds()
    code = main()
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except OSError:
        code = Exit.UNKNOWN  # main already said why; keep Python from printing it again at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    sys.exit(code)
