"""posdiag agent: finds out why a point-of-sale terminal fails payments with error 2824."""

__version__ = "0.1.0"

#: Release date of this build (UTC, seconds since the epoch). A clock that reads earlier than
#: the software it runs was built is certainly wrong: the clock probe says so.
BUILD_EPOCH = 1793491200  # 2026-11-01T00:00:00Z
