"""A real OTLP/HTTP trace receiver (tests/test_traces.py): what an OpenTelemetry collector, Jaeger or
Tempo listens for on :4318/v1/traces. It decodes each ExportTraceServiceRequest (protobuf, as the
exporter sends it, gzip or not) with opentelemetry-proto and keeps the spans, flattened for asserts."""
from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_id: str  # "" at the root of a trace
    trace_state: str
    start: int  # ns since the epoch
    end: int
    attributes: dict[str, Any]
    status: str


def _value(value: Any) -> Any:
    field = value.WhichOneof("value")
    if field == "array_value":
        return [_value(item) for item in value.array_value.values]
    return getattr(value, field) if field else None


class OtlpReceiver:
    """POST /v1/traces on a free port; `spans` in arrival order."""

    def __init__(self, port: int = 0, keep: bool = True) -> None:
        self.keep = keep  # False: a sink that only counts (the bench's, docs/performance.md)
        self.spans: list[Span] = []
        self.requests = 0
        self.spans_seen = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces" or self.headers.get("Content-Type") != "application/x-protobuf":
                    self.send_response(404)
                    self.end_headers()
                    return
                receiver.add(ExportTraceServiceRequest.FromString(body))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        self._lock = threading.Lock()
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def add(self, request: ExportTraceServiceRequest) -> None:
        if not self.keep:
            with self._lock:
                self.requests += 1
                self.spans_seen += sum(len(scope.spans) for spans in request.resource_spans for scope in spans.scope_spans)
            return
        found = []
        for resource_spans in request.resource_spans:
            resource = {item.key: _value(item.value) for item in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    found.append(Span(
                        service=str(resource.get("service.name")), name=span.name, kind=KINDS[span.kind],
                        trace_id=span.trace_id.hex(), span_id=span.span_id.hex(), parent_id=span.parent_span_id.hex(),
                        trace_state=span.trace_state, start=span.start_time_unix_nano, end=span.end_time_unix_nano,
                        attributes={item.key: _value(item.value) for item in span.attributes},
                        status=STATUS[span.status.code]))
        with self._lock:
            self.requests += 1
            self.spans.extend(found)

    def trace(self, trace_id: str) -> list[Span]:
        with self._lock:
            return [span for span in self.spans if span.trace_id == trace_id]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


if __name__ == "__main__":  # a sink for the bench: python -m tests.support.otlp PORT
    import sys
    import time

    sink = OtlpReceiver(int(sys.argv[1]), keep=False)
    print(f"OTLP sink on {sink.endpoint}", flush=True)
    while True:
        time.sleep(10)
        print(f"{sink.requests} exports, {sink.spans_seen} spans", flush=True)
