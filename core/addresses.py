"""Is a configured host an address literal or a name? The settings, the network probes and the
collector's checks all ask, and must agree: a literal is never resolved, a name always is."""

from __future__ import annotations

import ipaddress


def is_address(text: str) -> bool:
    """An IPv4 or IPv6 address literal (not a name)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
