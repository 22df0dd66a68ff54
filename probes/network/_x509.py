"""When a certificate in a PEM file expires: the ``notAfter`` of its validity, read from the DER
(RFC 5280 §4.1) with the standard library alone — the agent has no X.509 package, and the ssl
module only shows the peer's certificate, never the terminal's own client certificate."""

from __future__ import annotations

import calendar
import re
import ssl
import time

_PEM = re.compile(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.S)


def not_after(pem_text: str) -> float | None:
    """Seconds since the epoch when the first certificate in ``pem_text`` expires; None if there is none."""
    match = _PEM.search(pem_text)
    if not match:
        return None
    try:
        der = ssl.PEM_cert_to_DER_cert(match.group(0))
        certificate = _children(der, *_tlv(der, 0)[1:])
        tbs = _children(der, *certificate[0][1:])
        fields = tbs[1:] if tbs[0][0] == 0xA0 else tbs  # [0] version is optional
        validity = _children(der, *fields[3][1:])  # serialNumber, signature, issuer, validity
        tag, start, end = validity[1]
        return _time(tag, der[start:end].decode("ascii"))
    except (ValueError, IndexError):
        return None


def _tlv(der: bytes, at: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at ``at``."""
    tag, length, at = der[at], der[at + 1], at + 2
    if length & 0x80:
        count = length & 0x7F
        if not 0 < count <= 4:
            raise ValueError("unsupported DER length")
        length, at = int.from_bytes(der[at:at + count], "big"), at + count
    if at + length > len(der):
        raise ValueError("truncated DER")
    return tag, at, at + length


def _children(der: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    out, at = [], start
    while at < end:
        tag, content, stop = _tlv(der, at)
        out.append((tag, content, stop))
        at = stop
    return out


def _time(tag: int, text: str) -> float:
    """UTCTime (YYMMDDHHMMSSZ, 1950..2049) or GeneralizedTime (YYYYMMDDHHMMSSZ)."""
    if tag == 0x17:
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    elif tag != 0x18:
        raise ValueError("not a time")
    return float(calendar.timegm(time.strptime(text[:14], "%Y%m%d%H%M%S")))
