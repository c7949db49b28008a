"""Builds the app's long-lived services once, from its settings, and keeps them on the app
(gateway/services.py names them). Only the factory imports this module.

Kept per app rather than as module singletons so a test can run several apps with different
settings (a dead broker, say) in one process.
"""
from __future__ import annotations

from celery import Celery
from flask import Flask
from redis import Redis

import celeryconfig
from gateway.authenticator import Authenticator, FailedAuthThrottle
from gateway.breaker import GuardedConnection
from gateway.identity import VaultIdentity
from gateway.jwtcheck import LocalJwtCheck
from gateway.metrics import BrokerCollector
from gateway.publishing import Dispatcher
from gateway.ratelimit import RateLimits
from gateway.readiness import Readiness, redis_check, vault_token_check
from gateway.services import KEY, Services
from jobs.catalogue import JobCatalogue
from jobs.store import TaskStore
from settings import Settings

REDIS_TIMEOUT = 1.0
SCRAPE_TIMEOUT = 0.5  # /metrics and the ops API read the broker with this; they must never hang


def init_app(app: Flask, settings: Settings) -> None:
    celery = Celery("gateway", config_source=celeryconfig.build(settings, role="gateway"), set_as_current=False)
    store = TaskStore(_redis(settings.result_url), ttl=settings.config["results"]["expires"])
    catalogue = JobCatalogue(settings.config["jobs"])
    broker = _redis(settings.broker_url, settings.config["queue"]["publish_timeout"])
    identity = VaultIdentity(settings.config["vault"], settings.secrets["vault"]["token"])
    rate_limits = RateLimits(settings.result_url, settings.config["limits"])
    app.extensions[KEY] = Services(
        settings=settings,
        catalogue=catalogue,
        store=store,
        dispatcher=Dispatcher(celery, store, broker, same_redis=settings.broker_url == settings.result_url),
        broker=broker,
        identity=identity,
        authenticator=_authenticator(settings, identity, rate_limits),
        celery=celery,
        broker_collector=BrokerCollector(_redis(settings.broker_url, SCRAPE_TIMEOUT),
                                         _redis(settings.result_url, SCRAPE_TIMEOUT), catalogue.queues),
        rate_limits=rate_limits,
        readiness=Readiness([("broker", redis_check("broker", settings.broker_url)),
                             ("result backend", redis_check("result backend", settings.result_url)),
                             ("vault", vault_token_check(settings.config["vault"]["url"],
                                                         settings.secrets["vault"]["token"]))]),
    )


def _authenticator(settings: Settings, identity: VaultIdentity, rate_limits: RateLimits) -> Authenticator:
    vault = settings.config["vault"]
    jwt_check = LocalJwtCheck(identity.read, identity.jwt_mount, identity.jwt_role, ttl=vault["jwt_keys_ttl"],
                              min_refresh=vault["jwt_keys_refresh"], http_timeout=vault["timeout"])
    throttle = FailedAuthThrottle(rate_limits.limiter, settings.config["limits"]["failed_auth"])
    return Authenticator(identity, jwt_check, throttle, refused_ttl=vault["refused_ttl"])


def _redis(url: str, timeout: float = REDIS_TIMEOUT) -> Redis:
    """Every gateway client of Redis: bounded, never retried, behind its server's breaker."""
    return Redis.from_url(url, decode_responses=True, socket_timeout=timeout, socket_connect_timeout=timeout,
                          health_check_interval=30, connection_class=GuardedConnection)
