"""The ``posdiag`` command line: a thin shell that parses arguments and maps outcomes to exit codes.

Exit codes follow the monitoring-plugin convention (:mod:`posdiag.agent.exits`). Streams are passed
in so tests run the real CLI without patching globals. ``main`` turns every failure into one line on
stderr and exit 3; the traceback of an internal error is shown only with ``--debug``.
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import os
import sys
from typing import Any, TextIO

from posdiag.agent import __version__
from posdiag.agent.exits import NOTHING_CHECKED, Exit
from posdiag.core import i18n
from posdiag.core.i18n import N_, ntr, tr
from posdiag.core.timefmt import compact_stamp
from posdiag.core.vocabulary import Trigger

#: ``history --limit`` above this is refused by the parser (SQLite takes 64-bit integers only)
MAX_LIMIT = 1_000_000
#: ``diagnose --format``: for a person, for programs, for monitoring plugins, for Prometheus.
FORMATS = ("text", "json", "nagios", "prometheus")
#: what keeping a report in the history takes after the probes (open, insert, fsync; bench/live_bench.py
#: measures it at 35 ms median, 56 ms worst on a loaded machine, plus the store's imports)
KEEP_RESERVE_S = 0.15
#: ``watch --interval``: not so often that it hammers the payment host and the reader, at least once an hour
MIN_INTERVAL_S, MAX_INTERVAL_S = 0.5, 3600.0


class UsageError(Exception):
    """Options that contradict each other: said in one line, exit 3 like any bad usage."""


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on bad usage, which monitoring would read as "fault": exit 3 instead. Help is
    laid out by display width (:mod:`posdiag.agent.helptext`)."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        from posdiag.agent.helptext import HelpFormatter

        kw.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kw)

    def error(self, message: str) -> None:  # type: ignore[override]
        from posdiag.core.redact import mask_text

        self.print_usage(sys.stderr)
        self.exit(Exit.UNKNOWN, tr("{prog}: error: {message}", prog=self.prog, message=mask_text(message)) + "\n")

    def format_help(self) -> str:
        """argparse puts an ASCII colon after its section headings itself; Chinese takes its own (：)."""
        text = super().format_help()
        for heading in (tr("positional arguments"), tr("options")):
            text = text.replace(f"\n{heading}:\n", "\n" + tr("{heading}:", heading=heading) + "\n")
        return text


def _limit(text: str) -> int:
    try:
        value = int(text) if len(text) <= 20 else None
    except ValueError:
        value = None
    if value is None or not 1 <= value <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(tr("expected a whole number from 1 to {limit}, got {value!r}",
                                            limit=MAX_LIMIT, value=text[:40]))
    return value


def _interval(text: str) -> float:
    try:
        value = float(text) if len(text) <= 20 else math.nan
    except ValueError:
        value = math.nan
    if not MIN_INTERVAL_S <= value <= MAX_INTERVAL_S:  # NaN fails both
        raise argparse.ArgumentTypeError(tr("expected seconds from {low} to {high}, got {value!r}", low=MIN_INTERVAL_S,
                                            high=MAX_INTERVAL_S, value=text[:40]))
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
    from posdiag.core.settings import configured_language

    given = _option(argv, "--lang")
    # the configuration is read for its language only when --lang does not decide (~1 ms of TOML)
    configured = None if i18n.normalise(given or "") else configured_language(_option(argv, "--config"))
    lang = i18n.choose(given, configured)
    translator = i18n.use(lang)
    argparse._ = translator.gettext  # argparse looks its words up through this module global
    argparse.ngettext = translator.ngettext
    return translator.lang


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="posdiag", description=tr("Find out why a POS terminal fails payments with error 2824."))
    parser.add_argument("--version", action="version", version=f"posdiag {__version__}",
                        help=tr("show the version and exit"))
    _lang_option(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    common = [_common()]

    diag = sub.add_parser("diagnose", help=tr("run a one-shot diagnosis"), parents=common,
                          description=tr("Run every probe once, now, and say why payments fail: the verdict, the most "
                                         "likely cause, its evidence and the steps that fix it. The report is kept in "
                                         "the local history when it can be written."))
    diag.add_argument("--json", action="store_true", help=tr("print the report as JSON (posdiag.report/1)"))
    diag.add_argument("--only", metavar="P,...", help=tr("run only these probes (names or areas, comma-separated)"))
    diag.add_argument("--push", action="store_true", help=tr("also queue the report for the central server"))
    diag.add_argument("--format", choices=FORMATS, help=tr("text (default), json (the same as --json), nagios (one "
                                                           "monitoring-plugin line) or prometheus (node_exporter textfile)"))
    diag.add_argument("-o", "--output", metavar="FILE", help=tr("write to FILE (atomically replaced) instead of stdout"))

    probes = sub.add_parser("probes", help=tr("list the probes and what each one checks"),
                            description=tr("List every probe, what it checks, and the probes it runs after."))
    probes.set_defaults(debug=False)
    _lang_option(probes)
    sub.add_parser("run", parents=common, help=tr("the daemon: diagnose at boot, on schedule, on demand and on 2824 events"),
                   description=tr("Run as the daemon (systemd starts it): diagnose at start, on a schedule, when asked "
                                  "and when a 2824 appears in the POS log; keep and push every report. SIGHUP reloads "
                                  "the configuration, SIGTERM stops it."))

    watch = sub.add_parser("watch", parents=common, help=tr("diagnose again and again and show what changes"),
                           description=tr("Diagnose again and again, one sweep at a time, and show each probe's "
                                          "status and every change as it happens, while you re-seat a cable or watch "
                                          "a link. Ctrl-C ends the session: its summary is printed and kept in the "
                                          "history."))
    watch.add_argument("--only", metavar="P,...", help=tr("watch only these probes (names or areas, comma-separated)"))
    watch.add_argument("--interval", metavar="S", type=_interval, default=2.0,
                       help=tr("seconds from the start of one sweep to the next (default 2)"))

    show = sub.add_parser("show", parents=common, help=tr("show a stored report by its short or full id"),
                          description=tr("Print a report from the local history as diagnose printed it; ID is the "
                                         "short id the report showed (or more of it, or the full id)."))
    show.add_argument("id", metavar="ID", help=tr("the report's short or full id"))
    show.add_argument("--json", action="store_true", help=tr("print the report as JSON (posdiag.report/1)"))

    trig = sub.add_parser("trigger", help=tr("ask the running daemon to diagnose now"), parents=common,
                          description=tr("Ask the running daemon to diagnose now and print its report, which it also "
                                         "keeps and pushes; without a daemon, diagnose here instead."))
    trig.add_argument("--json", action="store_true", help=tr("print the report as JSON"))

    stat = sub.add_parser("status", help=tr("daemon state: last verdict, history, pushes"), parents=common,
                          description=tr("Say whether the daemon runs, what it found last, and how pushing to the "
                                         "central server goes; exit 3 when no daemon answers."))
    stat.add_argument("--json", action="store_true", help=tr("print the status as JSON"))

    hist = sub.add_parser("history", help=tr("stored reports, newest first"), parents=common,
                          description=tr("List the reports kept in the local history, newest first, each with the "
                                         "short id that 'posdiag show' takes."))
    hist.add_argument("--json", action="store_true", help=tr("print the reports as JSON"))
    hist.add_argument("--since", metavar="AGE", help=tr("only reports younger than AGE, e.g. 90s, 30m, 2h, 7d"))
    hist.add_argument("--limit", type=_limit, default=50, help=tr("at most this many reports (default 50)"))

    push = sub.add_parser("push", parents=common,
                          help=tr("send the queued reports to the central server now (when no daemon runs)"),
                          description=tr("Send the reports waiting in the outbox to the central server now; exit 3 "
                                         "with the reason when they cannot all be sent."))
    push.add_argument("--requeue-refused", action="store_true", help=tr("first put back reports the server refused"))

    bundle = sub.add_parser("bundle", help=tr("support bundle for the help desk, secrets redacted"), parents=common,
                            description=tr("Write one archive for the help desk: the configuration without its "
                                           "secrets, the last reports, the daemon's status, versions and the relevant "
                                           "log lines."))
    bundle.add_argument("-o", "--output", metavar="FILE",
                        help=tr("where to write it (default: ./posdiag-bundle-<terminal>-<time>.tar.gz)"))

    cfg = sub.add_parser("config", help=tr("configuration commands"),
                         description=tr("Commands about the configuration file."))
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True, metavar="ACTION", parser_class=_Parser)
    cfg_sub.add_parser("check", parents=common, help=tr("validate a configuration and say what is wrong"),
                       description=tr("Validate a configuration file and say which key is wrong and what was "
                                      "expected; exit 3 when anything is."))
    return parser


def cmd_diagnose(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from posdiag.core import settings as config

    if args.json and args.format not in (None, "json"):
        raise UsageError(tr("--json and --format {format} ask for two different outputs; give one", format=args.format))
    fmt = "json" if args.json else args.format or "text"
    settings = config.load(args.config)
    if args.push:
        _require_push(settings)
    return _diagnose(settings, fmt, out, err, only=_names(args.only), push=args.push, output=args.output)


def _names(only: str | None) -> list[str] | None:
    """``--only a,b``: the names given, or None for every probe."""
    return [p.strip() for p in only.split(",") if p.strip()] if only else None


def _diagnose(settings: Any, fmt: str, out: TextIO, err: TextIO, only: list[str] | None = None,
              push: bool = False, output: str | None = None) -> int:
    """One local diagnosis within the deadline, printed, kept in the local history when it can be
    written (and queued for the server with ``push``); shared by ``diagnose`` and ``trigger``."""
    from posdiag.agent.history import writable
    from posdiag.agent.progress import Progress
    from posdiag.agent.sweep import run_sweep

    keeping = writable(settings.daemon.state_dir)
    after = KEEP_RESERVE_S if push or keeping else 0.0
    with Progress(err) as progress:
        report = run_sweep(settings, trigger=Trigger.ON_DEMAND.value, only=only, on_result=progress.on_result,
                           on_running=progress.on_running, deadline_s=_remaining(settings.diagnosis.deadline_s, after))
    if push:
        from posdiag.agent.push import queue

        queue(settings, report, err)
    elif keeping:
        from posdiag.agent.store import keep

        keep(settings, report)
    code = Exit.for_report(report)
    _emit(report, fmt, code, out, output, settings.daemon.state_dir)
    if code is Exit.UNKNOWN:
        err.write("posdiag: " + tr(NOTHING_CHECKED) + "\n")
    return code


def _remaining(deadline_s: float, after_s: float = 0.0) -> float:
    """The probes' share of the deadline once this process's own start-up is paid for, and what it
    does after the probes (``after_s``: keeping the report), so that the command as a whole — what
    cron or Nagios waits for — ends within the configured deadline."""
    return max(deadline_s * 0.5, deadline_s - _startup_s() - 0.1 - after_s)


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
    from posdiag.agent.columns import SCREEN, table

    rows = []
    for cls in probes.all_probes():
        # the probe marks its description N_() where it declares it; said here in the reader's language
        what = tr(cls.description)
        if cls.requires:
            what += "  " + tr("(after {probes})", probes=", ".join(cls.requires))
        rows.append([cls.name, what])
    out.writelines(line + "\n" for line in table(rows, width=SCREEN))
    return Exit.OK


def _require_push(settings: Any) -> None:
    """Push needs a server and a token file only its owner can read: refused like a bad config."""
    from posdiag.agent.pushsetup import check
    from posdiag.core.message import Message
    from posdiag.core.settings import ConfigError

    if not settings.server.url:
        raise ConfigError(settings.source, [Message(N_("server.url: expected the central server's URL to push to"))])
    problems = check(settings.server)
    if problems:
        raise ConfigError(settings.source, problems)


def cmd_push(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from posdiag.agent.push import push_now
    from posdiag.core import settings as config

    settings = config.load(args.config)
    _require_push(settings)
    return push_now(settings, out, err, requeue_refused=args.requeue_refused)


def cmd_run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from posdiag.agent.daemon import run

    return run(args.config, args.lang)


def _short_id(state_dir: str | None, report_id: str) -> str | None:
    """The report's short id in the history of ``state_dir``; None (its first characters) where no
    history was ever kept, without loading the store."""
    from posdiag.agent.history import nothing_stored

    if not state_dir or nothing_stored(state_dir):
        return None
    from posdiag.agent.store import short_id_for

    return short_id_for(state_dir, report_id)


def _emit(report: dict, fmt: str, code: int, out: TextIO, output: str | None = None, state_dir: str | None = None) -> None:
    """Render the report in ``fmt``; to ``output`` atomically (a textfile collector or a monitor
    reading it never sees half a file), else to ``out``. The text shows the report's short id in
    the history of ``state_dir``."""
    from posdiag.agent import formats
    from posdiag.agent.report import render_text

    text = {"json": lambda: json.dumps(report, indent=2) + "\n",
            "text": lambda: render_text(report, _short_id(state_dir, report["report_id"])),
            "nagios": lambda: formats.nagios_line(report, code),
            "prometheus": lambda: formats.prometheus_text(report, code)}[fmt]()
    if output:
        formats.write_atomically(output, text)
    else:
        out.write(text)


def _print_report(report: dict, as_json: bool, out: TextIO, state_dir: str) -> int:
    code = Exit.for_verdict(report["diagnosis"]["verdict"])
    _emit(report, "json" if as_json else "text", code, out, state_dir=state_dir)
    return code


def cmd_trigger(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from posdiag.agent.control import DaemonBusy, DaemonNotRunning, request
    from posdiag.core import settings as config
    from posdiag.core.message import translated

    settings = config.load(args.config)
    try:
        reply = request(settings.daemon.control_socket, {"cmd": "trigger"},
                        timeout_s=settings.diagnosis.deadline_s + 35)
    except DaemonNotRunning as exc:
        err.write("posdiag: " + tr("{problem}; diagnosing locally instead", problem=translated(exc)) + "\n")
        return _diagnose(settings, "json" if args.json else "text", out, err)
    except DaemonBusy as exc:  # a live daemon owns the probes: never diagnose beside it
        err.write("posdiag: " + tr("{problem}; try again in a moment", problem=translated(exc)) + "\n")
        return Exit.UNKNOWN
    if not reply.get("ok"):
        err.write("posdiag: " + tr("the daemon could not diagnose: {error}", error=reply.get("error")) + "\n")
        return Exit.UNKNOWN
    return _print_report(reply["report"], args.json, out, settings.daemon.state_dir)


def cmd_watch(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from posdiag.agent.watch import run_watch
    from posdiag.core import settings as config

    return run_watch(config.load(args.config), out, err, only=_names(args.only), interval_s=args.interval)


def cmd_show(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    import sqlite3

    from posdiag.agent.report import render_text
    from posdiag.agent.store import find_report
    from posdiag.core import settings as config
    from posdiag.core.redact import mask_data

    settings = config.load(args.config)
    try:
        report, short = find_report(settings.daemon.state_dir, args.id)
    except sqlite3.DatabaseError as exc:
        err.write("posdiag: " + _unreadable(settings.daemon.state_dir, exc) + "\n")
        return Exit.UNKNOWN
    report = mask_data(report)  # masked again: a report stored by an older posdiag may not have been
    out.write(json.dumps(report, indent=2) + "\n" if args.json else render_text(report, short))
    return Exit.for_verdict(report["diagnosis"]["verdict"])


def _unreadable(path: str, exc: Exception) -> str:
    return tr("the history in {path} cannot be read ({error}); the daemon moves a damaged store aside and starts a "
              "fresh one when it next writes", path=path, error=exc)


def cmd_status(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from posdiag.agent.control import DaemonBusy, DaemonNotRunning, request
    from posdiag.agent.push import labelled, read_status, status_rows
    from posdiag.core import settings as config
    from posdiag.core.message import translated
    from posdiag.core.redact import mask_data, mask_text

    settings = config.load(args.config)
    try:
        status = request(settings.daemon.control_socket, {"cmd": "status"}, timeout_s=5)["status"]
    except (DaemonNotRunning, DaemonBusy) as exc:
        running = isinstance(exc, DaemonBusy)
        _, push, store = read_status(settings)  # the outbox waits all the same
        if args.json:
            out.write(json.dumps(mask_data({"running": running, "error": str(exc), "push": push, "store": store})) + "\n")
        else:
            head = tr("posdiag daemon: busy") if running else tr("posdiag daemon: not running")
            rows = [(N_("problem:"), translated(exc)), *status_rows(push, store)]
            out.write(mask_text("\n".join([head, *labelled(rows)])) + "\n")
        return Exit.UNKNOWN
    if args.json:
        out.write(json.dumps(mask_data({"running": True, **status}), indent=2) + "\n")
        return Exit.OK
    out.write(mask_text("\n".join(_status_text(status, settings.daemon.state_dir))) + "\n")
    return Exit.OK


def _status_text(status: dict[str, Any], state_dir: str) -> list[str]:
    """What ``status`` prints about a running daemon: a heading, then labelled lines in one column."""
    from posdiag.agent.push import labelled, status_rows
    from posdiag.agent.store import short_id_for
    from posdiag.agent.words import TRIGGER_WORDS, VERDICT_WORDS, said

    last = status["last"]
    rows = [(N_("config:"), tr("{config} (reloaded {reloads}x), every {interval:g} s", config=status["config"],
                               reloads=status["reloads"], interval=status["interval_s"])),
            (N_("sweeps:"), tr("{sweeps}, history: {history} report(s)", sweeps=status["sweeps"],
                               history=status["history_reports"]))]
    if last:
        rows.append((N_("last:"), tr("{verdict} — {cause} ({confidence:.0%}), {trigger} at {started_at}, report {id}",
                                     verdict=said(VERDICT_WORDS, last["verdict"]), cause=last["top_cause"],
                                     confidence=last["confidence"], trigger=said(TRIGGER_WORDS, last["trigger"]),
                                     started_at=last["started_at"], id=short_id_for(state_dir, last["report_id"]))))
        if last.get("risks"):
            rows.append((N_("risks:"), ntr("{n} ahead, the soonest due {due_at}", "{n} ahead, the soonest due {due_at}",
                                           last["risks"], due_at=last.get("soonest_risk") or "?")))
    rows.append((N_("txlog:"), status["txlog"] or tr("not watched")))
    rows += status_rows(status["push"], status.get("store"))
    if status.get("last_error"):
        rows.append((N_("problem:"), status["last_error"]))
    head = tr("posdiag daemon {version}: running, pid {pid}, up {uptime}", version=status["version"],
              pid=status["pid"], uptime=_age(status["uptime_s"]))
    return [head, *labelled(rows)]


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
        raise ValueError(tr("--since: expected an age such as 90s, 30m, 2h or 7d, got {value!r}", value=text))
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def cmd_history(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    import time

    from posdiag.agent.store import open_readonly
    from posdiag.core import settings as config
    from posdiag.core.redact import mask_data

    settings = config.load(args.config)
    try:
        since = time.time() - parse_age(args.since) if args.since else None
    except ValueError as exc:
        err.write(f"posdiag: {exc}\n")
        return Exit.UNKNOWN
    import sqlite3

    rows, shorts = [], {}
    try:
        store = open_readonly(settings.daemon.state_dir)
        if store is not None:
            with store:
                rows = store.list(since=since, limit=args.limit)
                if args.json:  # masked again: a report stored by an older posdiag may not have been
                    out.write(json.dumps(mask_data([store.get(r.report_id) for r in rows]), indent=2) + "\n")
                    return Exit.OK
                shorts = {r.report_id: store.short_id(r.report_id) for r in rows}
    except sqlite3.DatabaseError as exc:
        err.write("posdiag: " + _unreadable(settings.daemon.state_dir, exc) + "\n")
        return Exit.UNKNOWN
    if args.json:
        out.write("[]\n")
        return Exit.OK
    if not rows:
        out.write(tr("no stored reports in {path}", path=settings.daemon.state_dir) + "\n")
        return Exit.OK
    out.writelines(line + "\n" for line in _history_table(rows, shorts))
    return Exit.OK


def _history_table(rows: list[Any], shorts: dict[str, str]) -> list[str]:
    """One line per stored report under headings in the reader's language, the columns aligned by
    the cells a terminal gives each character (a CJK heading takes two per character). Triggers and
    verdicts in the reader's words; cause ids as they are (the help desk's words in every language);
    the report by the short id ``show`` takes."""
    from posdiag.agent.columns import display_width, pad, pad_left, table
    from posdiag.agent.words import TRIGGER_WORDS, VERDICT_NAMES, said
    from posdiag.core.timefmt import utc_iso

    # the minimum widths keep the English columns where they always were
    headings = [pad(tr("started (UTC)"), 20), pad(tr("trigger"), 9), pad(tr("verdict"), 8), pad(tr("top cause"), 19),
                tr("conf"), tr("report")]
    conf = max(4, display_width(headings[4]))
    return table([headings] + [[utc_iso(r.started_at), said(TRIGGER_WORDS, r.trigger), said(VERDICT_NAMES, r.verdict),
                                r.top_cause, pad_left(f"{r.confidence:.0%}", conf), shorts[r.report_id]] for r in rows])


def cmd_bundle(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from pathlib import Path

    from posdiag.agent.bundle import make_bundle
    from posdiag.core import settings as config

    settings = config.load(args.config)
    stamp = compact_stamp()
    target = Path(args.output or f"posdiag-bundle-{settings.terminal_id}-{stamp}.tar.gz")
    path, size = make_bundle(settings, settings.source, target, deadline_s=_remaining(settings.diagnosis.deadline_s))
    out.write(tr("support bundle written to {path} ({kib:.1f} KiB); send it with the ticket", path=path.resolve(),
                 kib=size / 1024) + "\n")
    return Exit.OK


def cmd_config_check(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from posdiag.agent.columns import fit
    from posdiag.agent.diagnosis import load_knowledge
    from posdiag.core import settings as config
    from posdiag.core.paths import causes_path
    from posdiag.core.redact import mask_text

    settings = config.load(args.config)
    problems = config.check_paths(settings)
    if problems:
        raise config.ConfigError(settings.source, problems)
    if settings.server.url:
        _require_push(settings)
    load_knowledge(causes_path())
    # the URLs and health paths as configured, their passwords and query values replaced
    hosts = ", ".join(mask_text(f"{h.label} {h.health_path}".rstrip()) for h in settings.payment_hosts) or tr("none")
    said = tr("{path}: OK (terminal {terminal}, payment hosts: {hosts}, reader: {reader}, push: {push})",
              path=settings.source, terminal=settings.terminal_id, hosts=hosts, reader=settings.reader.kind,
              push=mask_text(settings.server.url) or tr("not configured"))
    out.writelines(line + "\n" for line in fit(said))
    return Exit.OK


def main(argv: list[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout or _Closed()
    err = _Masked(err or sys.stderr or _Closed())
    argv = sys.argv[1:] if argv is None else list(argv)
    speak(argv)
    args = build_parser().parse_args(argv)
    # --lang before or after the command (a subcommand's default would hide the one given before it)
    args.lang = i18n.normalise(_option(argv, "--lang") or "")
    handler = {"diagnose": cmd_diagnose, "probes": cmd_probes, "config": cmd_config_check, "run": cmd_run,
               "trigger": cmd_trigger, "status": cmd_status, "history": cmd_history, "push": cmd_push,
               "bundle": cmd_bundle, "watch": cmd_watch, "show": cmd_show}[args.command]
    try:
        code = int(handler(args, out, err))
        out.flush()
        return code
    except Exception as exc:  # noqa: BLE001 - every failure ends in one line and exit 3, never a traceback
        _failure_for_machines(exc, args, out)
        return _report_failure(exc, args.debug, err)
    except KeyboardInterrupt:
        _say(err, "posdiag: " + tr("interrupted") + "\n")
        return Exit.UNKNOWN


def _failure_for_machines(exc: Exception, args: argparse.Namespace, out: TextIO) -> None:
    """Where a program reads stdout (``--json``, ``--format json|nagios``), say the failure there in its
    form too, not only on stderr: one ``POSDIAG UNKNOWN - <reason>`` plugin line, or a JSON object
    ``{"error": {"code": ..., "message": ...}}``, masked like all standard output. The exit status (3)
    is the same either way."""
    fmt = "json" if getattr(args, "json", False) else getattr(args, "format", None)
    if fmt not in ("json", "nagios"):
        return
    from posdiag.agent import formats
    from posdiag.core.redact import mask_data, mask_text

    code, message, problems = _failure_words(exc)
    try:
        if fmt == "nagios":
            out.write(mask_text(formats.unknown_line(message)))
        else:
            error: dict[str, Any] = {"code": code, "message": message}
            if problems:
                error["problems"] = problems
            out.write(json.dumps(mask_data({"error": error}), ensure_ascii=False, indent=2) + "\n")
        out.flush()
    except (OSError, ValueError):
        pass  # stdout itself is the failure: the exit status and stderr still say it


def _failure_words(exc: Exception) -> tuple[str, str, list[str]]:
    """(code, message, problems) of a failure, for a program: ``config`` names each problem."""
    from posdiag.agent.sweep import UnknownProbe
    from posdiag.core.message import translated
    from posdiag.core.settings import ConfigError

    if isinstance(exc, ConfigError):
        problems = [tr("{path}: {problem}", path=exc.path, problem=translated(p)) for p in exc.problems]
        return "config", tr("invalid configuration:") + " " + tr("; ").join(problems), problems
    if isinstance(exc, (UnknownProbe, UsageError)):
        return "usage", translated(exc), []
    return "internal", tr("internal error: {error!r}", error=exc), []


def _report_failure(exc: Exception, debug: bool, err: TextIO) -> int:
    """One line that says what went wrong; the traceback only when ``--debug`` asked for it."""
    from posdiag.agent.access import AccessDenied
    from posdiag.agent.control import SocketPathTaken
    from posdiag.agent.store import UnknownReport
    from posdiag.agent.sweep import UnknownProbe
    from posdiag.core.message import translated
    from posdiag.core.settings import ConfigError

    if isinstance(exc, ConfigError):
        message = exc.render()
    elif isinstance(exc, (UnknownProbe, UnknownReport, SocketPathTaken, UsageError)):
        message = translated(exc)
    elif isinstance(exc, AccessDenied):
        message = translated(exc)  # already says which group would let the user in
    elif isinstance(exc, PermissionError):
        message = tr("permission denied: {error}", error=exc)
    elif isinstance(exc, OSError) and exc.errno in (errno.EPIPE, errno.EBADF, errno.ENOSPC):
        message = tr("cannot write the output: {error}", error=exc.strerror or exc)
    elif debug:
        message = tr("internal error: {error!r}", error=exc)
    else:
        message = tr("internal error: {error!r} (run with --debug for the traceback)", error=exc)
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


class _Masked:
    """Standard error, through which nothing passes unmasked: errors quote values, paths and other
    programs' messages, and they end up in tickets (:mod:`posdiag.core.redact`). Standard output is
    masked where it is made instead: its JSON must stay JSON.

    On a terminal, where a person reads them, posdiag's own messages (``posdiag: …``) are laid out
    in 80 display columns as the rest of its text is (a CJK character takes two cells); into a pipe
    or a file each stays one whole line, for scripts, cron mail and logs."""

    def __init__(self, stream: TextIO | _Closed) -> None:
        self.stream = stream
        from posdiag.agent.progress import is_terminal

        self.person = is_terminal(stream)

    def write(self, text: str) -> int:
        from posdiag.core.redact import mask_text

        text = mask_text(text)
        if self.person and text.startswith("posdiag: ") and "\r" not in text and "\033" not in text:
            from posdiag.agent.columns import fitted

            text = "\n".join(fitted(text.split("\n")))
        return self.stream.write(text)

    def __getattr__(self, name: str) -> Any:  # flush, isatty, …: the stream's own
        return getattr(self.stream, name)


class _Closed:
    """Stands in for a standard stream that was closed (``posdiag diagnose >&-``)."""

    def write(self, _text: str) -> int:
        raise OSError(errno.EBADF, "standard output is closed")

    def writelines(self, _lines: Any) -> None:
        self.write("")

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
