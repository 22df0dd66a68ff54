"""The ``posdiag`` command line: a thin shell that parses arguments and maps outcomes to exit codes.

Exit codes follow the monitoring-plugin convention (DESIGN.md): 0 healthy, 1 degraded, 2 fault,
3 could not diagnose. Streams are passed in so tests run the real CLI without patching globals.
"""

from __future__ import annotations

import argparse
import enum
import json
import sys
from typing import Any, TextIO

from posdiag.agent import __version__


class Exit(enum.IntEnum):
    HEALTHY = 0
    DEGRADED = 1
    FAULT = 2
    UNKNOWN = 3


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on bad usage, which monitoring would read as "fault": exit 3 instead."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(Exit.UNKNOWN, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="posdiag", description="Find out why a POS terminal fails payments "
                                     "with error 2824.")
    parser.add_argument("--version", action="version", version=f"posdiag {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    diag = sub.add_parser("diagnose", help="run a one-shot diagnosis")
    diag.add_argument("--config", metavar="F", help="configuration file")
    diag.add_argument("--json", action="store_true", help="print the report as JSON (posdiag.report/1)")
    diag.add_argument("--only", metavar="P,...", help="run only these probes (names or areas, comma-separated)")
    diag.add_argument("--push", action="store_true", help="also queue the report for the central server")

    sub.add_parser("probes", help="list the probes and what each one checks")

    run = sub.add_parser("run", help="the daemon: diagnose at boot, on schedule, on demand and on 2824 events")
    run.add_argument("--config", metavar="F", help="configuration file")

    trig = sub.add_parser("trigger", help="ask the running daemon to diagnose now")
    trig.add_argument("--config", metavar="F", help="configuration file")
    trig.add_argument("--json", action="store_true", help="print the report as JSON")

    stat = sub.add_parser("status", help="daemon state: last verdict, history, pushes")
    stat.add_argument("--config", metavar="F", help="configuration file")
    stat.add_argument("--json", action="store_true", help="print the status as JSON")

    hist = sub.add_parser("history", help="stored reports, newest first")
    hist.add_argument("--config", metavar="F", help="configuration file")
    hist.add_argument("--json", action="store_true", help="print the reports as JSON")
    hist.add_argument("--since", metavar="AGE", help="only reports younger than AGE, e.g. 90s, 30m, 2h, 7d")
    hist.add_argument("--limit", type=int, default=50, help="at most this many reports (default 50)")

    push = sub.add_parser("push", help="send the queued reports to the central server now (when no daemon runs)")
    push.add_argument("--config", metavar="F", help="configuration file")
    push.add_argument("--requeue-refused", action="store_true", help="first put back reports the server refused")

    cfg = sub.add_parser("config", help="configuration commands")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True, metavar="ACTION", parser_class=_Parser)
    check = cfg_sub.add_parser("check", help="validate a configuration and say what is wrong")
    check.add_argument("--config", metavar="F", help="configuration file")
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
    from posdiag.agent.sweep import run_sweep

    settings = config.load(args.config)
    if args.push:
        _require_push(settings)
    only = [p.strip() for p in args.only.split(",") if p.strip()] if args.only else None
    progress = Progress(err)
    try:
        report = run_sweep(settings, trigger="on-demand", only=only, on_result=progress,
                           deadline_s=_remaining(settings.diagnosis.deadline_s))
    finally:
        progress.clear()
    if args.push:
        from posdiag.agent.push import queue

        queue(settings, report, err)
    code = _print_report(report, args.json, out)
    ran = [p for p in report["probes"] if p["status"] != "skipped"]
    if ran and all(p["status"] == "error" for p in ran):
        err.write("posdiag: no probe could check anything; cannot diagnose\n")
        return Exit.UNKNOWN
    return code


def _remaining(deadline_s: float) -> float:
    """The probes' share of the deadline once this process's own start-up is paid for, so that the
    command as a whole — what cron or Nagios waits for — ends within the configured deadline."""
    return max(deadline_s * 0.5, deadline_s - _startup_s() - 0.1)


def _startup_s() -> float:
    """Seconds since this process started. On Linux from /proc in clock ticks since boot (10 ms):
    psutil's create_time() adds the boot time, which the kernel gives in whole seconds, so the
    difference from time.time() could be off by up to a second and cut the probes' share short."""
    import os

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
    return 0


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


