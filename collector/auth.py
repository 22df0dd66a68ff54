"""Who is asking: a terminal (may post reports), an operator (may read), or nobody.

Operators prove themselves with ``Authorization: Bearer <operator token>`` or with the session
cookie the sign-in form sets, while its session lives in the database. A terminal token is
recognised as such, so a read with one is told 403 (a known caller, not allowed) rather than 401.

The page's forms (sign-in, sign-out, the language switch) change what a browser is signed in as or
speaks: :func:`cross_site` turns away a form another site makes the browser post.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from posdiag.collector.storage import Storage
from posdiag.collector.tokens import token_hash, verify_session
from posdiag.core.timefmt import utc_now_iso

SESSION_COOKIE = "posdiag_session"


@dataclass(frozen=True)
class Caller:
    """``kind`` is ``operator``, ``terminal``, ``revoked`` or ``unknown``; ``name`` the operator or terminal id."""

    kind: str
    name: str = ""
    terminal: dict[str, Any] | None = None


def bearer(headers: Any) -> str | None:
    """The token of an ``Authorization: Bearer`` header, or None."""
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def identify_token(storage: Storage, token: str, terminal_first: bool = False) -> Caller:
    """Look a bearer token up among operators and terminals, by its hash (the lookup is the comparison:
    only hashes are stored, so timing tells nothing about a token).

    ``terminal_first`` saves a query on the busiest path, where nearly every caller is a terminal.
    """
    hashed = token_hash(token)
    for kind in ("terminal", "operator") if terminal_first else ("operator", "terminal"):
        if kind == "operator":
            operator = storage.operator_by_token(hashed)
            if operator:
                return Caller("operator", operator["name"])
        else:
            terminal = storage.terminal_by_token(hashed)
            if terminal:
                return Caller("revoked" if terminal["revoked_at"] else "terminal", terminal["id"], terminal)
    return Caller("unknown")


def identify_reader(storage: Storage, session_key: str, headers: Any, cookies: dict[str, str]) -> Caller:
    """The caller of a read: a bearer token wins over a cookie; no credentials at all is ``unknown``."""
    token = bearer(headers)
    if token is not None:
        return identify_token(storage, token)
    cookie = cookies.get(SESSION_COOKIE)
    if cookie:
        name = verify_session(session_key, cookie)
        if name is not None and storage.session_operator(token_hash(cookie), utc_now_iso()) == name:
            return Caller("operator", name)
    return Caller("unknown")


def cross_site(headers: Any) -> bool:
    """True for a POST another origin made the browser send. Browsers name where a POST comes from in
    ``Origin`` (``null`` from a sandbox or a redirect chain), or at least in ``Sec-Fetch-Site``; a
    client that sends neither is no browser, and a forged form cannot come from it."""
    origin = headers.get("origin")
    if origin is not None:
        return origin == "null" or urlsplit(origin).netloc.lower() != headers.get("host", "").lower()
    return headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none")
