"""``posdiag-collector``: a thin shell that parses arguments and maps failures to a message and exit 1.

``main`` takes its streams as arguments so tests run the real command in-process; ``entry`` is the
console script.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from posdiag.collector.settings import MIB, Settings
from posdiag.collector.storage import StorageError, open_storage
from posdiag.collector.tokens import new_token, token_hash

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")


class Failure(Exception):
    """A failure to tell the user in one line (no traceback)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="posdiag-collector", description="The central server posdiag terminals push to.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="receive reports and serve the read API and the fleet page")
    serve.add_argument("--db", required=True, help="sqlite:///relative.db, sqlite:////abs/path.db or postgresql://…")
    serve.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT (port 0: any free port; default %(default)s)")
    serve.add_argument("--cert", help="TLS certificate chain (PEM); with --key, serve HTTPS")
    serve.add_argument("--key", help="TLS private key (PEM)")
    serve.add_argument("--workers", type=int, default=1, help="server processes sharing the socket (default 1)")
    serve.add_argument("--max-report-bytes", type=int, default=MIB, help="limit once decompressed (default 1 MiB)")
    serve.add_argument("--max-body-bytes", type=int, default=MIB, help="limit on the wire (default 1 MiB)")
    serve.add_argument("--incident-window-min", type=float, default=10.0, help="reports this close chain (default 10)")
    serve.add_argument("--site-min-terminals", type=int, default=2, help="terminals for a site incident (default 2)")
    serve.add_argument("--fleet-min-sites", type=int, default=3, help="sites for a fleet incident (default 3)")
    serve.add_argument("--silent-after-min", type=float, default=15.0, help="a terminal is silent after (default 15)")
    serve.add_argument("--db-pool-size", type=int, default=8, help="PostgreSQL connections per process (default 8)")
    serve.add_argument("--max-inflight", type=int, default=1000, help="reports at once per process before 429")
    serve.add_argument("--request-expiry-min", type=float, default=15.0,
                       help="a remote request not answered in this many minutes expires (default 15)")
    serve.add_argument("--max-bundle-bytes", type=int, default=8 * MIB, help="largest support bundle (default 8 MiB)")
    serve.add_argument("--access-log", action="store_true", help="log every request (off by default)")
    for command, what in (("add-terminal", "register a terminal and print its token"),
                          ("revoke-terminal", "revoke a terminal's token (its reports are kept)"),
                          ("add-operator", "register an operator and print the token")):
        p = sub.add_parser(command, help=what)
        p.add_argument("name", metavar="ID" if "terminal" in command else "NAME")
        p.add_argument("--db", required=True, help="database URL, as for serve")
        if command == "add-terminal":
            p.add_argument("--site", help="the site (store) the terminal belongs to")
    return parser


def _listen(value: str) -> tuple[str, int]:
    match = re.match(r"^(\[[0-9a-fA-F:.]+\]|[^:]+):(\d{1,5})$", value)
    if not match or int(match.group(2)) > 65535:
        raise Failure(f"--listen {value!r}: expected HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080")
    return match.group(1).strip("[]"), int(match.group(2))


def _credentials(args: argparse.Namespace, out: TextIO) -> None:
    if not NAME.match(args.name):
        raise Failure(f"{args.name!r} is not a valid name: letters, digits and . _ : @ - (at most 128)")
    storage = open_storage(args.db)
    try:
        storage.migrate()
        if args.command == "revoke-terminal":
            if not storage.revoke_terminal(args.name):
                raise Failure(f"no terminal {args.name!r}")
            return
        token = new_token()
        if args.command == "add-terminal":
            storage.add_terminal(args.name, args.site, token_hash(token))
        else:
            storage.add_operator(args.name, token_hash(token))
        out.write(token + "\n")
    finally:
        storage.close()


def _settings(args: argparse.Namespace) -> Settings:
    for flag in ("workers", "max_report_bytes", "max_body_bytes", "site_min_terminals", "fleet_min_sites",
                 "db_pool_size", "max_inflight", "max_bundle_bytes"):
        if getattr(args, flag) < 1:
            raise Failure(f"--{flag.replace('_', '-')} must be at least 1")
    if not 0 < args.request_expiry_min <= 10080:
        raise Failure("--request-expiry-min must lie between 0 and 10080 (a week)")
    return Settings(db_url=args.db, max_report_bytes=args.max_report_bytes, max_body_bytes=args.max_body_bytes,
                    incident_window_min=args.incident_window_min, site_min_terminals=args.site_min_terminals,
                    fleet_min_sites=args.fleet_min_sites, silent_after_min=args.silent_after_min,
                    db_pool_size=args.db_pool_size, max_inflight=args.max_inflight,
                    request_expiry_min=args.request_expiry_min, max_bundle_bytes=args.max_bundle_bytes)


def _serve(args: argparse.Namespace, err: TextIO) -> None:
    import uvicorn
    from posdiag.collector.app import SETTINGS_ENV, create_app, settings_env

    host, port = _listen(args.listen)
    if bool(args.cert) != bool(args.key):
        raise Failure("--cert and --key go together")
    for path in filter(None, (args.cert, args.key)):
        if not Path(path).is_file():
            raise Failure(f"no such file: {path}")
    settings = _settings(args)
    storage = open_storage(settings.db_url, settings.db_pool_size, settings.db_timeout_s)
    applied = storage.migrate()
    if applied:
        err.write(f"posdiag-collector: schema migrated to version {max(applied)}\n")
    try:
        sock = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET, reuse_port=False)
    except OSError as exc:
        storage.close()
        raise Failure(f"cannot listen on {args.listen}: {exc.strerror}") from None
    scheme = "https" if args.cert else "http"
    err.write(f"posdiag-collector: listening on {scheme}://{args.listen.rsplit(':', 1)[0]}:{sock.getsockname()[1]}\n")
    err.flush()
    common = {"ssl_certfile": args.cert, "ssl_keyfile": args.key, "access_log": args.access_log, "log_level": "warning",
              "proxy_headers": True, "timeout_keep_alive": 5, "timeout_graceful_shutdown": 5, "server_header": False}
    if args.workers == 1:
        config = uvicorn.Config(create_app(settings, storage), **common)
        uvicorn.Server(config).run(sockets=[sock])
        return
    storage.close()
    from uvicorn.supervisors import Multiprocess

    os.environ[SETTINGS_ENV] = settings_env(settings)
    config = uvicorn.Config("posdiag.collector.app:app_from_env", factory=True, workers=args.workers, **common)
    Multiprocess(config, sockets=[sock]).run()


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Run one command; the exit status (0 done, 1 failed with a message, 2 bad usage)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        if args.command == "serve":
            _serve(args, err)
        else:
            _credentials(args, out)
    except (Failure, StorageError) as exc:  # StorageError covers Conflict: "terminal 'x' exists already"
        err.write(f"posdiag-collector: {exc}\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_OK


def entry() -> None:
    sys.exit(main())
