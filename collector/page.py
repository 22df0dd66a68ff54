"""The fleet page and its sign-in, in the operator's language.

The page is static HTML and JavaScript that polls the read API; all report text reaches the screen
through ``textContent``, and a strict Content-Security-Policy (no inline script) backs that up. The
session cookie is HttpOnly and SameSite=Strict, and Secure whenever the page is served over TLS.

The language is chosen per request: the ``lang`` cookie the page's switch sets, else the browser's
``Accept-Language``, else English. The HTML templates mark their text ``data-tr`` (element text) and
``data-tr-title`` / ``-placeholder`` / ``-label`` / ``-alt`` (attributes); markup.py, which the
catalogue extractor reads too, substitutes them once per template and language. The JavaScript gets
the translations of its own ``tr()`` / ``ntr()`` messages in a ``<script type="application/json">``
data block, which the CSP allows because it is never executed. What a stored report says stays in
the language it was written in.
"""

from __future__ import annotations

import functools
import html
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from posdiag.collector.auth import SESSION_COOKIE, identify_reader, identify_token
from posdiag.collector.markup import translate_markup
from posdiag.collector.tokens import sign_session
from posdiag.core import causes, i18n
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

STATIC = Path(__file__).parent / "static"
LANG_COOKIE = "lang"
LANG_COOKIE_AGE = 400 * 86400  # the most a browser keeps a cookie (RFC 6265bis)
#: the pages answer differently by these request headers: a shared cache must key on them
VARY = "Accept-Language, Cookie"
NO_STORE = {"Cache-Control": "no-store", "Vary": VARY}
#: BCP 47 tags for ``<html lang>``, by the language names posdiag uses
HTML_LANG = {"en": "en", "zh_CN": "zh-CN"}
#: the switch offers each language in its own words, which is why these are never translated
ENDONYMS = {"zh_CN": "中文", "en": "English"}
#: where the switch may send the browser back to (anything else would make it an open redirect)
RETURN_PATHS = ("/", "/signin")
#: a terminal's page, the other place the switch may send the browser back to
TERMINAL_PATH = re.compile(r"^/terminals/[^/?#\\]+$")

#: a page's own scripts, whose messages it carries in its data block
SCRIPT_SRC = re.compile(r'<script src="/static/([\w-]+\.js)"')
#: a literal ``tr("…")`` / ``ntr("…", "…", n)`` in a page's script (Babel's JavaScript extractor finds the same)
JS_CALL = re.compile(r"\b(n?tr)\(\s*(\"(?:[^\"\\\n]|\\.)*\")(?:\s*,\s*(\"(?:[^\"\\\n]|\\.)*\"))?")
MAX_ACCEPT_LANGUAGE = 64  # entries looked at: a header is the browser's list, not an essay


def from_accept_language(header: str) -> str | None:
    """The language posdiag speaks that the browser prefers most (highest q, then first listed), or None."""
    best: tuple[float, int, str] | None = None
    for index, item in enumerate(header.split(",")[:MAX_ACCEPT_LANGUAGE]):
        tag, *params = item.split(";")
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = 0.0
        lang = i18n.normalise(tag) if tag.strip() != "*" else None
        if lang is None or not 0 < quality <= 1:  # also rules out nan
            continue
        if best is None or (-quality, index) < (-best[0], best[1]):
            best = (quality, index, lang)
    return best[2] if best else None


def request_language(request: Request) -> str:
    """The page's language: the switch's cookie, else the browser's preference, else English."""
    chosen = i18n.normalise(request.cookies.get(LANG_COOKIE, ""))
    return chosen or from_accept_language(request.headers.get("accept-language", "")) or i18n.DEFAULT


@functools.cache
def _source(name: str) -> str:
    """A template as written, read once: the page is polled every few seconds by every operator."""
    return (STATIC / name).read_text(encoding="utf-8")


def script_messages(t: i18n.Translator, scripts: tuple[str, ...] = ("app.js",)) -> dict[str, Any]:
    """The messages of ``scripts`` in ``t``'s language: ``{msgid: text}``, and for a counted one
    ``{singular: [form for one, form for many]}``. Empty for English, which the scripts have already."""
    if t.lang == i18n.DEFAULT:
        return {}
    found: dict[str, Any] = {}
    for kind, first, second in (call for name in scripts for call in JS_CALL.findall(_source(name))):
        singular = json.loads(first)
        if kind == "ntr" and second:
            plural = json.loads(second)
            found[singular] = [t.ngettext(singular, plural, 1), t.ngettext(singular, plural, 2)]
        else:
            found[singular] = t.gettext(singular)
    return found


def _switch(t: i18n.Translator, back_to: str) -> str:
    """The language switch: one button per language, each named in its own language."""
    buttons = "".join(
        f'<button type="submit" name="lang" value="{lang}" lang="{HTML_LANG[lang]}" '
        f'aria-pressed="{"true" if lang == t.lang else "false"}">{name}</button>'
        for lang, name in ENDONYMS.items())
    label = html.escape(t.tr("Language"))
    return (f'<form method="post" action="/lang" class="lang-switch" aria-label="{label}">'
            f'<input type="hidden" name="next" value="{back_to}">{buttons}</form>')


