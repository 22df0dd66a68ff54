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
    """Three probes that each wait for the other two: run one after another, the first would wait
    alone until its barrier broke, so all three finishing OK proves they ran side by side."""
    meeting = threading.Barrier(3, timeout=10)

    class Meets(Probe):
        name = "test.meets"
        findings = declare(info=("test.met",))
        timeout_s = 20

        def check(self, obs: Observation) -> None:
            meeting.wait()
            obs.info("test.met", "met the others")

    class Meets2(Meets):
        name = "test.meets2"

    class Meets3(Meets):
        name = "test.meets3"

    results = run_probes(Settings(), [Meets, Meets2, Meets3])
    assert [r.status for r in results] == [Status.OK] * 3, [r.summary for r in results]


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


def test_a_probe_abandoned_at_its_deadline_is_told_at_once_while_a_longer_one_still_runs():
    """The runner waits for the nearest deadline, not the furthest: the hanging probe's result comes at
    its 0.3 s (with the time it ran), and the other probe, which waits for exactly that, goes on to finish."""
    told = threading.Event()

    class WaitsForTheHang(Probe):
        name = "test.waits_for_the_hang"
        findings = declare(info=("test.heard",))
        timeout_s = 20

        def check(self, obs: Observation) -> None:
            if told.wait(15):
                obs.info("test.heard", "the hang was told first")

    class HangsAlso(Hangs):
        name = "test.hangs_also"

    def on_result(result, done: int, total: int) -> None:
        if result.name == "test.hangs_also":
            told.set()

    started = time.monotonic()
    hang, waiter = run_probes(Settings(), [HangsAlso, WaitsForTheHang], deadline_s=30, on_result=on_result)
    assert hang.status is Status.ERROR and waiter.status is Status.OK, (hang.summary, waiter.summary)
    assert 0.25 <= hang.duration_s < 10 and time.monotonic() - started < 14


def test_a_process_exits_with_a_probe_still_stuck_in_its_thread(tmp_path):
    """An abandoned probe's thread dies with the process: a diagnosis ends even when a probe never returns."""
    import subprocess
    import sys

    script = tmp_path / "stuck.py"
    script.write_text(
        "import threading\n"
        "from posdiag.agent.runner import run_probes\n"
        "from posdiag.core.settings import Settings\n"
        "from posdiag.probes.base import Probe\n"
        "class Forever(Probe):\n"
        "    name = 'test.forever'\n"
        "    timeout_s = 0.2\n"
        "    def check(self, obs):\n"
        "        threading.Event().wait()\n"
        "print(run_probes(Settings(), [Forever])[0].status.value)\n")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=20)
    assert proc.returncode == 0 and proc.stdout.strip() == "error", proc.stderr


def test_a_probe_still_waiting_when_the_deadline_passes_is_skipped_for_want_of_time():
    class HangsPastTheDeadline(Hangs):
        name = "test.hangs_past"
        timeout_s = 60

    class AfterTheHang(Slow):
        name = "test.after_the_hang"
        after = ("test.hangs_past",)

    started = time.monotonic()
    hang, late = run_probes(Settings(), [HangsPastTheDeadline, AfterTheHang], deadline_s=0.4)
    assert hang.status is Status.ERROR and late.status is Status.SKIPPED
    assert late.summary == "no time left before the diagnosis deadline" and time.monotonic() - started < 5


def test_the_runner_waits_for_a_slow_probe_without_spinning():
    """While a probe sleeps for two seconds the runner blocks on its queue: its thread spends nearly
    no processor time (a loop polling the queue would spend most of the two seconds)."""

    class Sleeps(Probe):
        name = "test.sleeps"
        findings = declare(info=("test.slept",))
        timeout_s = 20

        def check(self, obs: Observation) -> None:
            time.sleep(2)
            obs.info("test.slept", "slept")

    cpu = time.thread_time()  # the runner's loop runs in this thread; the probe sleeps in its own
    [result] = run_probes(Settings(), [Sleeps], deadline_s=30)
    assert result.status is Status.OK and time.thread_time() - cpu < 0.5


def test_probes_that_need_each_other_are_skipped_for_want_of_a_prerequisite_that_never_ran():
    class First(Slow):
        name = "test.first"
        requires = ("test.second",)

    class Second(Slow):
        name = "test.second"
        requires = ("test.first",)

    assert [(r.status, r.summary) for r in run_probes(Settings(), [First, Second])] == [
        (Status.SKIPPED, "prerequisite did not run")] * 2
