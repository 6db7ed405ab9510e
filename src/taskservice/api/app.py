"""The ASGI application: the RPC services beside health, metrics and the dashboard's route.

Each service answers Connect, gRPC and gRPC-Web on the same path (connect-python tells them apart by
content type); gRPC-Web text is translated to binary in front (api/grpc_web_text.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from connectrpc.interceptor import Interceptor
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp

from taskservice import dashboard, tracing
from taskservice.api import codecs
from taskservice.api.access import AccessControl
from taskservice.api.auth_service import AuthService
from taskservice.api.compression import BoundedGzip
from taskservice.api.deadline import CallDeadline, DeadlineGuard
from taskservice.api.disconnect import DisconnectWatch
from taskservice.api.errors import ErrorCodes
from taskservice.api.grpc_web_text import GrpcWebText
from taskservice.api.guard import Limits, RequestGuard
from taskservice.api.headers import SecurityHeaders
from taskservice.api.health import HealthService, Readiness, healthz, readyz_endpoint
from taskservice.api.ids import NarrowIdGuard
from taskservice.api.lengths import ContentLength
from taskservice.api.lifespan import Lifespan
from taskservice.api.metrics import Metrics
from taskservice.api.reflection import reflections
from taskservice.api.service import TaskService
from taskservice.api.traces import RpcTraces
from taskservice.auth.cache import CredentialCache
from taskservice.auth.oidc import OIDCLogin
from taskservice.auth.token_login import TokenLogin
from taskservice.config import Settings
from taskservice.gen.cloud.v1 import auth_pb2, task_pb2
from taskservice.gen.cloud.v1.auth_connect import AuthServiceASGIApplication
from taskservice.gen.cloud.v1.task_connect import TaskManagementServiceASGIApplication
from taskservice.gen.grpc.health.v1 import health_pb2
from taskservice.gen.grpc.health.v1.health_connect import HealthASGIApplication
from taskservice.gen.grpc.reflection.v1.reflection_connect import (
    ServerReflectionASGIApplication as ReflectionV1,
)
from taskservice.gen.grpc.reflection.v1alpha.reflection_connect import (
    ServerReflectionASGIApplication as ReflectionV1Alpha,
)
from taskservice.plugins import Registry
from taskservice.plugins.simulated import simulate_original_plugins
from taskservice.rules.tasks import PayloadLimits
from taskservice.store import RetentionPolicy

log = structlog.get_logger(__name__)

# Headers a browser client of the Connect protocol sends and reads.
CONNECT_EXPOSED_HEADERS = [
    "Connect-Protocol-Version", "Connect-Timeout-Ms", "Content-Encoding", "Connect-Content-Encoding",
    "Connect-Accept-Encoding", "Grpc-Status", "Grpc-Message", "Grpc-Status-Details-Bin",
]  # fmt: skip


def _listed(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def create_app(
    settings: Settings, registry: Registry | None = None, *, auth_required: bool = False
) -> Starlette:
    """The whole server; it connects, migrates and starts its helpers when the ASGI lifespan starts."""
    codecs.install()
    tracing.setup(settings, "taskservice-server")  # off unless configured (config.py: OTEL_*)
    registry = registry or Registry()
    simulate_original_plugins(registry, settings)
    payload_limits = PayloadLimits(settings.max_payload_bytes, settings.max_parameters)
    service = TaskService(registry, settings.lease_seconds, payload_limits, settings.max_result_bytes)
    auth_service = AuthService()
    # /readyz is public: its ?verbose figures are shown where /metrics' are (auth off, or METRICS_PUBLIC).
    readiness = Readiness(detail_public=not auth_required or settings.metrics_public)
    metrics = Metrics(settings.lease_seconds)
    credential_cache = CredentialCache(settings.auth_cache_seconds)
    lifespan = Lifespan(settings, registry, service, auth_service, readiness, credential_cache, auth_required)

    # People log in to the dashboard through the OIDC provider, or else with an API token.
    login: OIDCLogin | TokenLogin | None = None
    if auth_required:
        login = (OIDCLogin if settings.oidc_issuer else TokenLogin)(settings, lambda: lifespan.credentials)
    stopping = asyncio.Event()  # set when the server starts to stop: reflection streams end
    routes = _routes(settings, service, auth_service, readiness, metrics, login, stopping)
    access = Middleware(
        AccessControl, credentials=lambda: lifespan.credentials, required=auth_required,
        metrics_public=settings.metrics_public, login_path="/auth/login" if login else None,
        cache=credential_cache,
    )  # fmt: skip
    middleware = _middleware(settings, access)
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)

    def end_streams() -> None:  # called by the server when it starts to stop
        service.end_streams()
        stopping.set()

    app.state.end_streams = end_streams
    return app


def _middleware(settings: Settings, access: Middleware) -> list[Middleware]:
    """Outermost first: a Content-Length on every answer sent whole; headers on every answer; the Host
    check and the limits before anything reads the request; CORS answers preflights (which carry no
    credentials) before the access check."""
    middleware = [
        Middleware(ContentLength),
        Middleware(SecurityHeaders, tls=settings.tls_cert_file is not None),
    ]
    hosts = _listed(settings.allowed_hosts)
    if hosts:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=hosts))
    return [
        *middleware,
        Middleware(GrpcWebText),  # in front of the limits, which then count the decoded bytes
        Middleware(RequestGuard, limits=Limits(settings.max_request_bytes, settings.body_read_timeout)),
        Middleware(
            CORSMiddleware,
            allow_origins=_listed(settings.cors_origins),
            allow_methods=["POST", "GET", "OPTIONS"],
            allow_headers=["*"],
            expose_headers=CONNECT_EXPOSED_HEADERS,
            max_age=7200,
        ),
        Middleware(CallDeadline, seconds=settings.db_command_timeout),  # the credentials' check counts
        access,
    ]


def connect_services(
    service: TaskService, auth_service: AuthService, metrics: Metrics, rpc_limits: dict[str, Any]
) -> dict[str, ASGIApp]:
    """Our Connect services by the path they are mounted at, each with its interceptors: outermost
    first, the error codes innermost, so the metrics, the deadline and the id guard see the answer a
    caller gets (a database timeout is `unavailable`, an id too wide `out_of_range`). The RPCs' spans
    are outermost, and only while tracing is on."""
    traces: list[Interceptor] = [RpcTraces()] if tracing.on() else []
    task_interceptors: list[Interceptor] = [*traces, metrics, DeadlineGuard(), NarrowIdGuard(), ErrorCodes()]
    auth_interceptors: list[Interceptor] = [*traces, metrics, DeadlineGuard(), ErrorCodes()]
    return {
        "/cloud.v1.TaskManagementService": DisconnectWatch(
            TaskManagementServiceASGIApplication(service, interceptors=task_interceptors, **rpc_limits)
        ),
        "/cloud.v1.AuthService": AuthServiceASGIApplication(
            auth_service, interceptors=auth_interceptors, **rpc_limits
        ),
    }


def _routes(
    settings: Settings,
    service: TaskService,
    auth_service: AuthService,
    readiness: Readiness,
    metrics: Metrics,
    login: OIDCLogin | TokenLogin | None,
    stopping: asyncio.Event,
) -> list[BaseRoute]:
    # Bounded inflating for every service; messages no larger than an inflated body may be.
    rpc_limits: dict[str, Any] = {
        "read_max_bytes": settings.max_decompressed_bytes,
        "compressions": [BoundedGzip(settings.max_decompressed_bytes)],
    }
    kept = RetentionPolicy(
        settings.retention_succeeded, settings.retention_failed, settings.retention_cancelled
    )
    services = connect_services(service, auth_service, metrics, rpc_limits)
    routes: list[BaseRoute] = [
        *dashboard.routes(kept.describe(), settings.trace_ui_url),
        *(login.routes() if login else []),
        Route("/healthz", healthz),
        Route("/readyz", readyz_endpoint(readiness)),
        Route("/metrics", metrics.endpoint(lambda: readiness.store, service.agent_sessions)),
        *(Mount(path, app=rpc) for path, rpc in services.items()),
        Mount("/grpc.health.v1.Health", app=HealthASGIApplication(HealthService(readiness), **rpc_limits)),
    ]
    served = [
        task_pb2.DESCRIPTOR.services_by_name["TaskManagementService"],
        auth_pb2.DESCRIPTOR.services_by_name["AuthService"],
        health_pb2.DESCRIPTOR.services_by_name["Health"],
    ]
    v1, v1alpha = reflections(served, stopping)
    routes += [
        Mount("/grpc.reflection.v1.ServerReflection", app=ReflectionV1(v1, **rpc_limits)),
        Mount("/grpc.reflection.v1alpha.ServerReflection", app=ReflectionV1Alpha(v1alpha, **rpc_limits)),
    ]
    return routes
