"""An OTLP/HTTP receiver of the benchmark's own, for the tracing scenario: the worker processes export
their spans to it over HTTP, as they would to a collector, and it counts what arrives.

It runs in threads of the benchmark's process (not its event loop, which the scenario blocks while it
stops worker processes, the moment they send their last spans). It answers 200 with an empty
ExportTraceServiceResponse to every POST to /v1/traces, and counts the requests, their bytes and the
spans in them (parsed with opentelemetry-proto, which comes with the OTLP exporter: where it is
missing, the scenario does not trace at all). Any other request gets 404 and is not counted.
"""

from __future__ import annotations

import gzip
import threading
from dataclasses import astuple, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import import_module
from types import TracebackType
from typing import Any

TRACES_PATH = "/v1/traces"
_REQUEST = "opentelemetry.proto.collector.trace.v1.trace_service_pb2"


@dataclass(frozen=True)
class Received:
    """What the sink has received so far (subtract two to get what arrived in between)."""

    requests: int = 0
    bytes: int = 0  # of the request bodies, as sent (compressed if the exporter compressed them)
    spans: int = 0
    bad: int = 0  # POSTs to /v1/traces whose body was not an ExportTraceServiceRequest

    def __add__(self, other: Received) -> Received:
        return Received(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))

    def __sub__(self, other: Received) -> Received:
        return Received(*(a - b for a, b in zip(astuple(self), astuple(other), strict=True)))


class SpanSink:
    """`with SpanSink() as sink:` listening on 127.0.0.1 at `sink.endpoint` (an OTLP base URL)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received = Received()
        self.services: set[str] = set()  # the service.name of the resources the spans came from
        request_type: Any = import_module(_REQUEST).ExportTraceServiceRequest
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: the exporter's session reuses its connection

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path != TRACES_PATH:
                    self._answer(404)
                    return
                sink._count(len(body), body, self.headers.get("Content-Encoding", ""), request_type)
                self._answer(200)

            def _answer(self, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # one line per request on the bench's output: no

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-sink", daemon=True)

    @property
    def endpoint(self) -> str:
        """The base URL for OTEL_EXPORTER_OTLP_ENDPOINT (the exporter adds /v1/traces)."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def received(self) -> Received:
        with self._lock:
            return self._received

    def _count(self, size: int, body: bytes, encoding: str, request_type: Any) -> None:
        spans, bad = 0, 0
        services: set[str] = set()
        try:
            request = request_type.FromString(gzip.decompress(body) if encoding == "gzip" else body)
            for resource in request.resource_spans:
                services.update(
                    a.value.string_value for a in resource.resource.attributes if a.key == "service.name"
                )
                spans += sum(len(scope.spans) for scope in resource.scope_spans)
        except Exception:  # a body that is no ExportTraceServiceRequest: counted as such
            bad = 1
        with self._lock:
            r = self._received
            self._received = Received(r.requests + 1, r.bytes + size, r.spans + spans, r.bad + bad)
            self.services |= services

    def __enter__(self) -> SpanSink:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
