"""Traces, for the gateway and the workers alike (docs/operations.md "Traces"): OpenTelemetry's SDK with
an OTLP/HTTP exporter, set up once per process from `tracing` in the settings, and the few helpers the
code that makes spans calls.

Off by default. Off, nothing of OpenTelemetry is imported: `span()` hands back one shared no-op context
manager and `message_headers()` an empty dict, so a request pays a function call and a flag test.

On, every process exports in batches (`schedule_delay_ms`, at most `MAX_QUEUE` spans held: past it new
spans are dropped, never memory; attributes bounded too), each export bounded by `export_timeout_ms`;
`shutdown()` flushes what is left when the process ends (a gunicorn worker: gunicorn.conf.py
`worker_exit`; a Celery pool process: tasks/jobtraces.py).

The only context carried from process to process is W3C `traceparent` (`TRACEPARENT`): no `tracestate`
and no baggage, so nothing a client puts in those ever reaches a worker, a log or an exporter. A
`traceparent` longer than `MAX_TRACEPARENT` characters, or malformed, is ignored: a new trace starts.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from settings import Settings

TRACEPARENT = "traceparent"
MAX_TRACEPARENT = 256  # version 00 is 55 characters; later versions may append fields
MAX_QUEUE = 2048  # spans a process holds for export at most
MAX_BATCH = 512
# A span's attributes: at most this many, each value cut to this many characters (a client's user agent
# is one of them).
MAX_ATTRIBUTES = 64
MAX_ATTRIBUTE_LENGTH = 512
TRACER = "job-gateway"  # the instrumentation scope of the spans made here

_NOTHING = contextlib.nullcontext()
_on = False


def enabled(settings: Settings) -> bool:
    """Whether the settings turn tracing on (`tracing.enabled`)."""
    return bool(settings.config["tracing"]["enabled"])


def active() -> bool:
    """Whether this process set tracing up (setup() ran with tracing enabled)."""
    return _on


def setup(settings: Settings, component: str, honour_client_sampling: bool = True) -> bool:
    """Install the tracer provider, its exporter and the propagator for this process, once; False (and
    nothing imported) when tracing is off. `component` ("gateway", "worker") names the service with
    `tracing.service_name`. `honour_client_sampling` False: a remote parent's sampled flag is not
    obeyed, the trace id decides (the gateway: a client must not choose what is recorded)."""
    global _on
    if not enabled(settings):
        return False
    if _on:
        return True
    from opentelemetry import propagate, trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanLimits, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    config = settings.config["tracing"]
    ratio = TraceIdRatioBased(config["sample_ratio"])
    sampler = ParentBased(ratio) if honour_client_sampling else ParentBased(
        ratio, remote_parent_sampled=ratio, remote_parent_not_sampled=ratio)
    name = config["service_name"] if component == "gateway" else f"{config['service_name']}-{component}"
    provider = TracerProvider(sampler=sampler, resource=Resource.create({"service.name": name}),
                              span_limits=SpanLimits(max_span_attributes=MAX_ATTRIBUTES,
                                                     max_span_attribute_length=MAX_ATTRIBUTE_LENGTH))
    provider.add_span_processor(BatchSpanProcessor(
        OTLPSpanExporter(endpoint=config["otlp_endpoint"], timeout=config["export_timeout_ms"] / 1000),
        max_queue_size=MAX_QUEUE, max_export_batch_size=MAX_BATCH,
        schedule_delay_millis=config["schedule_delay_ms"], export_timeout_millis=config["export_timeout_ms"]))
    trace.set_tracer_provider(provider)
    propagate.set_global_textmap(_traceparent_only())
    _on = True
    return True


def shutdown() -> None:
    """Export what is still held, within the export timeout, and stop exporting."""
    if _on:
        from opentelemetry import trace

        provider = trace.get_tracer_provider()
        if hasattr(provider, "shutdown"):
            provider.shutdown()


def span(name: str, kind: str = "INTERNAL", attributes: Mapping[str, Any] | None = None) -> Any:
    """A context manager: a span `name` under the current one while tracing is on, else nothing.
    `kind`: an OpenTelemetry SpanKind's name. Attributes never hold a payload or a credential."""
    if not _on:
        return _NOTHING
    return _span(name, kind, attributes)


@contextlib.contextmanager
def _span(name: str, kind: str, attributes: Mapping[str, Any] | None) -> Iterator[Any]:
    """An exception ends the span in error with its class only: its text may hold what a request sent."""
    from opentelemetry import trace

    with trace.get_tracer(TRACER).start_as_current_span(
            name, kind=trace.SpanKind[kind], attributes=dict(attributes or {}), record_exception=False,
            set_status_on_exception=False) as current:
        try:
            yield current
        except BaseException as exc:
            failed(current, exc)
            raise


def failed(current: Any, exc: BaseException) -> None:
    """Mark a span failed by `exc`, naming its class only."""
    from opentelemetry.trace import Status, StatusCode

    current.set_attribute("error.type", type(exc).__name__)
    current.set_status(Status(StatusCode.ERROR, type(exc).__name__))


def span_between(name: str, start: float, end: float, parent: Any, attributes: Mapping[str, Any] | None = None) -> None:
    """A span already over, from `start` to `end` (epoch seconds), under the span context `parent`: a
    time measured rather than spent in this process (the queue wait)."""
    if not _on or parent is None:
        return
    from opentelemetry import trace

    context = trace.set_span_in_context(trace.NonRecordingSpan(parent))
    done = trace.get_tracer(TRACER).start_span(name, context=context, attributes=dict(attributes or {}),
                                               start_time=int(start * 1e9))
    done.end(end_time=int(max(start, end) * 1e9))


def message_headers() -> dict[str, str]:
    """The current span's `traceparent`, for a task message's headers ({} when tracing is off)."""
    if not _on:
        return {}
    from opentelemetry import propagate

    headers: dict[str, str] = {}
    propagate.inject(headers)
    return headers


def _traceparent_only() -> Any:
    """W3C trace context, `traceparent` only and bounded; anything else a carrier holds is not read."""
    from opentelemetry.context import Context
    from opentelemetry.propagators.textmap import DefaultGetter, DefaultSetter, Getter, Setter
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    class TraceparentOnly(TraceContextTextMapPropagator):
        def extract(self, carrier: Any, context: Context | None = None,
                    getter: Getter[Any] = DefaultGetter()) -> Context:
            try:
                values = getter.get(carrier, TRACEPARENT)
                value = values[0] if values and len(values) == 1 else None
                if not isinstance(value, str) or len(value) > MAX_TRACEPARENT:
                    return context if context is not None else Context()
                return super().extract({TRACEPARENT: value}, context)
            except Exception:  # noqa: BLE001 - untrusted input: whatever it is, a new trace starts
                return context if context is not None else Context()

        def inject(self, carrier: Any, context: Context | None = None, setter: Setter[Any] = DefaultSetter()) -> None:
            found: dict[str, str] = {}
            super().inject(found, context)
            if TRACEPARENT in found:
                setter.set(carrier, TRACEPARENT, found[TRACEPARENT])

        @property
        def fields(self) -> set[str]:
            return {TRACEPARENT}

    return TraceparentOnly()
