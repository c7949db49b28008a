"""The app's long-lived services, one set per app, reached from request code with `services()`.

`gateway/extensions.py` builds them once, in the factory; this module only names them, so importing
it pulls in nothing else of the gateway (no import cycles through a locator).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import current_app

if TYPE_CHECKING:
    from celery import Celery
    from redis import Redis

    from gateway.authenticator import Authenticator
    from gateway.identity import VaultIdentity
    from gateway.metrics import BrokerCollector
    from gateway.publishing import Dispatcher
    from gateway.ratelimit import RateLimits
    from gateway.readiness import Readiness
    from jobs.catalogue import JobCatalogue
    from jobs.store import TaskStore
    from settings import Settings


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
    readiness: Readiness


KEY = "gateway"


def services() -> Services:
    return current_app.extensions[KEY]
