"""Bearer tokens and session cookies.

Tokens are 32 random bytes, shown once; only their SHA-256 is stored, so a stolen database does not
let anyone post or read. Session cookies are signed with a key kept in the database, so any ``serve``
process sharing that database can verify a cookie another one issued, and carry random bytes of their
own: two sign-ins never get the same cookie, and the server keeps each live session's hash, so signing
out (or removing the operator) ends it for good. The signature turns away a forged cookie without a
database query.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

TOKEN_BYTES = 32
SESSION_NONCE_BYTES = 16


def new_token() -> str:
    """A fresh token for a terminal or an operator (URL-safe, no padding)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    """The stored form of a token: hex SHA-256. A 256-bit random token needs no salt or slow hash."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_session_key() -> str:
    return secrets.token_hex(32)


def sign_session(key: str, operator: str, lifetime_s: float, now: float | None = None) -> str:
    """A fresh cookie value naming the operator, its expiry and random bytes, with an HMAC over all three."""
    expires = int((now if now is not None else time.time()) + lifetime_s)
    name = base64.urlsafe_b64encode(operator.encode()).decode().rstrip("=")
    payload = f"{name}.{expires}.{secrets.token_urlsafe(SESSION_NONCE_BYTES)}"
    sig = hmac.new(key.encode(), payload.encode(), hashlib.sha256).hexdigest()
    return f"{payload}.{sig}"


def verify_session(key: str, cookie: str, now: float | None = None) -> str | None:
    """The operator a cookie was issued to, or None when it is forged, mangled or expired (whether it
    is still a live session, the database says)."""
    if not cookie.isascii():  # a cookie of ours is ASCII; compare_digest refuses anything else
        return None
    try:
        name, expires, nonce, sig = cookie.split(".")
        want = hmac.new(key.encode(), f"{name}.{expires}.{nonce}".encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, sig):
            return None
        if int(expires) < (now if now is not None else time.time()):
            return None
        return base64.urlsafe_b64decode(name + "=" * (-len(name) % 4)).decode()
    except ValueError:
        return None
