"""Builds the app's long-lived services once, from its settings, and keeps them on the app
(gateway/services.py names them). Only the factory imports this module.

Kept per app rather than as module singletons so a test can run several apps with different
settings (a dead broker, say) in one process.
"""
from __future__ import annotations

from celery import Celery
from flask import Flask

import celeryconfig
from gateway.access import decorators
from gateway.access.authenticator import Authenticator, FailedAuthThrottle
from gateway.access.identity import VaultIdentity
from gateway.access.jwtcheck import LocalJwtCheck
from gateway.access.ratelimit import RateLimits
from gateway.health import drain
from gateway.health.clients import RATE_LIMIT_TIMEOUT, SCRAPE_TIMEOUT, client_factory
from gateway.health.metrics import BrokerCollector
from gateway.health.queues import http_live
from gateway.health.readiness import Readiness, redis_check, vault_token_check
from gateway.services import KEY, Services
from gateway.submission import capture
from gateway.submission.publishing import Dispatcher
from gateway.submission.reading import TaskReader
from gateway.workers.leasing import HttpWorkers
from jobs.catalogue import JobCatalogue
from jobs.store import TaskStore
from settings import Settings

LONG_POLLS = "gateway-long-poll"  # the Redis client name of HTTP workers' long polls (CLIENT LIST shows it)


def init_app(app: Flask, settings: Settings) -> None:
    redis_client = client_factory(settings.sentinel)  # every Redis client of the app comes from it
    celery = Celery("gateway", config_source=celeryconfig.build(settings, role="gateway", transport=capture.Transport),
                    set_as_current=False)
    store = TaskStore(redis_client(settings.result_url), ttl=settings.config["results"]["expires"])
    catalogue = JobCatalogue(settings.config["jobs"])
    broker = redis_client(settings.broker_url, settings.config["queue"]["publish_timeout"])
    identity = VaultIdentity(settings.config["vault"], settings.secrets["vault"]["token"])
    rate_limits = RateLimits(redis_client(settings.result_url, RATE_LIMIT_TIMEOUT), settings.config["limits"])
    app.extensions[decorators.KEY] = decorators.Access(
        authenticator=_authenticator(settings, identity, rate_limits), rate_limits=rate_limits,
        job_types=frozenset(settings.config["jobs"]), roles=settings.config["roles"],
        operator_roles=tuple(settings.config["ops"]["roles"]))
    drain.init_app(app, settings.config["ops"]["drain_grace"])
    app.extensions[KEY] = Services(
        settings=settings,
        catalogue=catalogue,
        store=store,
        reader=TaskReader(store, settings.config["results"]),
        dispatcher=Dispatcher.from_settings(celery, store, broker, settings),
        broker=broker,
        celery=celery,
        broker_collector=BrokerCollector(redis_client(settings.broker_url, SCRAPE_TIMEOUT),
                                         redis_client(settings.result_url, SCRAPE_TIMEOUT), catalogue.queues,
                                         http_live=http_live(settings.config["workers"])),
        readiness=Readiness([("broker", redis_check("broker", settings.broker_url, sentinel=settings.sentinel)),
                             ("result backend", redis_check("result backend", settings.result_url,
                                                                     sentinel=settings.sentinel)),
                             ("vault", vault_token_check(settings.config["vault"]["url"],
                                                         settings.secrets["vault"]["token"]))]),
        http_workers=HttpWorkers(celery, catalogue, store.redis, broker, redis_client(settings.broker_url, name=LONG_POLLS),
                                 settings.config, same_redis=settings.broker_url == settings.result_url),
    )


def _authenticator(settings: Settings, identity: VaultIdentity, rate_limits: RateLimits) -> Authenticator:
    vault = settings.config["vault"]
    jwt_check = LocalJwtCheck(identity.read, identity.jwt_mount, identity.jwt_role, ttl=vault["jwt_keys_ttl"],
                              min_refresh=vault["jwt_keys_refresh"], http_timeout=vault["timeout"])
    throttle = FailedAuthThrottle(rate_limits.window, settings.config["limits"]["failed_auth"])
    return Authenticator(identity, jwt_check, throttle, refused_ttl=vault["refused_ttl"])

