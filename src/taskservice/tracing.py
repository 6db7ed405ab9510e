"""Traces (docs/observability.md): OpenTelemetry spans for RPCs, enqueues, dispatches, attempts and
plugin calls, on only when configured (Settings.tracing_enabled) and `taskservice[otel]` is installed.

Nothing here imports opentelemetry until `setup` turns tracing on: with tracing off, `span` is one
None check returning a shared null context, and no module of opentelemetry is loaded by us. A task
keeps the W3C `traceparent` of whoever created it (tasks.trace_parent, migration 0080); each of its
attempts starts a span under it, so retries, scheduled runs and spawned children continue one trace.

`current_traceparent` also serves processes that are not ours (a client, an application calling
`taskservice.enqueue`): it reads the caller's own OpenTelemetry context, and only if the caller has
loaded opentelemetry's API already (no span can be current otherwise).
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

import structlog

from taskservice.config import ConfigError, Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

Kind = Literal["internal", "server", "client", "producer", "consumer"]
Attributes = Mapping[str, str | int | float | bool]

TRACER_NAME = "taskservice"
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")

_tracer: Tracer | None = None
_provider: TracerProvider | None = None
_OFF: contextlib.nullcontext[None] = contextlib.nullcontext()


class TracingUnavailable(ConfigError):
    """Tracing is configured, but `taskservice[otel]` is not installed (a command says so in one line)."""


def require(settings: Settings) -> None:
    """TracingUnavailable when the settings turn tracing on and `taskservice[otel]` is missing."""
    if settings.tracing_enabled:
        from importlib.util import find_spec

        if find_spec("opentelemetry") is None or find_spec("opentelemetry.sdk") is None:
            raise TracingUnavailable(_MISSING)


_MISSING = (
    "tracing is configured (OTEL_*) but OpenTelemetry is not installed: pip install 'taskservice[otel]'"
)


def setup(settings: Settings, service_name: str) -> bool:
    """Turn tracing on for this process when the settings say so (once; later calls change nothing):
    a tracer provider whose spans the OTLP/HTTP exporter (or the console) sends in batches. Whether
    tracing is on. `service_name` stands when OTEL_SERVICE_NAME is not set."""
    global _tracer, _provider
    if _tracer is not None or not settings.tracing_enabled:
        return _tracer is not None
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
    except ImportError as error:
        raise TracingUnavailable(_MISSING) from error
    exporter: SpanExporter
    if settings.otel_traces_exporter == "console":
        exporter = ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()  # its endpoint, headers and timeout: the SDK's OTEL_* variables
    # Resource.create reads OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME (which wins over ours).
    resource = Resource.create({SERVICE_NAME: service_name})
    if settings.otel_service_name:
        resource = resource.merge(Resource({SERVICE_NAME: settings.otel_service_name}))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))  # OTEL_BSP_* tune it
    # The global one too, for the plugins' own spans (the first one set stays: OpenTelemetry's rule).
    trace.set_tracer_provider(provider)
    _provider = provider
    _tracer = provider.get_tracer(TRACER_NAME)
    return True


def shutdown() -> None:
    """Send the spans not sent yet and stop (the process is ending)."""
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None


def on() -> bool:
    return _tracer is not None


def span(
    name: str,
    *,
    parent: str | None = None,
    root: bool = False,
    kind: Kind = "internal",
    attributes: Attributes | None = None,
) -> contextlib.AbstractContextManager[Span | None]:
    """A span made current for the block, or None when tracing is off (then this costs a None check).

    Its parent: the W3C traceparent `parent` when given, else a new trace when `root`, else the
    current span. While it is open, structlog's context carries its trace_id and span_id."""
    if _tracer is None:
        return _OFF
    return _span(_tracer, name, parent, root, kind, attributes)


@contextlib.contextmanager
def _span(
    tracer: Tracer, name: str, parent: str | None, root: bool, kind: Kind, attributes: Attributes | None
) -> Iterator[Span]:
    from opentelemetry.context import Context
    from opentelemetry.trace import SpanKind

    context = _context_of(parent) if parent else (Context() if root else None)
    with tracer.start_as_current_span(
        name, context=context, kind=SpanKind[kind.upper()], attributes=attributes
    ) as current:
        found = current.get_span_context()
        with structlog.contextvars.bound_contextvars(
            trace_id=format(found.trace_id, "032x"), span_id=format(found.span_id, "016x")
        ):
            yield current


def _context_of(traceparent: str) -> Any:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract({"traceparent": traceparent})


def open_span(name: str, parent: str | None, kind: Kind, attributes: Attributes) -> Span | None:
    """A span started now and not made current (a stream's, open while it lasts): the caller ends it.
    None when tracing is off."""
    if _tracer is None:
        return None
    from opentelemetry.trace import SpanKind

    context = _context_of(parent) if parent else None
    return _tracer.start_span(name, context=context, kind=SpanKind[kind.upper()], attributes=attributes)


def one_span(name: str, parent: str | None, kind: Kind, attributes: Attributes) -> str | None:
    """A span that starts and ends now (a dispatch): its traceparent, to pass on; None when off."""
    if _tracer is None:
        return None
    from opentelemetry.trace import SpanKind

    context = _context_of(parent) if parent else None
    done = _tracer.start_span(name, context=context, kind=SpanKind[kind.upper()], attributes=attributes)
    done.end()
    return traceparent_of(done)


def traceparent_of(current: Span | None) -> str | None:
    """The W3C traceparent naming `current` as the parent, None for None or an invalid span."""
    if current is None:
        return None
    found = current.get_span_context()
    if not found.is_valid:
        return None
    return f"00-{found.trace_id:032x}-{found.span_id:016x}-{int(found.trace_flags):02x}"


def current_traceparent() -> str | None:
    """The traceparent of the span current in this context (ours or the caller's own OpenTelemetry);
    None when there is none, or opentelemetry was never imported (then no span can be current)."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    return traceparent_of(trace.get_current_span())


def valid(traceparent: str | None) -> str | None:
    """`traceparent` when it is a W3C traceparent (version 00, ids not all zeros), else None."""
    if not traceparent:
        return None
    match = _TRACEPARENT.match(traceparent.strip().lower())
    if match is None or set(match[1]) == {"0"} or set(match[2]) == {"0"}:
        return None
    return match[0]


def failed(current: Span | None, description: str) -> None:
    """Mark `current` as ended in an error (a failed attempt, an RPC's error code)."""
    if current is not None:
        from opentelemetry.trace import Status, StatusCode

        current.set_status(Status(StatusCode.ERROR, description))


def caller_span(name: str, task_type: str, tasks: int = 1) -> contextlib.AbstractContextManager[str | None]:
    """In the caller's process (`taskservice.enqueue`, `enqueue_many` of `tasks`): a span of the
    caller's own OpenTelemetry under its current span, giving the traceparent to store; None when no
    span is current (or opentelemetry was never imported). Without an SDK, the caller's current span
    is the parent."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None or not trace.get_current_span().get_span_context().is_valid:
        return _OFF
    return _caller_span(trace, name, {"taskservice.task.type": task_type, "taskservice.tasks": tasks})


@contextlib.contextmanager
def _caller_span(trace: Any, name: str, attributes: Attributes) -> Iterator[str | None]:
    outer = current_traceparent()  # what stands when the caller's tracer records nothing (no SDK)
    tracer = _tracer or trace.get_tracer(TRACER_NAME)
    with tracer.start_as_current_span(name, kind=trace.SpanKind.PRODUCER, attributes=attributes) as current:
        yield traceparent_of(current) or outer
