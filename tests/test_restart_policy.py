"""Table tests of the restart decision: backoff, reset after a healthy stretch, crash loops, hangs."""

from __future__ import annotations

import pytest

from comfystudio_desktop.supervise.restart_policy import (
    RestartHistory,
    RestartPolicy,
    Verdict,
    backoff_s,
    decide_restart,
    is_hung,
    readiness_expired,
)

POLICY = RestartPolicy()


@pytest.mark.parametrize(("step", "expected"), [
    (0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0), (4, 16.0), (5, 32.0), (6, 60.0), (7, 60.0), (10_000, 60.0), (-1, 1.0),
])
def test_backoff_doubles_from_one_second_and_caps_at_sixty(step: int, expected: float) -> None:
    assert backoff_s(POLICY, step) == expected


@pytest.mark.parametrize(("history", "now", "healthy_for_s", "verdict", "delay", "recent", "step"), [
    # first failure: 1 s
    (RestartHistory(), 100.0, 0.0, Verdict.RESTART, 1.0, (100.0,), 1),
    # a streak keeps doubling
    (RestartHistory((100.0,), 1), 102.0, 1.0, Verdict.RESTART, 2.0, (100.0, 102.0), 2),
    (RestartHistory((100.0, 102.0), 2), 106.0, 1.0, Verdict.RESTART, 4.0, (100.0, 102.0, 106.0), 3),
    # five minutes healthy resets the backoff (not the crash-loop count)
    (RestartHistory((100.0, 102.0), 6), 500.0, 300.0, Verdict.RESTART, 1.0, (100.0, 102.0, 500.0), 1),
    (RestartHistory((100.0, 102.0), 6), 500.0, 299.0, Verdict.RESTART, 60.0, (100.0, 102.0, 500.0), 7),
    # five restarts inside ten minutes are allowed; the sixth is a crash loop
    (RestartHistory((0.0, 1.0, 2.0, 3.0), 4), 10.0, 0.0, Verdict.RESTART, 16.0, (0.0, 1.0, 2.0, 3.0, 10.0), 5),
    (RestartHistory((0.0, 1.0, 2.0, 3.0, 10.0), 5), 40.0, 0.0, Verdict.FATAL, 0.0, (0.0, 1.0, 2.0, 3.0, 10.0), 5),
    # restarts older than the window no longer count
    (RestartHistory((0.0, 1.0, 2.0, 3.0, 10.0), 5), 600.5, 0.0, Verdict.RESTART, 32.0, (1.0, 2.0, 3.0, 10.0, 600.5),
     6),
    (RestartHistory((0.0, 1.0, 2.0, 3.0, 10.0), 5), 600.0, 0.0, Verdict.RESTART, 32.0, (1.0, 2.0, 3.0, 10.0, 600.0),
     6),
])
def test_decide_restart(history: RestartHistory, now: float, healthy_for_s: float, verdict: Verdict, delay: float,
                        recent: tuple[float, ...], step: int) -> None:
    decision = decide_restart(POLICY, history, now=now, healthy_for_s=healthy_for_s)
    assert (decision.verdict, decision.delay_s) == (verdict, delay)
    assert decision.history == RestartHistory(recent, step)


def test_a_short_policy_reaches_fatal_after_its_threshold() -> None:
    policy = RestartPolicy(initial_backoff_s=0.1, max_backoff_s=0.4, max_restarts=3, crash_loop_window_s=10.0)
    history, verdicts, delays = RestartHistory(), [], []
    for now in (0.0, 0.5, 1.0, 1.5):
        decision = decide_restart(policy, history, now=now, healthy_for_s=0.0)
        history = decision.history
        verdicts.append(decision.verdict)
        delays.append(decision.delay_s)
    assert verdicts == [Verdict.RESTART, Verdict.RESTART, Verdict.RESTART, Verdict.FATAL]
    assert delays == [0.1, 0.2, 0.4, 0.0]


@pytest.mark.parametrize(("failures", "hung"), [(0, False), (1, False), (2, False), (3, True), (4, True)])
def test_hung_after_three_failed_health_checks_in_a_row(failures: int, hung: bool) -> None:
    assert is_hung(POLICY, failures) is hung


@pytest.mark.parametrize(("started_at", "timeout_s", "now", "expired"), [
    (10.0, 5.0, 10.0, False), (10.0, 5.0, 15.0, False), (10.0, 5.0, 15.01, True),
])
def test_readiness_expired(started_at: float, timeout_s: float, now: float, expired: bool) -> None:
    assert readiness_expired(started_at, timeout_s, now) is expired


@pytest.mark.parametrize("kwargs", [
    {"initial_backoff_s": -1.0}, {"initial_backoff_s": 10.0, "max_backoff_s": 5.0}, {"max_restarts": -1},
    {"hung_after_failures": 0},
])
def test_policy_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RestartPolicy(**kwargs)  # type: ignore[arg-type]
