"""The runner: concurrency, deadlines, containment of broken probes, prerequisites."""

from __future__ import annotations

import threading
import time

from posdiag.agent.runner import run_probes
from posdiag.core.settings import Settings
from posdiag.probes.base import Observation, Probe, Status, declare

RELEASE = threading.Event()


class Hangs(Probe):
    name = "test.hangs"
    findings = declare(warn=("test.before_hang",))
    timeout_s = 0.3

    def check(self, obs: Observation) -> None:
        obs.warn("test.before_hang", "saw something before getting stuck")
        RELEASE.wait(30)  # a stuck system call, as far as the runner can tell


class Raises(Probe):
    name = "test.raises"

    def check(self, obs: Observation) -> None:
        raise RuntimeError("driver exploded")


class Denied(Probe):
    name = "test.denied"

    def check(self, obs: Observation) -> None:
        raise PermissionError(13, "Permission denied", "/dev/ttyS0")


class Slow(Probe):
    name = "test.slow"
    findings = declare(info=("test.slow_done",))

    def check(self, obs: Observation) -> None:
        time.sleep(0.3)
        obs.info("test.slow_done", "finished")


class Fails(Probe):
    name = "test.fails"
    findings = declare(fail=("test.broken",))

    def check(self, obs: Observation) -> None:
        obs.fail("test.broken", "layer broken")


class NeedsFails(Probe):
    name = "test.needs_fails"
    requires = ("test.fails",)

    def check(self, obs: Observation) -> None:  # pragma: no cover - must never run
        raise AssertionError("ran although its prerequisite failed")


class NeedsSlow(Probe):
    name = "test.needs_slow"
    findings = declare(info=("test.saw_prereq",))
    requires = ("test.slow",)

    def check(self, obs: Observation) -> None:
        assert self.context.results["test.slow"].status is Status.OK
        obs.info("test.saw_prereq", "prerequisite visible")


def test_hanging_probe_is_abandoned_at_its_deadline_keeping_what_it_saw():
    started = time.monotonic()
    results = run_probes(Settings(), [Hangs, Slow])
    elapsed = time.monotonic() - started
    hang = results[0]
    assert hang.status is Status.ERROR
    assert [f.code for f in hang.findings] == ["test.before_hang", "probe.timeout"]
    assert results[1].status is Status.OK
    assert elapsed < 1.5  # 0.3 s deadline, not the 30 s hang


def test_overall_deadline_caps_every_probe():
    class LongTimeout(Hangs):
        name = "test.long"
        timeout_s = 60

    started = time.monotonic()
    results = run_probes(Settings(), [LongTimeout], deadline_s=0.5)
    assert results[0].status is Status.ERROR
    assert time.monotonic() - started < 1.5


def test_raising_probe_becomes_error_and_others_still_run():
    results = run_probes(Settings(), [Raises, Slow, Denied])
    by_name = {r.name: r for r in results}
    assert by_name["test.raises"].status is Status.ERROR
    assert "driver exploded" in by_name["test.raises"].summary
    assert by_name["test.raises"].findings[-1].code == "probe.crashed"
    assert by_name["test.denied"].status is Status.ERROR
    assert by_name["test.denied"].findings[-1].code == "probe.permission_denied"
    assert by_name["test.slow"].status is Status.OK


def test_probes_run_concurrently():
    class Slow2(Slow):
        name = "test.slow2"

    class Slow3(Slow):
        name = "test.slow3"

    started = time.monotonic()
    run_probes(Settings(), [Slow, Slow2, Slow3])
    assert time.monotonic() - started < 0.8  # three 0.3 s probes, not 0.9 s in a row


def test_failed_prerequisite_skips_dependant_with_the_reason():
    results = run_probes(Settings(), [Fails, NeedsFails])
    skipped = results[1]
    assert skipped.status is Status.SKIPPED
    assert "test.fails fail" in skipped.summary


class NotHere(Probe):
    name = "test.not_here"

    def skip_reason(self) -> str | None:
        return "nothing to look at here"


class NeedsBoth(Probe):
    name = "test.needs_both"
    requires = ("test.not_here", "test.fails")

    def skip_reason(self) -> str | None:
        return "its own reason"

    def check(self, obs: Observation) -> None:  # pragma: no cover - must never run
        raise AssertionError("ran although a prerequisite failed")


