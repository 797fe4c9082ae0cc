"""The back-off of failed authentication, on an injected clock."""

from __future__ import annotations

import pytest

from api.auth_limits import AuthLimits, FailureLimiter, RateLimitedError


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_burst_then_locks_that_double_up_to_the_cap():
    clock = Clock()
    lim = FailureLimiter(burst=3, base_s=1.0, max_s=8.0, forget_s=900.0, clock=clock)
    assert [lim.admit("k") for _ in range(3)] == [0.0, 0.0, 0.0]  # the 3rd locks for 1 s
    assert lim.admit("k") == pytest.approx(1.0)
    assert lim.admit("k") == pytest.approx(1.0)  # refused attempts do not lengthen it
    locks = []
    for _ in range(6):
        clock.t += lim.wait_s("k")
        assert lim.admit("k") == 0.0
        locks.append(lim.wait_s("k"))
    assert locks == pytest.approx([2.0, 4.0, 8.0, 8.0, 8.0, 8.0])
    assert lim.admit("other") == 0.0  # identities are independent


def test_a_success_gives_its_attempt_back_and_idle_identities_are_forgotten():
    clock = Clock()
    lim = FailureLimiter(burst=2, base_s=1.0, max_s=4.0, forget_s=60.0, clock=clock)
    assert lim.admit("k") == 0.0
    assert lim.admit("k") == 0.0  # locked now, whatever the outcome
    lim.succeeded("k")  # it was the right secret
    assert lim.wait_s("k") == 0.0
    assert lim.admit("k") == 0.0 and lim.wait_s("k") == pytest.approx(1.0)
    clock.t += 61.0
    assert lim.admit("k") == 0.0 and lim.wait_s("k") == 0.0  # a fresh start


def test_memory_is_bounded():
    lim = FailureLimiter(burst=1, max_identities=100, clock=Clock())
    for i in range(1000):
        lim.admit(f"id-{i}")
    assert len(lim._records) == 100


def test_auth_limits_name_the_scope():
    limits = AuthLimits(FailureLimiter(burst=1), FailureLimiter(burst=1))
    limits.admit_key("k")
    with pytest.raises(RateLimitedError) as exc:
        limits.admit_key("k")
    assert exc.value.scope == "key" and exc.value.retry_after_s > 0