def _print_report(report: dict, as_json: bool, out: TextIO) -> int:
    from posdiag.agent.report import EXIT_CODES, render_text

    out.write(json.dumps(report, indent=2) + "\n" if as_json else render_text(report))
    return EXIT_CODES[report["diagnosis"]["verdict"]]


def cmd_trigger(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from posdiag.agent import config
    from posdiag.agent.control import DaemonNotRunning, request

    settings = config.load(args.config)
    try:
        reply = request(settings.daemon.control_socket, {"cmd": "trigger"},
                        timeout_s=settings.diagnosis.deadline_s + 35)
    except DaemonNotRunning as exc:
        err.write(f"posdiag: {exc}; diagnosing locally instead\n")
        from posdiag.agent.sweep import run_sweep

        return _print_report(run_sweep(settings, trigger="on-demand"), args.json, out)
    if not reply.get("ok"):
        err.write(f"posdiag: the daemon could not diagnose: {reply.get('error')}\n")
        return Exit.UNKNOWN
    return _print_report(reply["report"], args.json, out)


def cmd_status(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from posdiag.agent import config
    from posdiag.agent.control import DaemonNotRunning, request

    settings = config.load(args.config)
    try:
        status = request(settings.daemon.control_socket, {"cmd": "status"}, timeout_s=5)["status"]
    except DaemonNotRunning as exc:
        from posdiag.agent.push import push_status, status_lines, store_status

        push, store = push_status(settings), store_status(settings, None)  # the outbox waits all the same
        if args.json:
            out.write(json.dumps({"running": False, "error": str(exc), "push": push, "store": store}) + "\n")
        else:
            out.write("\n".join([f"posdiag daemon: not running ({exc})", *status_lines(push, store)]) + "\n")
        return Exit.UNKNOWN
    if args.json:
        out.write(json.dumps({"running": True, **status}, indent=2) + "\n")
        return 0
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
    return 0


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
                    return 0
    except sqlite3.DatabaseError as exc:
        err.write(f"posdiag: the history in {settings.daemon.state_dir} cannot be read ({exc}); the daemon moves a "
                  "damaged store aside and starts a fresh one when it next writes\n")
        return Exit.UNKNOWN
    if args.json:
        out.write("[]\n")
        return 0
    if not rows:
        out.write(f"no stored reports in {settings.daemon.state_dir}\n")
        return 0
    out.write(f"{'started (UTC)':<20}  {'trigger':<9}  {'verdict':<8}  {'top cause':<19}  conf  report\n")
    for r in rows:
        out.write(f"{utc_iso(r.started_at):<20}  {r.trigger:<9}  {r.verdict:<8}  {r.top_cause:<19}  "
                  f"{r.confidence:4.0%}  {r.report_id}\n")
    return 0


def cmd_config_check(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from posdiag.agent import config
    from posdiag.agent.diagnosis import load_knowledge
    from posdiag.agent.paths import causes_path

    settings = config.load(args.config)
    if settings.server.url:
        _require_push(settings)
    load_knowledge(causes_path())
    hosts = ", ".join(h.label for h in settings.payment_hosts) or "none"
    out.write(f"{settings.source}: OK (terminal {settings.terminal_id}, payment hosts: {hosts}, "
              f"reader: {settings.reader.kind}, push: {settings.server.url or 'not configured'})\n")
    return 0


def main(argv: list[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    from posdiag.agent.config import ConfigError

    out = out or sys.stdout
    err = err or sys.stderr
    args = build_parser().parse_args(argv)
    handler = {"diagnose": cmd_diagnose, "probes": cmd_probes, "config": cmd_config_check, "run": cmd_run,
               "trigger": cmd_trigger, "status": cmd_status, "history": cmd_history, "push": cmd_push}[args.command]
    try:
        return int(handler(args, out, err))
    except ConfigError as exc:
        err.write(f"posdiag: {exc.render()}\n")
        return Exit.UNKNOWN
    except KeyboardInterrupt:
        err.write("posdiag: interrupted\n")
        return Exit.UNKNOWN
    except Exception as exc:  # noqa: BLE001 - an internal error must still exit 3, not 1
        from posdiag.agent.sweep import UnknownProbe

        if isinstance(exc, UnknownProbe):
            err.write(f"posdiag: {exc}\n")
        else:
            import traceback

            err.write(f"posdiag: internal error: {exc!r}\n{traceback.format_exc()}")
        return Exit.UNKNOWN


def entry() -> None:
    sys.exit(main())
