"""Every Redis key name the gateway and the workers share, in one place. All live as long as results
do (`results.expires`) unless said otherwise."""
from __future__ import annotations

# gw:task:<uuid>: the gateway's record of an accepted task (type, created, expires, ExternalId, owner,
# callback, cancelled). The worker's start check (tasks/delivery/startcheck.py) reads `cancelled` and
# writes `started` (when a worker first started it: the gateway shows it running from then on, Celery's
# meta saying nothing until it ends) and `runs` (attempts started whose end never came: each is a
# delivery whose worker died; cleared when an attempt ends, however it ends).
RECORD_PREFIX = "gw:task:"
# gw:owner:<client_id>: sorted set of the client's task ids by creation time (the listing index).
OWNER_PREFIX = "gw:owner:"
# gw:open:<client_id>: the client's unfinished tasks (score: when they expire); workers remove a task
# when it ends, expired ones fall out by score.
OPEN_PREFIX = "gw:open:"
# gw:idem:<client_id-hash>: the task an ExternalId / Idempotency-Key already names.
IDEMPOTENCY_PREFIX = "gw:idem:"
# Celery's Redis result backend key for a task (KeyValueStoreBackend.task_keyprefix).
META_PREFIX = "celery-task-meta-"
# Outcome counts: lifetime totals, and per UTC hour (jobs/stats.py).
STATS_TOTAL = "gw:stats:total"
STATS_HOUR_PREFIX = "gw:stats:hour:"
# Runtime and queue-wait histograms of finished jobs, per type, lifetime (jobs/timings.py).
TIMINGS = "gw:timings"
# Jobs set aside after their retries (jobs/deadletters.py); kept until an operator requeues them.
DEADLETTERS = "gw:deadletters"
# gw:lease:<uuid>: the worker and pool process running the task ("<node>|<pid>"), while it runs; the worker refreshes it and
# lets it lapse `workers.visibility_timeout` seconds after it stops (tasks/delivery/leases.py). A running task
# without a lease has lost its worker: the gateway shows it queued again, not `pending`.
LEASE_PREFIX = "gw:lease:"
# gw:rate:<kind>:<who>:<period>:<span>: hashes of the rate limits' and the failed-authentication
# throttle's counts, window -> count (gateway/access/ratelimit.py); each lives a little over a minute
# or two windows, whichever is longer.
RATE_PREFIX = "gw:rate"
# gw:content:<uuid>: an image job's result content (base64 text), kept apart from Celery's meta so that
# reading a task's state never reads its image (jobs/results.py).
CONTENT_PREFIX = "gw:content:"
# gw:landing:<node>:<queue>: where a worker's transport puts a message it takes off `queue` until the
# delivery is recorded in kombu's `unacked` (tasks/delivery/landing.py); empty within milliseconds.
LANDING_PREFIX = "gw:landing:"
# Delayed jobs (jobs/delayed.py), on the broker: gw:delayed, a sorted set of task ids scored by when each
# is due (epoch seconds), and gw:delayed:messages, task id -> the Redis commands that put its message on
# its queue (JSON). Both hold a task only until it is due or cancelled.
DELAYED = "gw:delayed"
DELAYED_MESSAGES = "gw:delayed:messages"
# Hash of every landing list -> JSON {node, queue}, so a sweep finds the lists of dead workers.
LANDINGS = "gw:landings"
# gw:worker-alive:<node>: set by each live worker every few seconds, expiring after
# `workers.visibility_timeout`; a node without it is dead and its landing lists go back.
ALIVE_PREFIX = "gw:worker-alive:"

# The periodic jobs' scheduler (gateway/schedules/): RedBeat's keys, all under gw:beat: (its key prefix):
# gw:beat:<schedule> (hash: definition, meta {last_run_at, total_run_count}), gw:beat::schedule (sorted set
# of entries by when they are next due), gw:beat::statics (the configured names), gw:beat::lock (the one
# scheduler's lock, its TTL `scheduler.lock_timeout`). In the task store's Redis; kept until the schedule
# leaves the configuration.
BEAT_PREFIX = "gw:beat:"
BEAT_LOCK = BEAT_PREFIX + ":lock"
# Hash of schedule name -> JSON {uuid, tick, fired_at}: the task its last tick made (gateway/schedules/firing.py).
SCHEDULE_RUNS = "gw:schedule-runs"

# HTTP workers seen (gateway/workers/): hash "<worker>|<queue>" -> when it last asked for a job of the
# queue or heartbeat one of its jobs (epoch seconds). On the broker; entries idle for a day are dropped.
HTTP_WORKERS = "gw:http-workers"

# kombu's Redis transport (kombu 5.7 `Channel.unacked_key` / `unacked_index_key` defaults, pinned by
# tests/contract): delivery tag -> message, and delivery tag -> when delivered (or last refreshed).
KOMBU_UNACKED = "unacked"
KOMBU_UNACKED_INDEX = "unacked_index"


def landing_key(node: str, queue: str) -> str:
    return f"{LANDING_PREFIX}{node}:{queue}"
