"""``python -m posdiag.collector`` is the ``posdiag-collector`` command."""

from posdiag.collector.cli import entry

entry()
