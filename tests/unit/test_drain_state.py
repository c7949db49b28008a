"""gateway/health/drain.py without servers: the state kept in memory or in a gateway's shared file."""
from __future__ import annotations

from pathlib import Path

from gateway.health.drain import Drain


def test_drain_in_memory_starts_once_and_refuses_after_the_grace():
    drain = Drain(grace=0)
    assert drain.state() is None and not drain.refusing_submits()
    first = drain.start(now=100.0)
    assert drain.start() == first and first.refuse_submits_at == 100.0
    assert drain.refusing_submits()


def test_drain_in_a_shared_file_is_seen_by_another_process_view(tmp_path: Path):
    """Two Drain objects on one file stand for two gunicorn workers of one master."""
    one, other = Drain(grace=3600), Drain(grace=3600)
    one.share(tmp_path / "drain.json")
    other.share(tmp_path / "drain.json")
    started = other.start()
    assert one.state() == started and one.start() == started
    assert not one.refusing_submits()  # within the grace: submits still taken
