"""Periodic jobs (config `schedules`): one Celery beat process at a time, RedBeat's Redis lock deciding
which, turns each tick into an ordinary task of the schedule's owner through the gateway's own
save-and-publish path (gateway/submission/publishing.py). docs/operations.md, Periodic jobs."""