def test_a_dependant_names_the_failed_prerequisite_not_its_own_reason_when_one_was_merely_skipped():
    """Its own skip reason counts only when every prerequisite was skipped: a failed one is the root to show."""
    mixed = run_probes(Settings(), [NotHere, Fails, NeedsBoth])[2]
    assert mixed.status is Status.SKIPPED and "test.fails fail" in mixed.summary, mixed
    alone = run_probes(Settings(), [NotHere, NeedsBothOfSkipped])[1]
    assert alone.summary == "its own reason", alone


class NeedsBothOfSkipped(NeedsBoth):
    name = "test.needs_skipped"
    requires = ("test.not_here",)


def test_dependant_runs_after_its_prerequisite_and_sees_its_result():
    results = run_probes(Settings(), [NeedsSlow, Slow])
    assert [r.name for r in results] == ["test.needs_slow", "test.slow"]
    assert results[0].status is Status.OK
    assert results[0].findings[0].code == "test.saw_prereq"


def test_probe_still_stuck_from_an_earlier_sweep_is_not_started_again():
    class StuckAgain(Hangs):
        name = "test.stuck_again"

    first = run_probes(Settings(), [StuckAgain])
    assert first[0].findings[-1].code == "probe.timeout"
    second = run_probes(Settings(), [StuckAgain])
    assert second[0].status is Status.ERROR
    assert second[0].findings[0].code == "probe.still_stuck"
    assert second[0].duration_s == 0.0


def teardown_module() -> None:
    RELEASE.set()


class NotConfigured(Probe):
    name = "test.not_configured"
    asked_from: list[str] = []

    def skip_reason(self) -> str | None:
        NotConfigured.asked_from.append(threading.current_thread().name)
        return "nothing configured for it"

    def check(self, obs: Observation) -> None:  # pragma: no cover - must never run
        raise AssertionError("a probe with nothing configured ran")


class SkipReasonRaises(Probe):
    name = "test.skip_reason_raises"

    def skip_reason(self) -> str | None:
        raise KeyError("reader")

    def check(self, obs: Observation) -> None:  # pragma: no cover - must never run
        raise AssertionError("ran although its skip reason raised")


def test_a_probe_with_nothing_configured_is_skipped_without_a_thread_of_its_own():
    NotConfigured.asked_from.clear()
    [result] = run_probes(Settings(), [NotConfigured], deadline_s=2)
    assert result.status is Status.SKIPPED and result.summary == "nothing configured for it"
    assert NotConfigured.asked_from == [threading.current_thread().name]


def test_a_skip_reason_that_raises_is_contained_as_the_probes_error():
    [result] = run_probes(Settings(), [SkipReasonRaises], deadline_s=2)
    assert result.status is Status.ERROR
    assert [f.code for f in result.findings] == ["probe.crashed"] and "KeyError" in result.summary


def test_a_result_reads_to_the_tenth_of_a_millisecond_and_its_metrics_to_three_decimals():
    """What every report carries: a probe's duration in seconds to four decimals, a float metric to three
    (an int or a word as it is)."""
    from posdiag.probes.base import ProbeResult

    obs = Observation()
    obs.metric("ratio", 0.123456)
    obs.metric("count", 7)
    obs.metric("word", "eth0")
    obs.metric("none", None)
    result = ProbeResult("x", Status.OK, 0.123456789, "fine", (), dict(obs.metrics)).to_dict()
    assert result["duration_s"] == 0.1235
    assert result["metrics"] == {"ratio": 0.123, "count": 7, "word": "eth0", "none": None}


def test_a_probe_has_two_and_a_half_seconds_unless_it_says_otherwise():
    """The default deadline: a probe busy for half a second is waited for, and says how long it has left."""
    seen: list[float] = []

    class Busy(Probe):
        name = "test.busy"

        def check(self, obs: Observation) -> None:
            seen.append(self.remaining_s())
            RELEASE.wait(0.5)

    assert Busy(Settings()).remaining_s() == 2.5
    [result] = run_probes(Settings(), [Busy])
    assert result.status is Status.OK and 2.0 < seen[0] <= 2.5, (result, seen)
