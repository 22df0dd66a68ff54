"""Card data and secrets masked out of everything posdiag writes: one routine for every output.

posdiag runs on a card-payment terminal, inside the PCI DSS scope. What it writes — reports (text and
JSON), the history, ``status``, ``config check``, error messages, the daemon's and the sender's logs,
the report pushed to the central server, every member of a support bundle — ends up in tickets, log
servers and the fleet's database, so none of it may carry card data or a secret. Every such path
passes its text through :func:`mask_text`, or a structure through :func:`mask_data`:

* a primary account number (PAN) — 13 to 19 digits passing the Luhn check, bare or grouped by single
  spaces or dashes, anywhere in a line — keeps its first six and last four digits (PCI DSS 3.4);
* track data — track 1 ``%B…^…^…?``, track 2 ``;…=…?`` and its bare ``PAN=YYMM…`` form — keeps only
  the masked PAN: name, expiry, service code and discretionary data go (PCI DSS 3.3: sensitive
  authentication data is never kept after authorisation);
* the value of a field named like a card verification code or a PIN block (``cvv=``, ``CVC2:``,
  ``pin_block=``, ``DE52=``) or like a secret (``password=``, ``token:``, ``"api_key": "…"``);
* the credentials of an ``Authorization`` header, and any ``Bearer`` token;
* the user and password of any URL, the value of every query parameter of a URL or a path
  (``/health?apikey=…`` keeps ``apikey``) and its fragment;
* a secret this process holds (:func:`remember`: the push token once read), wherever it shows up.

Diagnostic value is kept on purpose: time stamps (``2026-11-29 10:15:02``, ``20261129101502``, Unix
time in milli-, micro- and nanoseconds), report ids, byte counts (below a terabyte: 13 digits and more
that pass the Luhn check have a card's shape), addresses and serial numbers that fail the Luhn check
are not card numbers, and neither is a run of digits that starts with 0 (no card scheme issues one).
A grouped number is a PAN only in a card's layout: groups of 3 to 6 digits.
Masked text masked again is unchanged, so every layer may mask without counting on another.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "<redacted>"
#: a secret shorter than this is not remembered: it would mask innocent words wherever they appear
MIN_SECRET = 6

_known: set[str] = set()


class _Lazy:
    """A regular expression compiled when it is first used. Most text never needs most of these (each
    is looked for only where a cheap test says it may be), and a command's start-up should not pay
    for compiling them all."""

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self.pattern, self.flags = pattern, flags
        self.compiled: re.Pattern[str] | None = None

    def __getattr__(self, name: str) -> Any:  # search, sub, finditer, fullmatch: the compiled pattern's
        if self.compiled is None:
            self.compiled = re.compile(self.pattern, self.flags)
        return getattr(self.compiled, name)


# --- card data ----------------------------------------------------------------------------------------
#: 13 or more digits, alone or in groups joined by one space or dash (the candidates for a PAN)
_DIGIT_RUN = _Lazy(r"(?<!\d)(?=(?:\d[ -]?){12}\d)\d+(?:[ -]\d+)*", re.ASCII)
_GROUP = _Lazy(r"\d+", re.ASCII)
#: is there a digit run long enough for a PAN or track data? (a quick test before the exact one)
_MANY_DIGITS = _Lazy(r"[0-9]{12}|[0-9]{3}[ -][0-9]{3}")
#: YYYYMMDDhhmmss, with up to six digits of fractions: a time stamp, not a card
_STAMP = _Lazy(r"(?:19[7-9]\d|20\d\d)(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?:[01]\d|2[0-3])[0-5]\d[0-5]\d\d{0,6}", re.ASCII)
#: track 1: %B, the PAN, ^NAME^, YYMM, service code and discretionary data, up to the end sentinel
_TRACK1 = _Lazy(r"(?P<start>%?)B(?P<pan>\d{12,19})\^[^^\r\n]{0,64}\^\d{4}[^?\s^]*(?P<end>\??)", re.ASCII)
#: track 2 (``;PAN=YYMM…?``) and its bare form; ``D`` separates the fields where track 2 is written in hex (EMV)
_TRACK2 = _Lazy(r"(?P<start>;?)(?<!\d)(?P<pan>\d{12,19})[=D]\d{4}[0-9F]*(?P<end>\??)", re.ASCII)

# --- secrets ------------------------------------------------------------------------------------------
_CARD_CODES = r"cvv2?|cvc2?|cav2|cvn2?|cvd|csc|ccv"
#: names of fields whose value is a card verification code, a PIN (block) or a secret
_SECRET_WORDS = (rf"{_CARD_CODES}|security[_-]?code|pin|pin[_ -]?block|epb|(?:de|f|fld|field|bit)[_ -]?0*52|"
                 r"password|passwd|pwd|passphrase|secret|token|api[_-]?key|private[_-]?key|credentials?")
#: the name alone or as the last part of a longer one (``push_token``, ``x-api-key``, ``"cvv"``); a name
#: used in a sentence ("a bearer token is a password: run …", "a terminal's token: …") is prose, not a
#: field (and the end of a path is a file: see :func:`_mask_field`)
_PROSE = r"(?<!\ba )(?<!\ban )(?<!\bthe )(?<!'s )(?<!\byour )(?<!\bthis )"
_FIELD = _Lazy(
    rf"(?:(?<![A-Za-z0-9])|(?<=[A-Za-z0-9][_.-])){_PROSE}(?P<key>(?:{_SECRET_WORDS})s?)(?P<sep>[\"']?[ \t]*[:=][ \t]*)"
    r"(?:(?P<q>\\?[\"'])(?P<quoted>[^\r\n]*?)(?P=q)|(?P<bare>[^\s,;&'\"{}\[\]()<>\\]+))", re.I)
#: may one of those names be in the (lower-cased) text? (a quick test before the exact one)
_FIELD_HINT = _Lazy(r"cv|cav|csc|ccv|secur|pin|epb|52|pass|pwd|secret|token|key|credential")
#: a card code written without a sign: ``CVV 123``
_CARD_CODE_SPACED = _Lazy(rf"(?<![A-Za-z0-9])(?P<key>{_CARD_CODES})(?P<sep>[ \t]+)(?P<bare>\d{{3,4}})(?!\d)", re.I)
_AUTH_SCHEMES = r"(?:basic|bearer|digest|token|negotiate|ntlm|apikey)[ \t]+"
_AUTHORIZATION = _Lazy(rf"(?P<head>\b(?:proxy-)?authorization[\"']?[ \t]*[:=][ \t]*[\"']?(?:{_AUTH_SCHEMES})?)"
                       rf"(?!{_AUTH_SCHEMES})(?P<cred>[^\s\"',;<>]+)", re.I)
_BEARER = _Lazy(r"(?P<head>\bbearer[ \t]+)(?P<cred>[A-Za-z0-9._~+/=-]{6,})", re.I)
_USERINFO = _Lazy(r"\b(?P<scheme>[a-z][a-z0-9+.-]*://)(?:[^\s/?#@\"'<>]|<redacted>)+@", re.I)
#: a URL (scheme://…) or a path (/…) followed by a query or a fragment
_QUERY = _Lazy(r"(?P<base>\b[a-z][a-z0-9+.-]*://[^\s?#\"'<>]*|/[^\s?#\"'<>]*)(?P<rest>[?#][^\s\"'<>]*)", re.I)
_JSON_LITERALS = ("null", "true", "false")
#: what ends the word a field's name is the last part of (the text before it is split on these)
_WORD_BEFORE = _Lazy(r"[\s\"'=:,;(\[{]")
#: a configuration key whose value is itself a secret (the key's last part; ``token_file`` is a path)
_SECRET_KEY = _Lazy(r"(token|password|passwd|secret|api_?key|private_?key|credential)s?$", re.I)


def remember(secret: str) -> None:
    """A secret this process holds (the push token, a configured password): from now on it is
    masked wherever it appears, in whatever shape the text around it has."""
    secret = secret.strip()
    if len(secret) >= MIN_SECRET:
        _known.add(secret)


def luhn(digits: str) -> bool:
    """The Luhn (mod 10) check every payment card number passes."""
    total = 0
    for i, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if i % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def is_card_number(digits: str) -> bool:
    """Whether a string of digits is a PAN rather than a time stamp or a padded counter."""
    if not 13 <= len(digits) <= 19 or digits[0] == "0":
        return False
    if digits[0] == "1" and len(digits) in (13, 16, 19):  # Unix time in ms, µs, ns (no such card starts with 1)
        return False
    return not _STAMP.fullmatch(digits) and luhn(digits)


def mask_pan(pan: str) -> str:
    """The first six and last four digits kept, the others starred; spaces and dashes stay where they are."""
    positions = [i for i, char in enumerate(pan) if char.isdigit()]
    hidden = set(positions[6:-4])
    return "".join("*" if i in hidden else char for i, char in enumerate(pan))


def _mask_run(match: re.Match[str]) -> str:
    """Every PAN in a run of digit groups: a single group of 13–19 digits, or consecutive groups of a
    card's layout (3–6 digits each) that together make one. Digits kept by no PAN found are starred."""
    run = match.group()
    groups = [(m.start(), m.end()) for m in _GROUP.finditer(run)]
    hidden: set[int] = set()
    for i, (first_start, first_end) in enumerate(groups):
        positions: list[int] = []
        for j in range(i, len(groups)):
            start, end = groups[j]
            if j > i and not (3 <= end - start <= 6 and 3 <= first_end - first_start <= 6):
                break
            positions.extend(range(start, end))
            if len(positions) > 19:
                break
            if len(positions) >= 13 and is_card_number("".join(run[p] for p in positions)):
                hidden.update(positions[6:-4])
    return "".join("*" if i in hidden else char for i, char in enumerate(run)) if hidden else run


