"""Prometheus metrics (SPEC §7), correct under several gunicorn worker processes.

Counters and histograms live in this process and, under gunicorn, in prometheus_client's multiprocess
files (gunicorn.conf.py sets PROMETHEUS_MULTIPROC_DIR before any worker imports this), so a scrape of
any worker returns the sum over all of them. Broker-side values (queue depth, oldest message age) and
task outcomes and timings (counted in Redis by the workers: jobs/stats.py, jobs/timings.py) are read at
scrape time.
"""
from __future__ import annotations

import os
import time

from flask import Flask, Response, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from redis.exceptions import RedisError

from gateway.health.queues import queue_stats, queue_workers
from gateway.http import requestinfo
from jobs import stats, timings
from jobs.keys import DEADLETTERS
from jobs.status import code_for_reason

REQUESTS = Counter("gateway_http_requests_total", "HTTP requests by route, method and status",
                   ["route", "method", "status"])
LATENCY = Histogram("gateway_http_request_duration_seconds", "HTTP request latency by route and method",
                    ["route", "method"], buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5))
SUBMISSIONS = Counter("gateway_submissions_total", "POST /submit by job type and outcome", ["type", "outcome"])
AUTH = Counter("gateway_auth_decisions_total", "Authentication/authorization decisions", ["outcome", "reason"])
VAULT_LATENCY = Histogram("gateway_vault_request_duration_seconds", "Vault calls by operation and outcome",
                          ["operation", "outcome"], buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2))
LOGIN_CACHE = Counter("gateway_login_cache_lookups_total", "Login cache lookups by result (hit, miss)", ["result"])

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# POST /submit: one outcome per answer (docs/operations.md lists them). By status, for every status the
# route declares and a bug's 500 ...
SUBMIT_OUTCOMES = {200: "repeat", 202: "accepted", 400: "invalid", 401: "unauthorized", 403: "forbidden",
                   409: "conflict", 413: "too_large", 415: "invalid", 429: "rate_limited", 500: "internal_error",
                   503: "broker_down"}
# ... except where one status has several answers: the code that decides such an answer names it
# (note_submit_outcome), and the name counts only with its own status.
NAMED_OUTCOMES = {"throttled": 429, "over_cap": 429, "auth_unavailable": 503, "store_down": 503, "outcome_unknown": 503}
OTHER_OUTCOME = "other"  # a status outside SUBMIT_OUTCOMES (none today): the label's values stay a closed set


def init_app(app: Flask) -> None:
    app.after_request(_observe)


def note_submit_outcome(outcome: str) -> None:
    """Name this request's outcome where its status alone does not tell it (one of NAMED_OUTCOMES),
    for the submissions counter; outside a request (a dispatcher driven directly) there is nothing to name."""
    if outcome not in NAMED_OUTCOMES:
        raise ValueError(f"not a named submit outcome: {outcome}")
    info = requestinfo.current()
    if info is not None:
        info.submit_outcome = outcome


def submit_outcome(status: int, named: str | None) -> str:
    """The outcome label of a POST /submit answered with `status`, `named` by the code that decided it."""
    if named is not None and NAMED_OUTCOMES.get(named) == status:
        return named
    return SUBMIT_OUTCOMES.get(status, OTHER_OUTCOME)


def _observe(response: Response) -> Response:
    """Every label from a closed set: routes as declared (else <unmatched>), methods Flask knows (else
    OTHER), job types from the catalogue; the body is never read here (SPEC §8)."""
    info = requestinfo.current()
    route = request.url_rule.rule if request.url_rule else "<unmatched>"
    method = request.method if request.method in METHODS else "OTHER"
    REQUESTS.labels(route, method, str(response.status_code)).inc()
    if info is not None:
        LATENCY.labels(route, method).observe(time.perf_counter() - info.started)
    if request.endpoint == "tasks.submit" and request.method == "POST":  # not Flask's automatic OPTIONS
        outcome = submit_outcome(response.status_code, info.submit_outcome if info else None)
        SUBMISSIONS.labels((info.job_type if info else None) or "<unknown>", outcome).inc()
    return response


