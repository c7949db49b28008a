"""The app's long-lived services, one set per app, reached from request code with `services()`.

`gateway/extensions.py` builds them once, in the factory; this module only names them, so importing
it pulls in nothing else of the gateway (no import cycles through a locator). What the route decorators
decide with (authenticator, rate limits, roles) is kept apart, under the access package's own key
(gateway/access/decorators.py `Access`), so `access` never reaches back up to this locator.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import current_app

if TYPE_CHECKING:
    from celery import Celery
    from redis import Redis

    from gateway.health.metrics import BrokerCollector
    from gateway.health.readiness import Readiness
    from gateway.submission.publishing import Dispatcher
    from gateway.submission.reading import TaskReader
    from gateway.workers.leasing import HttpWorkers
    from jobs.catalogue import JobCatalogue
    from jobs.store import TaskStore
    from settings import Settings


@dataclass(frozen=True)
class Services:
    settings: Settings
    catalogue: JobCatalogue
    store: TaskStore
    reader: TaskReader
    dispatcher: Dispatcher
    broker: Redis
    celery: Celery
    broker_collector: BrokerCollector
    readiness: Readiness
    http_workers: HttpWorkers


KEY = "gateway"


def services() -> Services:
    return current_app.extensions[KEY]
