"""What a probe needs configured before it has anything to look at, decided without importing it.

Most tills configure a few of the probes: a default configuration names no payment host, no card
reader and no POS log, so ten of the eighteen probes only say "not configured". Their modules (the
network layers, DNS wire format, X.509, the reader protocols, pyserial) were a third of a diagnosis's
start-up, paid on every ``posdiag diagnose`` for nothing. The catalogue asks here first and imports a
probe only when this says it applies; the probes' own ``skip_reason`` asks here too, so the reason a
technician reads is the same either way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from posdiag.core.i18n import N_, tr

if TYPE_CHECKING:  # pragma: no cover
    from posdiag.core.settings import Settings

#: The one wording of the skip every payment-host probe shares (translated where it is said).
NO_PAYMENT_HOST = N_("no payment host configured ([[payment_hosts]])")
NO_READER = N_("no card reader configured ([reader] kind)")
NO_SERIAL_READER = N_("no serial reader configured ([reader] kind)")
NO_TXLOG = N_("no transaction log configured ([txlog] path)")


def unconfigured(name: str, settings: Settings) -> str | None:
    """Why probe ``name`` has nothing to look at under ``settings`` (in the reader's language), or None
    when what it checks is configured. A probe may still decline later for reasons of its own
    (``applies``), which need its module."""
    if name.startswith("network.") and not settings.payment_hosts:
        return tr(NO_PAYMENT_HOST)
    if name in ("reader.usb", "reader.events") and settings.reader.kind == "none":
        return tr(NO_READER)
    if name == "reader.serial" and settings.reader.kind != "serial":
        return tr(NO_SERIAL_READER)
    if name == "txlog" and not settings.txlog.path:
        return tr(NO_TXLOG)
    return None
