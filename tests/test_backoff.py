"""The one backoff every retry loop uses: the stream's reconnects, restarts, ComfyUI waits, the event follower."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from comfystudio_desktop.backoff import Backoff
from comfystudio_desktop.supervise.restart_policy import RestartPolicy, backoff_s
from comfystudio_desktop.worker.run_decisions import COMFY_RETRY


@pytest.mark.parametrize(("backoff", "attempt", "delay"), [
    (Backoff(0.5, 2.0, 5.0), -3, 0.5),
    (Backoff(0.5, 2.0, 5.0), 0, 0.5),
    (Backoff(0.5, 2.0, 5.0), 1, 0.5),
    (Backoff(0.5, 2.0, 5.0), 2, 1.0),
    (Backoff(0.5, 2.0, 5.0), 4, 4.0),
    (Backoff(0.5, 2.0, 5.0), 5, 5.0),
    (Backoff(0.5, 2.0, 5.0), 10**9, 5.0),
    (Backoff(10, 1, 10), 7, 10.0),
    (Backoff(0.0, 2.0, 0.0), 9, 0.0),
    (COMFY_RETRY, 1, 1.0),
    (COMFY_RETRY, 6, 30.0),
])
def test_delays(backoff: Backoff, attempt: int, delay: float) -> None:
    assert backoff.delay(attempt) == delay


@pytest.mark.parametrize(("initial", "factor", "maximum"), [(-1.0, 2.0, 5.0), (6.0, 2.0, 5.0), (1.0, 0.5, 5.0)])
def test_refuses_nonsense(initial: float, factor: float, maximum: float) -> None:
    with pytest.raises(ValueError, match="need"):
        Backoff(initial, factor, maximum)


@given(st.floats(0, 100), st.floats(0, 1000), st.integers(-10, 10_000))
def test_restart_policy_backs_off_with_it(initial: float, extra: float, step: int) -> None:
    policy = RestartPolicy(initial_backoff_s=initial, max_backoff_s=initial + extra)
    delay = backoff_s(policy, step)
    assert delay == Backoff(initial, 2.0, initial + extra).delay(step + 1)
    assert initial <= delay <= initial + extra


@given(st.integers(-10, 10_000))
def test_never_shrinks(attempt: int) -> None:
    backoff = Backoff(0.25, 2.0, 1.0)
    assert backoff.delay(attempt) <= backoff.delay(attempt + 1) <= backoff.maximum
