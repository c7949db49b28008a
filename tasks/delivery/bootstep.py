"""The consumer bootstep that owns the worker's delivery machinery (tasks/app.py adds it).

It builds the process's Keeper (tasks/delivery/keeper.py) once, hands it to the consumer connection's
transport each time the consumer (re)connects — Celery starts the steps again after a reconnect, on a
new connection — and stamps the watchdog from the event loop's timer.
"""
from __future__ import annotations

from typing import Any

from celery import bootsteps

from tasks.delivery import heartbeat
from tasks.delivery.keeper import Keeper
from tasks.runtime import worker_settings

SHUTDOWN_MARGIN = 30.0  # beyond the longest time limit, for a warm shutdown to finish


class Delivery(bootsteps.StartStopStep):
    """Consumer bootstep: after the task consumer exists, before the event loop takes anything."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c: Any, **kwargs: Any) -> None:
        super().__init__(c, **kwargs)
        self.keeper: Keeper | None = None
        self._timer: Any = None

    def start(self, c: Any) -> None:
        if self.keeper is None:
            self.keeper = _keeper(c)
            self.keeper.start()
        transport = c.connection.transport
        transport.keeper = self.keeper
        channel = c.connection.default_channel  # the task consumer's channel
        channel.check_landing_possible()
        channel.share_queues()  # should it already consume several queues
        self.keeper.watchdog.stamp(c)
        self._timer = c.timer.call_repeatedly(heartbeat.TICK, self.keeper.watchdog.stamp, (c,), priority=10)

    def stop(self, c: Any) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    shutdown = stop


def _keeper(c: Any) -> Keeper:
    config = worker_settings().config
    longest = max(job["time_limit"] for job in config["jobs"].values())
    return Keeper(c.hostname, c.app.conf.broker_url, c.app.conf.result_backend,
                  config["workers"]["visibility_timeout"], longest + SHUTDOWN_MARGIN)
