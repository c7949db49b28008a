"""The app's long-lived services, built once per app from its settings and kept on the app.

Kept per app rather than as module singletons so a test can run several apps with different
settings (a dead broker, say) in one process.
"""
from __future__ import annotations

from dataclasses import dataclass

from celery import Celery
from flask import Flask, current_app
from redis import Redis

import celeryconfig
from gateway.authenticator import Authenticator, FailedAuthThrottle
from gateway.dispatch import Dispatcher
from gateway.identity import VaultIdentity
from gateway.jwtcheck import LocalJwtCheck
from gateway.jobs import JobCatalogue
from gateway.metrics import BrokerCollector
from gateway.ratelimit import RateLimits
from gateway.status import code_for_reason
from gateway.store import TaskStore
from settings import Settings

REDIS_TIMEOUT = 1.0
SCRAPE_TIMEOUT = 0.5  # /metrics and the ops API read the broker with this; they must never hang


@dataclass(frozen=True)
class Services:
    settings: Settings
    catalogue: JobCatalogue
    store: TaskStore
    dispatcher: Dispatcher
    broker: Redis
    identity: VaultIdentity
    authenticator: Authenticator
    celery: Celery
    broker_collector: BrokerCollector
    rate_limits: RateLimits


def init_app(app: Flask, settings: Settings) -> None:
    celery = Celery("gateway", config_source=celeryconfig.build(settings, role="gateway"), set_as_current=False)
    store = TaskStore(_redis(settings.result_url), ttl=settings.config["results"]["expires"])
    queues = sorted({job["queue"] for job in settings.config["jobs"].values()})
    broker = _redis(settings.broker_url, settings.config["queue"]["publish_timeout"])
    identity = VaultIdentity(settings.config["vault"], settings.secrets["vault"]["token"])
    rate_limits = RateLimits(settings.result_url, settings.config["limits"])
    app.extensions["gateway"] = Services(
        settings=settings,
        catalogue=JobCatalogue(settings.config["jobs"]),
        store=store,
        dispatcher=Dispatcher(celery, store, broker, same_redis=settings.broker_url == settings.result_url),
        broker=broker,
        identity=identity,
        authenticator=_authenticator(settings, identity, rate_limits),
        celery=celery,
        broker_collector=BrokerCollector(_redis(settings.broker_url, SCRAPE_TIMEOUT),
                                         _redis(settings.result_url, SCRAPE_TIMEOUT), queues, code_for_reason),
        rate_limits=rate_limits,
    )


def _authenticator(settings: Settings, identity: VaultIdentity, rate_limits: RateLimits) -> Authenticator:
    vault = settings.config["vault"]
    jwt_check = LocalJwtCheck(identity.read, identity.jwt_mount, identity.jwt_role, ttl=vault["jwt_keys_ttl"],
                              min_refresh=vault["jwt_keys_refresh"], http_timeout=vault["timeout"])
    throttle = FailedAuthThrottle(rate_limits.limiter, settings.config["limits"]["failed_auth"])
    return Authenticator(identity, jwt_check, throttle, refused_ttl=vault["refused_ttl"])


def services() -> Services:
    return current_app.extensions["gateway"]


def _redis(url: str, timeout: float = REDIS_TIMEOUT) -> Redis:
    return Redis.from_url(url, decode_responses=True, socket_timeout=timeout,
                          socket_connect_timeout=timeout, health_check_interval=30)
