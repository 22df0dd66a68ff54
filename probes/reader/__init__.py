"""Card reader / PIN pad probes: serial handshake, USB presence and inventory, kernel-log flapping.

They never disturb a reader that is serving a payment: a port held by another process is
reported, not opened; the serial probe sends only the configured status request."""
