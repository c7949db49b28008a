"""The delivery state of one worker process, in one object: its node name, its landing lists
(tasks/delivery/landing.py), its leases (tasks/delivery/leases.py), its watchdog
(tasks/delivery/watchdog.py) and its mover of delayed jobs (jobs/delayed.py), with the thread that ticks
them: the mover every `delayed.MOVE_EVERY` seconds, the rest every `heartbeat.TICK`. The consumer bootstep
(tasks/delivery/bootstep.py) owns it, the way Celery's own consumer steps own their timers, and hands
it to the consumer connection's transport (tasks/delivery/transport.py), which asks it what to do.
"""
from __future__ import annotations

import threading
import time
from typing import Any

from loguru import logger

from jobs import delayed
from tasks.delivery import heartbeat, landing
from tasks.delivery.landing import Landings
from tasks.delivery.leases import Leases, running_requests
from tasks.delivery.watchdog import Watchdog
from tasks.runtime import redis_client

CLIENT_TIMEOUT = 2.0  # seconds: the keeper's own Redis calls, off the event loop


class Keeper:
    """One per worker process (see the module's docstring)."""

    def __init__(self, node: str, broker_url: str, result_url: str, visibility: float, shutdown_grace: float) -> None:
        self.node = node
        self.visibility = visibility
        self.broker = redis_client(broker_url, timeout=CLIENT_TIMEOUT)
        self.landings = Landings(node)
        self.leases = Leases(node, self.broker, redis_client(result_url, timeout=CLIENT_TIMEOUT), visibility)
        self.watchdog = Watchdog(node, shutdown_grace)
        self.mover = delayed.Mover(self.broker)
        # Redis is asked every `every` ticks: often enough that the alive key and the leases, which last
        # `visibility` seconds, are renewed three times over before they lapse.
        self.every = max(1, int(visibility / 3 / heartbeat.TICK))
        self._ticks = 0
        self._thread = threading.Thread(target=self._run, name="delivery-keeper", daemon=True)

    def start(self) -> None:
        """Put back what this node's previous life left in its landing lists, say it lives, start ticking."""
        try:
            moved = self.landings.put_back_own(self.broker)
            if moved:
                logger.warning("put back {} message(s) a previous {} took and never recorded", moved, self.node)
            landing.mark_alive(self.broker, self.node, self.visibility)
        except Exception as exc:  # noqa: BLE001 - the other workers' sweeps put them back later
            logger.warning("could not put back landed messages: {}", exc.__class__.__name__)
        self._thread.start()

    def running(self) -> set[str]:
        """Delivery tags of the jobs this worker's children run (the transport never puts those back)."""
        return set(running_requests())

    def release(self, message: Any) -> None:
        self.leases.release(message)

    def _run(self) -> None:
        ticked = time.monotonic()
        while True:
            time.sleep(delayed.MOVE_EVERY)
            self.move()
            if time.monotonic() - ticked >= heartbeat.TICK:
                ticked = time.monotonic()
                self.tick()

    def move(self) -> None:
        """Put delayed jobs that are due on their queues (one ZRANGE when none is)."""
        try:
            moved = self.mover.tick()
            if moved:
                logger.info("moved {} delayed job(s) onto their queues", moved)
        except Exception as exc:  # noqa: BLE001 - retried next second, by this worker or another
            logger.warning("could not move delayed jobs: {}", exc.__class__.__name__)

    def tick(self) -> None:
        self.watchdog.check()
        self._ticks += 1
        if self._ticks % self.every == 0:
            self.refresh()

    def refresh(self) -> None:
        """Say this worker lives, put back what dead workers or lost replies left in landing lists, and
        refresh the leases of what this worker runs."""
        try:
            landing.mark_alive(self.broker, self.node, self.visibility)
            moved = self.landings.sweep(self.broker)
            if moved:
                logger.warning("put back {} landed message(s) a dead worker or a lost reply left", moved)
        except Exception as exc:  # noqa: BLE001 - retried next tick
            logger.warning("could not sweep landing places: {}", exc.__class__.__name__)
        self.leases.refresh(running_requests())
