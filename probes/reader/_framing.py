"""Link-level framing of serial card readers: STX…ETX (or SI…SO) with an XOR LRC, and the
ACK/NAK/EOT/ENQ control bytes. Vendors differ in where the LRC starts and which bytes it covers,
so both are parameters."""

from __future__ import annotations

from dataclasses import dataclass

STX, ETX, EOT, ENQ, ACK, NAK, SI, SO = 0x02, 0x03, 0x04, 0x05, 0x06, 0x15, 0x0F, 0x0E
CONTROL_NAMES = {STX: "STX", ETX: "ETX", EOT: "EOT", ENQ: "ENQ", ACK: "ACK", NAK: "NAK", SI: "SI", SO: "SO"}


def lrc(data: bytes, start: int = 0) -> int:
    """Longitudinal redundancy check: XOR of every byte, from ``start``."""
    value = start
    for byte in data:
        value ^= byte
    return value


@dataclass(frozen=True)
class Framing:
    """``begin``/``end`` delimit a frame; the LRC byte follows ``end``.

    ``lrc_includes_begin``: whether the start byte is part of the LRC (most vendors: no; the end
    byte always is). ``lrc_start``: initial LRC value.
    """

    begin: int = STX
    end: int = ETX
    lrc_includes_begin: bool = False
    lrc_start: int = 0

    def encode(self, payload: bytes) -> bytes:
        body = payload + bytes([self.end])
        covered = (bytes([self.begin]) if self.lrc_includes_begin else b"") + body
        return bytes([self.begin]) + body + bytes([lrc(covered, self.lrc_start)])

    def check(self, frame: bytes) -> tuple[bytes, bool]:
        """Split a complete frame (begin … end LRC) into payload and whether its LRC is right."""
        if len(frame) < 3 or frame[0] != self.begin or frame[-2] != self.end:
            raise ValueError("not a complete frame")
        covered = frame[:-1] if self.lrc_includes_begin else frame[1:-1]
        return frame[1:-2], lrc(covered, self.lrc_start) == frame[-1]


def describe(data: bytes, limit: int = 24) -> str:
    """Bytes as a technician reads them: control bytes named, printable text kept, rest in hex."""
    out = []
    for byte in data[:limit]:
        if byte in CONTROL_NAMES:
            out.append(f"<{CONTROL_NAMES[byte]}>")
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\x{byte:02x}")
    return "".join(out) + ("…" if len(data) > limit else "")
