"""Reader protocols: the presets of ``config/readers.toml`` and ``protocol = "custom"``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from posdiag.core.settings import ReaderSettings, presets
from posdiag.probes.reader._framing import SI, SO, Framing

FRAMINGS = {"stx-etx": Framing(), "si-so": Framing(begin=SI, end=SO)}


@dataclass(frozen=True)
class Protocol:
    name: str
    framing: Framing | None  # None: raw bytes
    request: bytes  # payload for framed protocols, the whole request for raw ones
    reply: re.Pattern[str] | None  # on the decoded payload (framed)
    expect_hex: re.Pattern[str] | None  # on the raw reply as lowercase hex (raw)
    ack: bool = False


def protocol_for(cfg: ReaderSettings) -> Protocol:
    """The protocol the configuration asks for. Raises KeyError for an unknown preset name."""
    if cfg.protocol == "custom":
        return Protocol("custom", None, bytes.fromhex(cfg.request), None,
                        re.compile(cfg.expect) if cfg.expect else None)
    p = presets()[cfg.protocol]
    framing = None if p["framing"] == "raw" else FRAMINGS[p["framing"]]
    if framing and ("lrc_includes_begin" in p or "lrc_start" in p):
        framing = Framing(framing.begin, framing.end, p.get("lrc_includes_begin", False), p.get("lrc_start", 0))
    request = p["payload"].encode("latin-1") if framing else bytes.fromhex(p["request_hex"])
    expect = cfg.expect or p.get("expect_hex")
    return Protocol(cfg.protocol, framing, request, re.compile(p["reply"]) if p.get("reply") else None,
                    re.compile(expect) if expect else None, bool(p.get("ack", False)))
