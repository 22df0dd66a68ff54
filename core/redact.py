"""Card data and secrets masked out of everything posdiag writes: one routine for every output.

posdiag runs on a card-payment terminal, inside the PCI DSS scope. What it writes — reports (text and
JSON), the history, ``status``, ``config check``, error messages, the daemon's and the sender's logs,
the report pushed to the central server, every member of a support bundle — ends up in tickets, log
servers and the fleet's database, so none of it may carry card data or a secret. Every such path
passes its text through :func:`mask_text`, or a structure through :func:`mask_data`:

* a primary account number (PAN) — 13 to 19 digits passing the Luhn check, bare or grouped by runs of
  spaces, dashes, dots or slashes, in ASCII or full-width digits, anywhere in a line (and an integer
  in a structure) — keeps its first six and last four digits (PCI DSS 3.4);
* track data — track 1 ``%B…^…^…?`` (``%b`` too), track 2 ``;…=…?``, its bare ``PAN=YYMM…`` form and
  its EMV hex form ``PAN D YYMM…``, also with the tag and length glued in front (``5713…D…``) — keeps
  only the masked PAN: name, expiry, service code and discretionary data go (PCI DSS 3.3: sensitive
  authentication data is never kept after authorisation); EMV tag 5A glued to its PAN (``5A08…``)
  keeps the masked PAN;
* the value of a field named like a card verification code or a PIN block (``cvv=``, ``CVC2:``,
  ``pin_block=``, ``DE52=``; ``CVV 123`` and ``pin_block 1234ABCD5678EF00`` with no sign) or like a
  secret (``password=``, ``token:``, ``"api_key": "…"``) — but not the next field when the name has
  no value of its own (``online PIN: code=2824`` keeps the code the diagnosis counts);
* the credentials of an ``Authorization`` header, and any ``Bearer`` token;
* the user and password of any URL, the value of every query parameter of a URL or a path
  (``/health?apikey=…`` keeps ``apikey``) and its fragment;
* a secret this process holds (:func:`remember`: the push token and the configuration's secrets,
  remembered when the configuration is loaded), wherever it shows up.

Diagnostic value is kept on purpose: time stamps (``2026-11-29 10:15:02``, ``20261129101502``, Unix
time in milli-, micro- and nanoseconds), report ids, byte counts (below a terabyte: 13 digits and more
that pass the Luhn check have a card's shape), addresses and serial numbers that fail the Luhn check
are not card numbers, and neither is a run of digits that starts with 0 (no card scheme issues one).
A grouped number is a PAN only in a card's layout: groups of 3 to 6 digits (up to 8 between spaces:
``41111111 11111111``), one kind of separator all along — so dates, times, lists of addresses, UUIDs
and version strings are not. In EMV hex, where any digit may be a tag or a length, the PAN must pass
the Luhn check and be followed by ``D`` and a real expiry month, or be as long as tag 5A's length says.
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
#: a decimal digit as a POS may write it: ASCII or full-width (``４１１１…``, as a Chinese input method types it)
_D = "[0-9\uff10-\uff19]"
_TO_ASCII = str.maketrans("\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19", "0123456789")
#: what may stand between the groups of a written card number: a run of spaces (or tabs), dashes, dots or slashes
_SEPARATOR = r"(?:[ \t]+|-+|\.+|/+)"
#: 13 or more digits, alone or in groups joined by separators (the candidates for a PAN)
_DIGIT_RUN = _Lazy(rf"(?<!{_D})(?={_D}(?:{_SEPARATOR}?{_D}){{12}}){_D}+(?:{_SEPARATOR}{_D}+)*")
_GROUP = _Lazy(rf"{_D}+")
#: is there a digit run long enough for a PAN or track data? (a quick test before the exact one)
_MANY_DIGITS = _Lazy(rf"{_D}{{12}}|{_D}{{3}}{_SEPARATOR}{_D}{{3}}")
#: YYYYMMDDhhmmss, with up to six digits of fractions: a time stamp, not a card
_STAMP = _Lazy(r"(?:19[7-9]\d|20\d\d)(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?:[01]\d|2[0-3])[0-5]\d[0-5]\d\d{0,6}", re.ASCII)
#: track 1: %B, the PAN, ^NAME^, YYMM, service code and discretionary data, up to the end sentinel
_TRACK1 = _Lazy(r"(?P<start>%?)(?P<b>[Bb])(?P<pan>\d{12,19})\^[^^\r\n]{0,64}\^\d{4}[^?\s^]*(?P<end>\??)", re.ASCII)
#: track 2 (``;PAN=YYMM…?``) and its bare form; ``D`` separates the fields where track 2 is written in hex
#: (EMV), where the digits before the PAN may be its tag and length (``57 13``, ``9F6B 13``) glued to it
_TRACK2 = _Lazy(r"(?P<start>;?)(?<!\d)(?P<run>\d{12,})[=D](?P<expiry>\d{4})[0-9F]*(?P<end>\??)", re.ASCII)
#: EMV tag 5A (the PAN), its length in bytes and the PAN in BCD, glued: ``5A084111111111111111``
_TAG_PAN = _Lazy(r"(?<![G-Zg-z])5[Aa](?P<length>0[7-9Aa])(?P<digits>\d{12,})", re.ASCII)
_MONTH = ("01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12")

# --- secrets ------------------------------------------------------------------------------------------
_CARD_CODES = r"cvv2?|cvc2?|cav2|cvn2?|cvd|csc|ccv"
_PIN_BLOCKS = r"pin[_ -]?block|epb|(?:de|f|fld|field|bit)[_ -]?0*52"
#: names of fields whose value is a card verification code, a PIN (block) or a secret
_SECRET_WORDS = (rf"{_CARD_CODES}|security[_-]?code|pin|{_PIN_BLOCKS}|"
                 r"password|passwd|pwd|passphrase|secret|token|api[_-]?key|private[_-]?key|credentials?")
#: the name alone or as the last part of a longer one (``push_token``, ``x-api-key``, ``"cvv"``); a name
#: used in a sentence ("a bearer token is a password: run …", "a terminal's token: …") is prose, not a
#: field (and the end of a path is a file: see :func:`_mask_field`)
_PROSE = r"(?<!\ba )(?<!\ban )(?<!\bthe )(?<!'s )(?<!\byour )(?<!\bthis )"
#: a value that is itself the next ``key=value`` field (``online PIN: code=2824``: the PIN's value is not
#: there, and ``code=2824`` must stay for the diagnosis); base64 padding (``dG9r==``) is a value
_NEXT_FIELD = r"(?![A-Za-z_][A-Za-z0-9_.-]*=[^\s=])"
_FIELD = _Lazy(
    rf"(?:(?<![A-Za-z0-9])|(?<=[A-Za-z0-9][_.-])){_PROSE}(?P<key>(?:{_SECRET_WORDS})s?)(?P<sep>[\"']?[ \t]*[:=][ \t]*)"
    rf"(?:(?P<q>\\?[\"'])(?P<quoted>[^\r\n]*?)(?P=q)|{_NEXT_FIELD}(?P<bare>[^\s,;&'\"{{}}\[\]()<>\\]+))", re.I)
#: may one of those names be in the (lower-cased) text? (a quick test before the exact one)
_FIELD_HINT = _Lazy(r"cv|cav|csc|ccv|secur|pin|epb|52|pass|pwd|secret|token|key|credential")
#: a card code or a PIN block written without a sign: ``CVV 123``, ``pin_block 1234ABCD5678EF00``
_SPACED = _Lazy(rf"(?<![A-Za-z0-9])(?P<key>{_CARD_CODES}|{_PIN_BLOCKS})(?P<sep>[ \t]+)"
                r"(?P<bare>[0-9A-F]{16}(?![0-9A-Z])|\d{3,4}(?!\d))", re.I)
_AUTH_SCHEMES = r"(?:basic|bearer|digest|token|negotiate|ntlm|apikey)[ \t]+"
_AUTHORIZATION = _Lazy(rf"(?P<head>\b(?:proxy-)?authorization[\"']?[ \t]*[:=][ \t]*[\"']?(?:{_AUTH_SCHEMES})?)"
                       rf"(?!{_AUTH_SCHEMES})(?P<cred>[^\s\"',;<>]+)", re.I)
_BEARER = _Lazy(r"(?P<head>\bbearer[ \t]+)(?P<cred>[A-Za-z0-9._~+/=-]{6,})", re.I)
_USERINFO = _Lazy(r"\b(?P<scheme>[a-z][a-z0-9+.-]*://)(?:[^\s/?#@\"'<>]|<redacted>)+@", re.I)
#: a URL (scheme://…) or a path (/…) followed by a query or a fragment
#: (a value already replaced — a remembered secret — is part of it, and the values after it are masked too)
_QUERY = _Lazy(r"(?P<base>\b[a-z][a-z0-9+.-]*://[^\s?#\"'<>]*|/[^\s?#\"'<>]*)(?P<rest>[?#](?:[^\s\"'<>]|<redacted>)*)", re.I)
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
    digits = digits.translate(_TO_ASCII)
    if not 13 <= len(digits) <= 19 or digits[0] == "0":
        return False
    if digits[0] == "1" and len(digits) in (13, 16, 19):  # Unix time in ms, µs, ns (no such card starts with 1)
        return False
    return not _STAMP.fullmatch(digits) and luhn(digits)


def mask_pan(pan: str) -> str:
    """The first six and last four digits kept, the others starred; separators stay where they are."""
    positions = [i for i, char in enumerate(pan) if char.isdigit()]
    hidden = set(positions[6:-4])
    return "".join("*" if i in hidden else char for i, char in enumerate(pan))


def _joins(run: str, groups: list[tuple[int, int]], first: int, j: int) -> bool:
    """Whether group ``j`` continues the card number that starts at group ``first``: both groups of a
    card's layout (3–6 digits; 7 or 8 between spaces, as in ``41111111 11111111``), and the same kind
    of separator all along (a list of addresses, ``10.0.0.1 10.0.0.2``, mixes them)."""
    separator = run[groups[first][1]:groups[first + 1][0]]
    between = run[groups[j - 1][1]:groups[j][0]]
    if between[0] != separator[0] and not (between[0] in " \t" and separator[0] in " \t"):
        return False
    widest = 8 if separator[0] in " \t" else 6
    return all(3 <= groups[k][1] - groups[k][0] <= widest for k in (first, j))


def _mask_run(match: re.Match[str]) -> str:
    """Every PAN in a run of digit groups: a single group of 13–19 digits, or consecutive groups of a
    card's layout that together make one. Digits kept by no PAN found are starred."""
    run = match.group()
    groups = [(m.start(), m.end()) for m in _GROUP.finditer(run)]
    hidden: set[int] = set()
    for i in range(len(groups)):
        positions: list[int] = []
        for j in range(i, len(groups)):
            if j > i and not _joins(run, groups, i, j):
                break
            positions.extend(range(*groups[j]))
            if len(positions) > 19:
                break
            if len(positions) >= 13 and is_card_number("".join(run[p] for p in positions)):
                hidden.update(positions[6:-4])
    return "".join("*" if i in hidden else char for i, char in enumerate(run)) if hidden else run


