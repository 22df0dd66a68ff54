"""The bottom layer: what probes, the agent and the collector all build on, importing none of them.

Settings and their validation, the text a person reads (catalogues, messages), where packaged data
lives, the one bounded file reader, redaction of card data and secrets, and the UTC time format.
Nothing here imports ``posdiag.probes``, ``posdiag.agent`` or ``posdiag.collector``.
"""
