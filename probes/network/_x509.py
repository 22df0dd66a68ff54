"""Who a certificate says it is, read from its DER bytes: subject, issuer, validity, SHA-256.

When verification fails, Python's ``ssl`` gives no decoded certificate (``getpeercert()`` is empty
for an unverified peer), yet that is exactly when a technician needs to know *which* certificate the
terminal was shown: the acquirer's expired one, a proxy's, a test one. Only the few fields of the
X.509 ``TBSCertificate`` (RFC 5280 4.1) that say so are read, with a small DER reader — no
dependency for a rare path. The same reader tells when the terminal's own client certificate (a PEM
file, which the ssl module never decodes) expires.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timezone

from posdiag.core.timefmt import ISO_FORMAT, parse_utc_iso

#: attribute types (OID, DER-encoded value bytes) shown in a name, in the order people write them
_NAME_PARTS = ((bytes([0x55, 0x04, 0x03]), "CN"), (bytes([0x55, 0x04, 0x0B]), "OU"), (bytes([0x55, 0x04, 0x0A]), "O"),
               (bytes([0x55, 0x04, 0x07]), "L"), (bytes([0x55, 0x04, 0x08]), "ST"), (bytes([0x55, 0x04, 0x06]), "C"))
_PEM = re.compile(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.S)
_STRINGS = {0x0C: "utf-8", 0x13: "ascii", 0x16: "ascii", 0x14: "latin-1", 0x1E: "utf-16-be"}


class BadCertificate(ValueError):
    """The bytes are not a certificate this reader understands."""


@dataclass(frozen=True)
class CertInfo:
    subject: str
    issuer: str
    not_before: str  # UTC, YYYY-MM-DDTHH:MM:SSZ
    not_after: str
    sha256: str  # upper-case hex pairs joined by colons, as browsers and openssl show it

    def to_dict(self) -> dict[str, str]:
        return {"subject": self.subject, "issuer": self.issuer, "not_before": self.not_before,
                "not_after": self.not_after, "sha256": self.sha256}


def _tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of the value, end of the value) of the DER element at ``pos``."""
    if pos + 2 > len(data):
        raise BadCertificate("truncated")
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if not 0 < n <= 4 or pos + n > len(data):
            raise BadCertificate("bad length")
        length, pos = int.from_bytes(data[pos:pos + n], "big"), pos + n
    if pos + length > len(data):
        raise BadCertificate("truncated")
    return tag, pos, pos + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    out, pos = [], start
    while pos < end:
        tag, vstart, vend = _tlv(data, pos)
        out.append((tag, vstart, vend))
        pos = vend
    return out


def _name(data: bytes, start: int, end: int) -> str:
    """An X.509 Name as "CN=…, O=…" (the parts people read; others are left out)."""
    found: dict[str, str] = {}
    for _, set_start, set_end in _children(data, start, end):  # RelativeDistinguishedName (SET)
        for _, seq_start, seq_end in _children(data, set_start, set_end):  # AttributeTypeAndValue
            (_, oid_s, oid_e), (vtag, v_s, v_e) = _children(data, seq_start, seq_end)[:2]
            label = next((lbl for oid, lbl in _NAME_PARTS if data[oid_s:oid_e] == oid), None)
            if label and vtag in _STRINGS:
                found.setdefault(label, data[v_s:v_e].decode(_STRINGS[vtag], "replace"))
    return ", ".join(f"{label}={found[label]}" for _, label in _NAME_PARTS if label in found)


def _time(data: bytes, tag: int, start: int, end: int) -> str:
    """UTCTime (YYMMDDHHMMSSZ, years 1950..2049 as RFC 5280 4.1.2.5.1 says) or GeneralizedTime."""
    text = data[start:end].decode("ascii", "replace")
    if tag == 0x17:
        text = f"{19 if text[:2] >= '50' else 20}{text}"
    try:
        when = datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        raise BadCertificate(f"bad time {text!r}") from None
    return when.strftime(ISO_FORMAT)


def read(der: bytes) -> CertInfo:
    """Subject, issuer, validity and fingerprint of a DER certificate. Raises :class:`BadCertificate`."""
    _, cert_s, cert_e = _tlv(der, 0)
    _, tbs_s, tbs_e = _tlv(der, cert_s)
    fields = _children(der, tbs_s, tbs_e)
    if fields and fields[0][0] == 0xA0:  # [0] version: present in v3 certificates
        fields = fields[1:]
    if len(fields) < 5:
        raise BadCertificate("too few fields")
    (_, iss_s, iss_e), (_, val_s, val_e), (_, sub_s, sub_e) = fields[2], fields[3], fields[4]
    validity = _children(der, val_s, val_e)
    if len(validity) != 2:
        raise BadCertificate("bad validity")
    digest = hashlib.sha256(der).hexdigest().upper()
    return CertInfo(_name(der, sub_s, sub_e), _name(der, iss_s, iss_e), _time(der, *validity[0]),
                    _time(der, *validity[1]), ":".join(digest[i:i + 2] for i in range(0, len(digest), 2)))


def not_after(pem_text: str) -> float | None:
    """Seconds since the epoch when the first certificate in ``pem_text`` expires; None if there is none."""
    import ssl

    match = _PEM.search(pem_text)
    if not match:
        return None
    try:
        return parse_utc_iso(read(ssl.PEM_cert_to_DER_cert(match.group(0))).not_after)
    except ValueError:  # BadCertificate included
        return None
