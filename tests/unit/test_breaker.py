"""The breaker in front of Redis and Vault: open after a failure, one probe after the cooldown."""
from __future__ import annotations

from devsupport.processes import wait_until
from gateway.health.breaker import Breaker


def test_breaker_refuses_while_open_then_lets_exactly_one_probe_through():
    breaker = Breaker("test", cooldown=0.05)
    assert breaker.allow()
    breaker.failed()
    assert not breaker.allow()
    wait_until(breaker.allow, 2, "the probe let through after the cooldown")
    assert not breaker.allow(), "a second caller must not probe while the first one is out"
    breaker.succeeded()
    assert breaker.allow() and breaker.allow()


def test_a_failed_probe_opens_the_breaker_again():
    breaker = Breaker("test", cooldown=0.05)
    breaker.failed()
    wait_until(breaker.allow, 2, "probe allowed")
    breaker.failed()
    assert not breaker.allow()