def render(broker_collector: BrokerCollector) -> Response:
    """The exposition text: this process's (or all workers') metrics plus the scrape-time ones."""
    scrape = CollectorRegistry()
    scrape.register(broker_collector)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        workers = CollectorRegistry()
        multiprocess.MultiProcessCollector(workers)
        body = generate_latest(workers) + generate_latest(scrape)
    else:
        body = generate_latest(REGISTRY) + generate_latest(scrape)
    return Response(body, content_type=CONTENT_TYPE_LATEST)


class BrokerCollector:
    """Queue depth, oldest-message age and live workers per queue, task outcomes and timings per type, the
    dead letters, and whether Redis answered."""

    def __init__(self, broker, results, queues: list[str], http_live: float = 0) -> None:
        self.broker, self.results, self.queues = broker, results, queues
        self.http_live = http_live  # seconds an HTTP worker counts as live after it was last seen

    def collect(self):
        up = GaugeMetricFamily("gateway_broker_up", "1 if the broker answered this scrape")
        depth = GaugeMetricFamily("gateway_queue_depth", "Messages waiting in the queue", labels=["queue"])
        age = GaugeMetricFamily("gateway_queue_oldest_message_age_seconds",
                                "Age of the oldest waiting message published by the gateway (0 when empty)",
                                labels=["queue"])
        workers = GaugeMetricFamily("gateway_queue_workers",
                                    "Live workers consuming the queue (a dead one counts until its alive key lapses)",
                                    labels=["queue"])
        try:
            for queue in queue_stats(self.broker, self.queues):
                depth.add_metric([queue.name], queue.depth)
                age.add_metric([queue.name], queue.oldest_age or 0.0)
            for name, count in queue_workers(self.broker, self.queues, self.http_live).items():
                workers.add_metric([name], count)
            up.add_metric([], 1)
        except RedisError:
            up.add_metric([], 0)
        yield from (up, depth, age, workers)
        yield from self._outcomes()

    def _outcomes(self):
        dead = GaugeMetricFamily("gateway_dead_letters", "Jobs set aside in the dead-letter list, waiting for an operator")
        try:
            with self.results.pipeline(transaction=False) as pipe:
                counts, timed, dead_letters = pipe.hgetall(stats.TOTAL_KEY).hgetall(timings.KEY).hlen(DEADLETTERS).execute()
            dead.add_metric([], dead_letters)
        except RedisError:
            counts, timed = {}, {}
        yield from self._counts(counts)
        yield from self._timings(timed)
        yield dead

    def _counts(self, counts):
        submitted = CounterMetricFamily("gateway_tasks_submitted", "Tasks accepted and queued, by job type",
                                        labels=["type"])
        outcomes = CounterMetricFamily("gateway_task_outcomes", "Finished tasks by job type, status and error code",
                                       labels=["type", "status", "code"])
        merged: dict[tuple[str, str, str], int] = {}
        for field, value in counts.items():
            kind, job_type, reason = stats.parse(field)
            if kind == stats.SUBMITTED:
                submitted.add_metric([job_type], int(value))
            elif kind in (stats.DONE, stats.ERROR):
                key = (job_type, kind, str(int(code_for_reason(reason))) if kind == stats.ERROR else "0")
                merged[key] = merged.get(key, 0) + int(value)
        for labels, value in sorted(merged.items()):
            outcomes.add_metric(list(labels), value)
        yield submitted
        yield outcomes

    @staticmethod
    def _timings(fields):
        histograms = timings.read(fields)
        for kind, name, help_text in (
                (timings.RUNTIME, "gateway_task_runtime_seconds",
                 "Run time of the attempt that ended each finished job, by job type"),
                (timings.WAIT, "gateway_task_queue_wait_seconds",
                 "Time each finished job's final attempt waited in its queue before a worker started it, by job type")):
            family = HistogramMetricFamily(name, help_text, labels=["type"])
            for job_type, histogram in histograms[kind].items():
                family.add_metric([job_type], histogram.buckets, histogram.sum)
            yield family
