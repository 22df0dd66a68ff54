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

from agent import __version__


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

    sub.add_parser("probes", help="list the probes and what each one checks")

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
    from agent import config
    from agent.report import EXIT_CODES, render_text
    from agent.sweep import run_sweep

    settings = config.load(args.config)
    only = [p.strip() for p in args.only.split(",") if p.strip()] if args.only else None
    progress = Progress(err)
    try:
        report = run_sweep(settings, trigger="on-demand", only=only, on_result=progress)
    finally:
        progress.clear()
    out.write(json.dumps(report, indent=2) + "\n" if args.json else render_text(report))
    ran = [p for p in report["probes"] if p["status"] != "skipped"]
    if ran and all(p["status"] == "error" for p in ran):
        err.write("posdiag: no probe could check anything; cannot diagnose\n")
        return Exit.UNKNOWN
    return EXIT_CODES[report["diagnosis"]["verdict"]]


def cmd_probes(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    import probes

    classes = probes.all_probes()
    width = max(len(c.name) for c in classes)
    for cls in classes:
        needs = f"  (after {', '.join(cls.requires)})" if cls.requires else ""
        out.write(f"{cls.name:<{width}}  {cls.description}{needs}\n")
    return 0


def cmd_config_check(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from agent import config
    from agent.diagnosis import load_knowledge
    from agent.paths import causes_path

    settings = config.load(args.config)
    load_knowledge(causes_path())
    hosts = ", ".join(h.label for h in settings.payment_hosts) or "none"
    out.write(f"{settings.source}: OK (terminal {settings.terminal_id}, payment hosts: {hosts}, "
              f"reader: {settings.reader.kind})\n")
    return 0


def main(argv: list[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    from agent.config import ConfigError

    out = out or sys.stdout
    err = err or sys.stderr
    args = build_parser().parse_args(argv)
    handler = {"diagnose": cmd_diagnose, "probes": cmd_probes, "config": cmd_config_check}[args.command]
    try:
        return int(handler(args, out, err))
    except ConfigError as exc:
        err.write(f"posdiag: {exc.render()}\n")
        return Exit.UNKNOWN
    except KeyboardInterrupt:
        err.write("posdiag: interrupted\n")
        return Exit.UNKNOWN
    except Exception as exc:  # noqa: BLE001 - an internal error must still exit 3, not 1
        from agent.sweep import UnknownProbe

        if isinstance(exc, UnknownProbe):
            err.write(f"posdiag: {exc}\n")
        else:
            import traceback

            err.write(f"posdiag: internal error: {exc!r}\n{traceback.format_exc()}")
        return Exit.UNKNOWN


def entry() -> None:
    sys.exit(main())