def _mask_tracks(text: str) -> str:
    if "^" in text:
        text = _TRACK1.sub(lambda m: f"{m['start']}B{mask_pan(m['pan'])}^{REDACTED}{m['end']}", text)
    return _TRACK2.sub(lambda m: f"{m['start']}{mask_pan(m['pan'])}={REDACTED}{m['end']}", text)


def mask_card_data(text: str) -> str:
    """Track data and PANs masked: the part of :func:`mask_text` that is about cards."""
    if not _MANY_DIGITS.search(text):
        return text
    return _DIGIT_RUN.sub(_mask_run, _mask_tracks(text))


def has_card_data(text: str) -> bool:
    """Whether ``text`` holds a PAN or track data."""
    return mask_card_data(text) != text


def _mask_field(match: re.Match[str]) -> str:
    if "/" in _WORD_BEFORE.split(match.string[:match.start("key")])[-1]:  # /etc/posdiag/token: permission denied
        return match.group()
    if match["q"] is not None:
        return f"{match['key']}{match['sep']}{match['q']}{REDACTED if match['quoted'] else ''}{match['q']}"
    if match["bare"].lower() in _JSON_LITERALS:
        return match.group()
    return f"{match['key']}{match['sep']}{REDACTED}"


def _mask_query(match: re.Match[str]) -> str:
    """Keys of a query kept, values replaced; a fragment replaced whole. Punctuation that ends the URL
    ("…&lane=7: HTTP 404") belongs to the sentence around it and stays."""
    rest = match["rest"].rstrip(".,:;!)]")
    after = match["rest"][len(rest):]
    query, hash_, fragment = rest[1:].partition("#") if rest[0] == "?" else ("", "#", rest[1:])
    parts = []
    for part in re.split(r"([&;])", query):
        key, equals, value = part.partition("=")
        if part in ("&", ";", "", REDACTED) or (equals and value in ("", REDACTED)):
            parts.append(part)
        else:
            parts.append(f"{key}={REDACTED}" if equals else REDACTED)
    shown = "?" + "".join(parts) if rest[0] == "?" else ""
    if hash_:
        shown += "#" + (REDACTED if fragment else "")
    return match["base"] + shown + after


