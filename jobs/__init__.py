"""What the gateway and the workers share about a job, and nothing else: the job catalogue and its
queues, Redis key names, message header names, the task record and its store, the status mapping and
error codes, TaskInfo, where large results live and how they are shown (results.py), outcome counts,
dead letters, the base64 rule, the retry backoff, webhook names, signatures and delivery bounds.

May import `settings` and third-party libraries only; `gateway` and `tasks` import it, never the
reverse (import-linter checks this in CI: .importlinter).
"""
