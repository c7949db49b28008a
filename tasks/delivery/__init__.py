"""How a worker takes jobs off their queues and holds them, so that none is lost or run twice when a
worker or Redis dies (SPEC §8; docs/guarantees.md):

- transport.py: kombu's Redis transport for the workers: BLMOVE into a landing list, safe on a lost connection;
- landing.py: the landing lists, and how what a dead worker left there goes back;
- startcheck.py: the check before a job starts (finished, cancelled, held, expired, deliveries counted);
- leases.py: live workers refresh what their children run, so a dead worker's jobs come back promptly;
- watchdog.py and heartbeat.py: a worker that stops consuming exits, and its healthcheck says so;
- keeper.py: the one object holding this state per worker process, ticked by its own thread;
- bootstep.py: the consumer bootstep that owns the keeper and hands it to the transport.

Every kombu and Celery internal relied on here is pinned by tests/contract.
"""
