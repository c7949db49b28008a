"""Workers in any language: the internal HTTP worker API (SPEC §4's `system` identity), with the
guarantees of the Celery workers (SPEC §8; docs/workers.md has the protocol).

- messages.py: what a task message taken off a queue says (job type, upload, limits);
- scripts.py: the Lua that takes a message, checks its start, keeps its lease and ends it, atomically;
- endings.py: what an ended job stores and sends, in the very format a Celery worker would (meta, events);
- leasing.py: lease, heartbeat and finish, and the long polls' share of a gateway process.

A message an HTTP worker takes is a kombu delivery like any other: it sits in kombu's `unacked` hash
until it ends, and the sweep every Celery worker runs (and the gateway's own, for queues served by
HTTP workers only) puts it back in its queue once its lease has lapsed.
"""