def _mask_track2(match: re.Match[str]) -> str:
    """Track 2 keeps its masked PAN. A run of more than 19 digits is EMV hex with the tag and length
    glued in front: the PAN is its longest end that is a card number, and the expiry a real month;
    without both it is some other hex (an id, a fingerprint) and stays as it is."""
    run, kept = match["run"], ""
    if len(run) > 19:
        if match["expiry"][2:] not in _MONTH:
            return match.group()
        pan = next((run[-n:] for n in range(19, 12, -1) if is_card_number(run[-n:])), None)
        if pan is None:
            return match.group()
        run, kept = pan, run[:-len(pan)]
    return f"{match['start']}{kept}{mask_pan(run)}={REDACTED}{match['end']}"


def _mask_tag_pan(match: re.Match[str]) -> str:
    """EMV tag 5A: as many digits as its length byte says (one fewer when padded with ``F``) are the PAN."""
    digits = match["digits"]
    pan = digits[:2 * int(match["length"], 16)]
    if not is_card_number(pan):
        return match.group()
    return match.group()[:match.start("digits") - match.start()] + mask_pan(pan) + digits[len(pan):]


def _mask_tracks(text: str) -> str:
    if "^" in text:
        text = _TRACK1.sub(lambda m: f"{m['start']}{m['b']}{mask_pan(m['pan'])}^{REDACTED}{m['end']}", text)
    if "5a" in text or "5A" in text:  # first: track 2's trailing hex may run into a glued tag 5A
        text = _TAG_PAN.sub(_mask_tag_pan, text)
    return _TRACK2.sub(_mask_track2, text)


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
        text = _SPACED.sub(lambda m: m["key"] + m["sep"] + REDACTED, text)
    return text


def mask_text(text: str) -> str:
    """``text`` with every PAN masked and all track data, card codes, PIN blocks and secrets replaced.

    Each kind is looked for only where a cheap test says it may be (a digit run, a ``?``, a word), so
    that a line with nothing to hide costs a few string searches."""
    return mask_card_data(_mask_secrets(text)) if text else text


def mask_data(value: Any) -> Any:
    """A JSON-like structure with every string in it (keys too) masked by :func:`mask_text`; an integer
    that is a card number (a POS writes ``{"pan": 4111111111111111}``) becomes its masked string; other
    numbers, booleans and the structure itself unchanged (tuples become lists, as JSON has them)."""
    if isinstance(value, str):
        return mask_text(value)
    if type(value) is int and 10 ** 12 <= abs(value) < 10 ** 19 and is_card_number(str(abs(value))):
        return mask_pan(str(value))
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
