"""A trace for each request, when `tracing.enabled` (docs/operations.md "Traces"): OpenTelemetry's Flask
instrumentation makes the request's server span, under the client's W3C `traceparent` when it sent a
well-formed one (settings/tracing.py: bounded, `tracestate` and baggage never read), else at the root
of a new trace. The routes add their own spans under it: auth (gateway/access/decorators.py), validation
(gateway/http/contract.py) and publish (gateway/submission/publishing.py), whose context the task
message carries to the worker.

The client's sampled flag does not decide: the trace id and `tracing.sample_ratio` do, so a client
cannot have every one of its requests recorded.

What a span records: the method, route, status, scheme, host, path, peer address and user agent, as the
instrumentation does, but no query string (it may carry ids of other clients' tasks: the request log
line leaves it out too, gateway/http/requestlog.py). Never a header's value: the instrumentation's switches to
capture request or response headers (OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_*) would record the
Authorization header, so the gateway removes them from its environment and says so. Probes, metrics
and the API documents make no traces (`EXCLUDED`).
"""
from __future__ import annotations

import os
from typing import Any

from flask import Flask
from loguru import logger

from settings import Settings, tracing

EXCLUDED = r"/(ping|health|livez|readyz|metrics|openapi\.json)$,/docs(/|$)"
CAPTURE_SWITCHES = ("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST",
                    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE")


def init_app(app: Flask, settings: Settings) -> None:
    """Nothing at all when tracing is off: OpenTelemetry is not even imported."""
    if not tracing.setup(settings, "gateway", honour_client_sampling=False):
        return
    for switch in CAPTURE_SWITCHES:
        if os.environ.pop(switch, None):
            logger.warning("{} ignored: the gateway records no header in its traces", switch)
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    FlaskInstrumentor.instrument_app(app, excluded_urls=EXCLUDED, enable_commenter=False, response_hook=_without_query)


# The instrumentation's attributes that hold the query string (old and new HTTP semantic conventions).
_WITH_QUERY = ("http.target", "http.url", "url.full", "url.query")


def _without_query(span: Any, status: str, headers: list) -> None:
    """Set once the response starts, after the instrumentation wrote its own attributes."""
    if span is None or not span.is_recording():
        return
    recorded = getattr(span, "attributes", None) or {}
    for key in _WITH_QUERY:
        value = recorded.get(key)
        if isinstance(value, str):
            span.set_attribute(key, "" if key == "url.query" else value.split("?", 1)[0])
