"""posdiag-collector: the central server that terminals push their diagnosis reports to.

It authenticates terminals, stores their reports exactly once, and shows operations the fleet: which
tills fail right now, and whether one till, one store or every store fails for the same cause.
Installed through the ``collector`` extra only: nothing here runs on a terminal.
"""
