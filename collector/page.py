"""The fleet page and its sign-in.

The page is static HTML and JavaScript that polls the read API; all report text reaches the screen
through ``textContent``, and a strict Content-Security-Policy (no inline script) backs that up. The
session cookie is HttpOnly and SameSite=Strict, and Secure whenever the page is served over TLS.
"""

from __future__ import annotations

import functools
import html
from pathlib import Path
from urllib.parse import parse_qs

from posdiag.collector.auth import SESSION_COOKIE, identify_reader, identify_token
from posdiag.collector.tokens import sign_session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

STATIC = Path(__file__).parent / "static"
NO_STORE = {"Cache-Control": "no-store"}


@functools.cache
def _template(name: str) -> str:
    """A page's HTML, read once: the page is polled every few seconds by every operator."""
    return (STATIC / name).read_text(encoding="utf-8")


def _signin_page(message: str = "", status: int = 200) -> HTMLResponse:
    text = _template("signin.html")
    note = f'<p class="error" role="alert">{html.escape(message)}</p>' if message else ""
    return HTMLResponse(text.replace("<!--message-->", note), status_code=status, headers=NO_STORE)


async def index(request: Request) -> Response:
    collector = request.app.state.collector
    caller = await run_in_threadpool(identify_reader, collector.storage, collector.session_key, request.headers,
                                     request.cookies)
    if caller.kind in ("terminal", "revoked"):
        return HTMLResponse("<!doctype html><title>Forbidden</title><p>A terminal token cannot open the fleet page.</p>",
                            status_code=403)
    if caller.kind != "operator":
        return RedirectResponse("/signin", status_code=303)
    text = _template("index.html")
    return HTMLResponse(text.replace("<!--operator-->", html.escape(caller.name)), headers=NO_STORE)


async def signin_form(request: Request) -> Response:
    return _signin_page()


async def signin(request: Request) -> Response:
    collector = request.app.state.collector
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > 4096:
            return _signin_page("That is not a token.", 400)
    token = (parse_qs(body.decode("utf-8", "replace")).get("token") or [""])[0].strip()
    if not token:
        return _signin_page("Paste your operator token.", 400)
    caller = await run_in_threadpool(identify_token, collector.storage, token)
    if caller.kind in ("terminal", "revoked"):
        return _signin_page("This is a terminal's token: terminals cannot sign in. Use an operator token.", 403)
    if caller.kind != "operator":
        return _signin_page("Unknown token.", 401)
    response = RedirectResponse("/", status_code=303)
    lifetime = int(collector.settings.session_hours * 3600)
    response.set_cookie(SESSION_COOKIE, sign_session(collector.session_key, caller.name, lifetime), max_age=lifetime,
                        path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https")
    return response


async def signout(request: Request) -> Response:
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
    return response
