"""Numbers as a person and a monitoring system read them: never in scientific notation.

``f"{x:g}"`` turns a POS uptime of 1036800.5 s into ``1.0368e+06`` (losing the half second, and
outside the characters Nagios perfdata allows) and a limit of ten million into ``1e+07``.
"""

from __future__ import annotations

import math


def plain(value: float, decimals: int = 6) -> str:
    """``value`` in positional notation, at most ``decimals`` places, trailing zeros dropped; a number
    below one keeps ``decimals`` significant digits instead, so that a value someone wrote as
    ``0.0000001`` is never shown as ``0``.

    ``plain(1036800.5) == "1036800.5"``, ``plain(1e7) == "10000000"``, ``plain(0.25) == "0.25"``,
    ``plain(3.0) == "3"``, ``plain(1e-7) == "0.0000001"``. NaN and infinities are spelt ``NaN``,
    ``+Inf`` and ``-Inf`` (Prometheus's spelling) rather than raising.
    """
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = _below_one(value, decimals) if 0 < abs(value) < 1 else None
    text = text or f"{value:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _below_one(value: float, digits: int) -> str | None:
    """``value`` (0 < |value| < 1) to ``digits`` significant digits in positional notation, or None when
    rounding makes it one. Spelt out from the exponent form rather than through ``decimal``, whose
    import every start-up would pay for."""
    mantissa, exponent = f"{abs(value):.{digits - 1}e}".split("e")
    shift = -int(exponent) - 1
    if shift < 0:  # 0.9999999 rounds to 1
        return None
    return ("-" if value < 0 else "") + "0." + "0" * shift + mantissa.replace(".", "")
