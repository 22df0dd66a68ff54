"""Several faults on one till at once (issue #18): a full disk, an untrusted certificate on the payment
host and a silent reader, in twos and all three, each real; and a fault that explains others beside one
that is independent of it. Independent faults are each certain; consequences are not rivals."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from harness import Setup, merge, scenario
from labs.helpers import fill_filesystem
from labs.netlab import Lab
from scenarios_host import _tmpfs
from scenarios_network import build_lab
from scenarios_reader import _emulator, _serial

FAULTS = {"disk": "disk.full", "tls": "tls.failure", "reader": "reader.unresponsive", "link": "network.link_down"}


def till(tmp: Path, stack: ExitStack, faults: tuple[str, ...]) -> Setup:
    """A terminal inside the lab's namespaces with each of ``faults`` injected for real."""
    setup = build_lab(tmp, stack, cert="untrusted" if "tls" in faults else "valid",
                      fault=Lab.interface_down if "link" in faults else None)
    sections = setup.sections
    if "disk" in faults:
        fs = _tmpfs(tmp, stack, "size=1m")
        fill_filesystem(fs)
        sections = merge(sections, {"disk": {"paths": [str(fs)]}})
    if "reader" in faults:
        sections = merge(sections, _serial(tmp, _emulator(stack, "ingenico-rba", "silent"), timeout_s=0.5))
    return Setup(sections, setup.prefix)


def multi(*faults: str) -> None:
    present = tuple(FAULTS[f] for f in faults)
    scenario("multi-" + "+".join(faults), present[0], group="multi", needs_root=True, present=present)(
        lambda tmp, stack: till(tmp, stack, faults))


multi("disk", "reader")
multi("disk", "tls")
multi("tls", "reader")
multi("disk", "tls", "reader")
# A dead link explains the failing layers above it (one fault, not six); the silent reader is another.
multi("link", "reader")
