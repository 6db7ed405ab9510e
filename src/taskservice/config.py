"""Every setting of taskservice, read once from the environment and `.env`, typed and validated."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import quote

import platformdirs
from pydantic import BeforeValidator, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LogLevel = Literal["debug", "info", "warning", "error", "critical"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_duration(value: object) -> float:
    """Seconds of a duration: a number of seconds, or `30s`, `15m`, `12h`, `7d`, `2w`; 0 is 0."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value).lower())
        if match is None:
            raise ValueError("must be a duration such as 7d, 12h, 30m, 90s or 0 (forever)")
        seconds = float(match[1]) * _SECONDS[match[2]]
    if seconds < 0:
        raise ValueError("must not be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


def _data_dir() -> Path:
    return platformdirs.user_data_path("taskservice")


class ConfigError(Exception):
    """A setting has a wrong value; the message is one line naming the variable."""


class Settings(BaseSettings):
    """The configuration; environment variables have the upper-case field names."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    # Database. DATABASE_URL wins; else the original's DB_* variables when DB_HOST is set;
    # else an embedded PostgreSQL in EMBEDDED_DATA_DIR.
    database_url: str = ""
    db_username: str = "postgres"
    db_password: str = ""
    db_host: str = ""
    db_port: int = Field(5432, ge=1, le=65535)
    db_database: str = "postgres"
    db_ssl_mode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = "prefer"
    db_pool_max_conns: int = Field(10, ge=1, le=1000)
    embedded_data_dir: Path = Field(default_factory=lambda: _data_dir() / "postgres")

    # Control plane.
    server_host: str = "127.0.0.1"
    server_port: int = Field(8080, ge=1, le=65535)
    events_poll_interval: float = Field(0.5, gt=0, description="seconds between looks for new events")

    # Data plane.
    # Tasks one worker process runs at once: `task-cli serve`, and the worker inside `task-cli server`
    # (0: none there). Not a number of processes (`task-cli up --workers` is). WORKER_COUNT is the
    # seed's name for it and keeps working; read `worker_concurrency`, which holds whichever was set.
    # Two fields, not an AliasChoices: an alias takes the first name found, and could not see both
    # names set to refuse them disagreeing.
    worker_concurrency: int = Field(10, ge=0, le=10_000)
    worker_count: int | None = Field(None, ge=0, le=10_000, description="the seed's WORKER_CONCURRENCY")
    task_time_out: float = Field(60.0, gt=0, description="seconds one attempt may run")
    max_retries: int = Field(3, ge=0, le=10)
    retry_backoff_base: float = Field(1.0, ge=0, description="seconds before the first retry")
    retry_backoff_max: float = Field(300.0, ge=0, description="cap on the delay between retries")
    lease_seconds: float = Field(30.0, gt=0, description="how long a claim lives without a heartbeat")
    poll_interval: float = Field(1.0, gt=0, description="seconds between polls when no NOTIFY arrives")
    shutdown_grace: float = Field(30.0, ge=0, description="seconds running tasks get to finish on stop")
    # Assignments an agent (`task-cli serve --address`) keeps waiting beyond its concurrency, so that a
    # slot that frees starts its next task without a round trip to the server (api/dispatch.py). Unset:
    # as many as its concurrency (at most 1000); 0: none (long tasks on many agents: nothing waits
    # behind a long task while another agent is idle).
    agent_prefetch: int | None = Field(None, ge=0, le=1000)
    # Python modules a worker (`task-cli serve`) imports at start, comma- or space-separated: the
    # modules that declare task types with @task (e.g. "myapp.tasks, myapp.reports").
    task_modules: str = Field("", pattern=r"^[\w.,\s]*$")
    # A YAML (or JSON) file of container task types, type name -> {image, entrypoint, args, env,
    # resources, service_account, parameters, ...} (plugins/container_types.py): the types the
    # Kubernetes agent runs as Jobs, besides those declared in code. Empty: none.
    task_container_types: Annotated[Path | None, BeforeValidator(lambda v: v or None)] = None

    # Kubernetes (docs/kubernetes.md): the agent (`task-cli serve --kubernetes`) and the controller
    # (`task-cli controller`). The namespace of their Task resources and Jobs; empty: the Pod's own
    # (its service account's), else "default".
    task_kubernetes_namespace: str = Field(
        "", max_length=63, pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$",
        description="a Kubernetes namespace: lower-case letters, digits and -",
    )  # fmt: skip
    task_controller_retention_seconds: Duration = Field(
        3600.0, description="how long the controller keeps a finished Task resource and its Job"
    )
    task_controller_lease_seconds: int = Field(
        15, ge=3, le=3600, description="the controller's leader election Lease duration, whole seconds"
    )

    # Storage: what is kept, and for how long (store/retention.py, worker/retention.py).
    max_lost_leases: int = Field(
        3, ge=1, le=100, description="leases a task may lose (its worker died) before it fails"
    )
    retention_succeeded: Duration = Field(
        7 * 86_400.0, description="how long a SUCCEEDED task (history, attempts) is kept; 0: forever"
    )
    retention_failed: Duration = Field(30 * 86_400.0, description="the same for FAILED tasks")
    retention_cancelled: Duration = Field(7 * 86_400.0, description="the same for CANCELLED tasks")
    trace_ui_url: str = Field(
        "",
        max_length=2000,
        pattern=r"^(https?://\S+)?$",
        description="a trace viewer's address for one trace, {trace_id} standing for its id (e.g."
        " http://jaeger:16686/trace/{trace_id}): the dashboard links a task's trace there; empty: no link",
    )
    retention_interval: Duration = Field(60.0, gt=0, description="how often old tasks are looked for")
    retention_batch: int = Field(1000, ge=1, le=100_000, description="tasks deleted per transaction")
    # Vacuum of our hot tables when the server's autovacuum does not (worker/maintenance.py): every
    # server and worker looks every MAINTENANCE_INTERVAL (0: never); one at a time vacuums.
    maintenance_interval: Duration = Field(
        60.0, ge=0, description="how often our tables' dead tuples are looked at; 0: never vacuum them"
    )
    maintenance_margin: float = Field(
        2.0, ge=1, le=1000, description="vacuum a table past this many times autovacuum's threshold for it"
    )
    maintenance_vacuum_timeout: Duration = Field(
        600.0, gt=0, description="statement_timeout of one VACUUM of the maintenance job"
    )
    maintenance_cost_delay: float = Field(
        2.0, ge=0, le=100, description="vacuum_cost_delay (ms) of the maintenance job's VACUUM"
    )
    maintenance_cost_limit: int = Field(
        2000, ge=1, le=10_000, description="vacuum_cost_limit of the maintenance job's VACUUM"
    )
    # Schedules: every server and worker runs a scheduler; each due tick is created exactly once.
    scheduler_interval: Duration = Field(
        1.0, gt=0, le=60, description="how often due schedules are looked for"
    )
    schedule_grace: Duration = Field(
        10.0, ge=0, description="how late a tick may fire and still be on time (older: its catch-up decides)"
    )

    # Plugins.
    smtp_host: str = ""
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = True
    email_from: str = "taskservice@localhost"
    email_outbox_dir: Path = Field(default_factory=lambda: _data_dir() / "outbox")
    query_database_url: str = ""
    query_timeout: float = Field(10.0, gt=0, description="statement timeout of run_query, seconds")
    query_max_rows: int = Field(100, ge=1, le=10_000)
    # send_email and run_query as the original's plugins: they ignore their parameters, sleep
    # TASK_TIME_OUT, and run_query fails 20% of the time (plugins/simulated.py). For the original's
    # `end2end` and demos; set it alike on the server and every worker (docs/task-types.md).
    simulated_plugins: bool = False

    log_level: LogLevel = "info"

    # Traces (docs/observability.md), with `pip install 'taskservice[otel]'`: on when OTEL_TRACES_EXPORTER
    # is otlp or console, or (it unset) an OTLP endpoint is set, and OTEL_SDK_DISABLED is not true. The
    # OpenTelemetry SDK reads its other OTEL_* variables itself (OTEL_EXPORTER_OTLP_HEADERS, OTEL_BSP_*,
    # OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER...); OTLP is sent over HTTP (protobuf).
    otel_sdk_disabled: bool = False
    otel_traces_exporter: Literal["", "otlp", "console", "none"] = ""
    otel_exporter_otlp_endpoint: str = ""
    otel_exporter_otlp_traces_endpoint: str = ""
    otel_service_name: str = Field("", description="service.name of the spans; empty: taskservice-<kind>")

    # Security (docs/security.md). AUTH_REQUIRED unset: required unless the server listens on loopback.
    auth_required: bool | None = None
    allow_insecure: bool = Field(False, description="let a server on a non-loopback address run without auth")
    metrics_public: bool = Field(False, description="serve /metrics without a token")
    cors_origins: str = Field(
        "", description="comma-separated origins allowed by CORS; * for any; none: same origin"
    )
    allowed_hosts: str = Field("", description="comma-separated Host names the server answers; empty: any")
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    oidc_scopes: str = "openid email profile"
    oidc_role_claim: str = Field("", description="ID-token claim holding the role; empty: OIDC_DEFAULT_ROLE")
    oidc_default_role: Literal["", "viewer", "operator", "admin"] = "viewer"
    session_hours: float = Field(12.0, gt=0, le=24 * 30, description="how long a dashboard login lasts")
    auth_cache_seconds: float = Field(
        0.0, ge=0, le=3600,
        description="keep checked credentials this long (0: check the database on every request)",
    )  # fmt: skip
    # Limits.
    max_request_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="largest request body")
    max_decompressed_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="largest inflated message")
    body_read_timeout: float = Field(30.0, gt=0, description="seconds a request body may take to arrive")
    header_timeout_seconds: float = Field(
        10.0, gt=0, le=3600, description="seconds a connection may take to send its request headers"
    )
    max_payload_bytes: int = Field(65536, ge=1024, description="largest payload: keys and values, UTF-8")
    max_parameters: int = Field(100, ge=1, description="most parameters in one payload")
    max_result_bytes: int = Field(1024 * 1024, ge=1024, description="largest stored result (JSON); cut past")
    db_command_timeout: float = Field(10.0, gt=0, description="seconds before a database call is given up")

    @model_validator(mode="after")
    def _tls_needs_both_files(self) -> Settings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("TLS_CERT_FILE and TLS_KEY_FILE go together: set both or neither")
        return self

    @model_validator(mode="after")
    def _worker_count_is_worker_concurrency(self) -> Settings:
        if self.worker_count is None:
            return self
        if "worker_concurrency" in self.model_fields_set and self.worker_concurrency != self.worker_count:
            raise ValueError(
                f"WORKER_CONCURRENCY={self.worker_concurrency} and WORKER_COUNT={self.worker_count} "
                "disagree: they are one setting (WORKER_COUNT is its older name); set one of them"
            )
        self.worker_concurrency = self.worker_count
        return self

    @model_validator(mode="after")
    def _backoff_cap_not_below_base(self) -> Settings:
        if self.retry_backoff_max < self.retry_backoff_base:
            raise ValueError("RETRY_BACKOFF_MAX must be >= RETRY_BACKOFF_BASE")
        return self

    @property
    def tracing_enabled(self) -> bool:
        """Whether this process sends spans (tracing.setup)."""
        if self.otel_sdk_disabled or self.otel_traces_exporter == "none":
            return False
        if self.otel_traces_exporter:
            return True
        return bool(self.otel_exporter_otlp_endpoint or self.otel_exporter_otlp_traces_endpoint)

    @property
    def task_module_names(self) -> list[str]:
        """TASK_MODULES as a list of module names."""
        return [name for name in re.split(r"[,\s]+", self.task_modules) if name]

    @property
    def configured_database_url(self) -> str | None:
        """The server to use, or None when the embedded PostgreSQL should be used."""
        if self.database_url:
            return self.database_url
        if self.db_host:
            user = quote(self.db_username, safe="")
            password = f":{quote(self.db_password, safe='')}" if self.db_password else ""
            host = self.db_host
            if host.startswith("/"):  # a Unix-socket directory: libpq wants it percent-encoded
                host = quote(host, safe="")
            elif ":" in host and not host.startswith("["):  # an IPv6 address
                host = f"[{host}]"
            return (
                f"postgresql://{user}{password}@{host}:{self.db_port}/"
                f"{quote(self.db_database, safe='')}?sslmode={self.db_ssl_mode}"
            )
        return None


def _one_line(error: ValidationError) -> str:
    first = error.errors()[0]
    message = first["msg"].removeprefix("Value error, ")
    if not first["loc"]:  # a rule across settings: its message names them
        return f"invalid settings: {message}"
    name = "_".join(str(part) for part in first["loc"]).upper()
    value = first.get("input")
    shown = f"={value!r}" if isinstance(value, str | int | float) else ""
    return f"invalid setting {name}{shown}: {message}"


def load_settings(**overrides: object) -> Settings:
    """Read the settings; a wrong value raises ConfigError with one line naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise ConfigError(_one_line(error)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings from the environment."""
    return load_settings()