def _data_block(value: Any) -> str:
    """JSON for a ``<script type="application/json">`` block: a ``<`` inside cannot close the element."""
    return json.dumps(value, ensure_ascii=False).replace("<", "\\u003c")


@functools.cache
def _page(name: str, lang: str) -> str:
    """A template in one language, built once per language: its marked text, the language switch, the
    translations of its scripts' messages and, where it asks for them, the cause titles."""
    t = i18n.translator(lang)
    source = _source(name)
    text = translate_markup(source, t)
    text = text.replace('<html lang="en">', f'<html lang="{HTML_LANG.get(t.lang, "en")}">', 1)
    text = text.replace("<!--language-->", _switch(t, "/signin" if name == "signin.html" else "/"))
    text = text.replace("<!--causes-->", _data_block(causes.titles(t.lang)))
    return text.replace("<!--messages-->", _data_block(script_messages(t, tuple(SCRIPT_SRC.findall(source)))))


def _html(text: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(text, status_code=status, headers=NO_STORE)


def _signin_page(lang: str, message: str = "", status: int = 200) -> HTMLResponse:
    note = f'<p class="error" role="alert">{html.escape(message)}</p>' if message else ""
    return _html(_page("signin.html", lang).replace("<!--message-->", note), status)


def _forbidden(lang: str) -> HTMLResponse:
    t = i18n.translator(lang)
    title, text = html.escape(t.tr("Forbidden")), html.escape(t.tr("A terminal token cannot open the fleet page."))
    return _html(f'<!doctype html><html lang="{HTML_LANG.get(t.lang, "en")}"><title>{title}</title><p>{text}</p></html>', 403)


async def _operator(request: Request) -> tuple[str, Response | None]:
    """The signed-in operator's name, or the answer for anyone else: a terminal is refused, a
    stranger is sent to sign in."""
    collector = request.app.state.collector
    caller = await run_in_threadpool(identify_reader, collector.storage, collector.session_key, request.headers,
                                     request.cookies)
    if caller.kind in ("terminal", "revoked"):
        return "", _forbidden(request_language(request))
    if caller.kind != "operator":
        return "", RedirectResponse("/signin", status_code=303, headers=NO_STORE)
    return caller.name, None


async def index(request: Request) -> Response:
    operator, refused = await _operator(request)
    if refused is not None:
        return refused
    return _html(_page("index.html", request_language(request)).replace("<!--operator-->", html.escape(operator)))


async def terminal(request: Request) -> Response:
    """``/terminals/{id}``: one terminal's latest diagnosis, its history and its remote requests."""
    operator, refused = await _operator(request)
    if refused is not None:
        return refused
    lang = request_language(request)
    terminal_id = request.path_params["terminal_id"]
    if await run_in_threadpool(request.app.state.collector.storage.get_terminal, terminal_id) is None:
        t = i18n.translator(lang)
        text = html.escape(t.tr("No terminal {id} is registered.", id=terminal_id))
        return _html(f'<!doctype html><html lang="{HTML_LANG.get(t.lang, "en")}"><title>{text}</title><p>{text}</p>'
                     f'<p><a href="/">{html.escape(t.tr("All terminals"))}</a></p></html>', 404)
    page = _page("terminal.html", lang).replace("<!--operator-->", html.escape(operator))
    return _html(page.replace("<!--terminal-->", html.escape(terminal_id)))


async def signin_form(request: Request) -> Response:
    return _signin_page(request_language(request))


async def _form(request: Request) -> dict[str, list[str]] | None:
    """A small urlencoded form body, or None when it is too big to be one of ours."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > 4096:
            return None
    return parse_qs(body.decode("utf-8", "replace"))


async def signin(request: Request) -> Response:
    collector = request.app.state.collector
    lang = request_language(request)
    t = i18n.translator(lang)
    form = await _form(request)
    if form is None:
        return _signin_page(lang, t.tr("That is not a token."), 400)
    token = (form.get("token") or [""])[0].strip()
    if not token:
        return _signin_page(lang, t.tr("Paste your operator token."), 400)
    caller = await run_in_threadpool(identify_token, collector.storage, token)
    if caller.kind in ("terminal", "revoked"):
        return _signin_page(lang, t.tr("This is a terminal's token: terminals cannot sign in. Use an operator token."), 403)
    if caller.kind != "operator":
        return _signin_page(lang, t.tr("Unknown token."), 401)
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


def _return_to(wanted: str) -> str:
    """Back to the page the switch was on (with its ``#t=…`` fragment), and nowhere else."""
    path, _, fragment = wanted.partition("#")
    if path not in RETURN_PATHS and not TERMINAL_PATH.match(path):
        return "/"
    return path + ("#" + quote(fragment, safe="=%") if fragment else "")


async def set_language(request: Request) -> Response:
    """The switch: remember the language in a cookie (a preference, not a credential) and go back."""
    form = await _form(request) or {}
    lang = i18n.normalise((form.get("lang") or [""])[0]) or i18n.DEFAULT
    response = RedirectResponse(_return_to((form.get("next") or ["/"])[0]), status_code=303)
    response.set_cookie(LANG_COOKIE, lang, max_age=LANG_COOKIE_AGE, path="/", httponly=True, samesite="lax",
                        secure=request.url.scheme == "https")
    return response