def _mask_secrets(text: str) -> str:
    """Credentials: remembered secrets, Authorization and Bearer, URL users and passwords, query values,
    fields named like a secret, a card code or a PIN block."""
    for secret in sorted(_known, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    lowered = text.lower()
    if "authoriz" in lowered:
        text = _AUTHORIZATION.sub(lambda m: m["head"] + REDACTED, text)
    if "bearer" in lowered:
        text = _BEARER.sub(lambda m: m["head"] + REDACTED, text)
    if "://" in text and "@" in text:
        text = _USERINFO.sub(lambda m: m["scheme"] + REDACTED + "@", text)
    if "?" in text or "#" in text:
        text = _QUERY.sub(_mask_query, text)
    if _FIELD_HINT.search(lowered):
        text = _FIELD.sub(_mask_field, text)
        text = _CARD_CODE_SPACED.sub(lambda m: m["key"] + m["sep"] + REDACTED, text)
    return text


def mask_text(text: str) -> str:
    """``text`` with every PAN masked and all track data, card codes, PIN blocks and secrets replaced.

    Each kind is looked for only where a cheap test says it may be (a digit run, a ``?``, a word), so
    that a line with nothing to hide costs a few string searches."""
    return mask_card_data(_mask_secrets(text)) if text else text


def mask_data(value: Any) -> Any:
    """A JSON-like structure with every string in it (keys too) masked by :func:`mask_text`; numbers,
    booleans and the structure itself unchanged (tuples become lists, as JSON has them)."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {mask_text(k) if isinstance(k, str) else k: mask_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_data(v) for v in value]
    return value


def _is_secret_key(key: str) -> bool:
    return bool(key) and bool(_SECRET_KEY.search(key)) and not key.endswith("_file")


def mask_config(value: Any, key: str = "") -> Any:
    """A configuration as written, fit to show: a key that names a secret (``password``, ``api_key``)
    has its value replaced; every other string is masked by :func:`mask_text`."""
    if isinstance(value, dict):
        return {k: mask_config(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_config(v, key) for v in value]
    if isinstance(value, str) and value and _is_secret_key(key):
        return REDACTED
    return mask_data(value)


def remember_config(value: Any, key: str = "") -> None:
    """:func:`remember` every secret a configuration holds — values of secret keys, the passwords of its
    URLs, the values of secret-named query parameters — so that they are masked where they show up bare.
    (A user name or an ordinary query value is masked inside its URL, but not remembered: it would mask
    the same word everywhere else.)"""
    if isinstance(value, dict):
        for k, v in value.items():
            remember_config(v, k)
    elif isinstance(value, list):
        for v in value:
            remember_config(v, key)
    elif isinstance(value, str) and value:
        if _is_secret_key(key):
            remember(value)
        for match in re.finditer(r"://[^/@\s:]*:([^/@\s]+)@", value):
            remember(match[1])
        for match in _QUERY.finditer(value):
            for part in re.split(r"[?#&;]", match["rest"]):
                name, _, secret = part.partition("=")
                if _is_secret_key(name):
                    remember(secret)
