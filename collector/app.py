"""The ASGI application: routes, security headers, and the state every request shares.

That state is the database (and its connection pool), the session-signing key read from it, and
counters for ``/metrics``; nothing a second ``serve`` process would need to know.
"""

from __future__ import annotations

import json
import os
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any

from posdiag.collector import page, read_api, requests_api, schema
from posdiag.collector.ingest import post_report
from posdiag.collector.metrics import ReceivedCounter
from posdiag.collector.settings import Settings
from posdiag.collector.storage import Storage, open_storage
from posdiag.collector.tokens import new_session_key
from starlette.applications import Starlette
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SETTINGS_ENV = "POSDIAG_COLLECTOR_SETTINGS"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
           (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY")]


class Collector:
    """What the routes share: settings, storage, the session key and this process's counters."""

    def __init__(self, settings: Settings, storage: Storage) -> None:
        self.settings = settings
        self.storage = storage
        self.session_key = storage.secret("session_key", new_session_key())
        self.received = ReceivedCounter()
        self.inflight = 0


class SecurityHeaders:
    """Adds the CSP and its companions to every response (pure ASGI: no per-request task overhead)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


def create_app(settings: Settings, storage: Storage | None = None) -> Starlette:
    """The application over ``storage`` (opened from ``settings.db_url`` and migrated when not given)."""
    if storage is None:
        storage = open_storage(settings.db_url, settings.db_pool_size, settings.db_timeout_s)
        storage.migrate()
    schema.warm()
    collector = Collector(settings, storage)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        yield
        storage.close()

    routes = [
        Route("/api/v1/reports", post_report, methods=["POST"]),
        Route("/api/v1/reports", read_api.reports, methods=["GET"]),
        Route("/api/v1/reports/{report_id}", read_api.report, methods=["GET"]),
        Route("/api/v1/terminals", read_api.terminals, methods=["GET"]),
        Route("/api/v1/terminals/{terminal_id}", read_api.one_terminal, methods=["GET"]),
        Route("/api/v1/terminals/{terminal_id}/requests", requests_api.ask, methods=["POST"]),
        Route("/api/v1/terminals/{terminal_id}/requests", requests_api.terminal_requests, methods=["GET"]),
        Route("/api/v1/requests/pending", requests_api.pending, methods=["GET"]),  # before {request_id}
        Route("/api/v1/requests/{request_id}", requests_api.one_request, methods=["GET"]),
        Route("/api/v1/requests/{request_id}/bundle", requests_api.download_bundle, methods=["GET"]),
        Route("/api/v1/requests/{request_id}/bundle", requests_api.upload_bundle, methods=["PUT"]),
        Route("/api/v1/requests/{request_id}/failure", requests_api.failure, methods=["POST"]),
        Route("/api/v1/incidents", read_api.incidents_list, methods=["GET"]),
        Route("/api/v1/risks", read_api.risks, methods=["GET"]),
        Route("/healthz", read_api.healthz, methods=["GET"]),
        Route("/metrics", read_api.metrics_text, methods=["GET"]),
        Route("/", page.index, methods=["GET"]),
        Route("/terminals/{terminal_id}", page.terminal, methods=["GET"]),
        Route("/signin", page.signin_form, methods=["GET"]),
        Route("/signin", page.signin, methods=["POST"]),
        Route("/signout", page.signout, methods=["POST"]),
        Route("/lang", page.set_language, methods=["POST"]),
        Mount("/static", StaticFiles(directory=page.STATIC), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.collector = collector
    app.add_middleware(SecurityHeaders)
    return app


def app_from_env() -> Starlette:
    """Factory for uvicorn worker processes: the settings come from the parent through the environment."""
    return create_app(Settings(**json.loads(os.environ[SETTINGS_ENV])))


def settings_env(settings: Settings) -> str:
    return json.dumps(asdict(settings))
