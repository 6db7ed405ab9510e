"""The HTTP around the API: CORS, health probes and metrics."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from api_helpers import (
    SERVICE,
    STATUS_NUMBERS,
    Api,
    metric_samples,
    unique,
)
from conftest import Served, eventually
from taskservice.gen.grpc.health.v1 import health_pb2
from taskservice.gen.grpc.health.v1.health_connect import HealthClient

PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "content-type,connect-protocol-version",
}


async def test_cors_star_allows_any_origin(api: Api) -> None:
    origin = "http://dashboard.example:3000"
    response = await api.http.options(f"{SERVICE}/ListTasks", headers={"Origin": origin, **PREFLIGHT})
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] in ("*", origin)
    methods = {m.strip() for m in response.headers["access-control-allow-methods"].split(",")}
    assert {"POST", "GET", "OPTIONS"} <= methods
    allowed_headers = response.headers["access-control-allow-headers"].lower()
    assert "content-type" in allowed_headers
    assert "connect-protocol-version" in allowed_headers

    response = await api.http.post(f"{SERVICE}/GetStatus", json={}, headers={"Origin": origin})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] in ("*", origin)
    exposed = {h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")}
    assert {"connect-protocol-version", "grpc-status", "grpc-message", "connect-content-encoding"} <= exposed


async def test_cors_with_configured_origins_allows_only_those(idle_api: Api) -> None:
    allowed = await idle_api.http.options(
        f"{SERVICE}/ListTasks", headers={"Origin": "http://allowed.example", **PREFLIGHT}
    )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "http://allowed.example"
    refused = await idle_api.http.options(
        f"{SERVICE}/ListTasks", headers={"Origin": "http://evil.example", **PREFLIGHT}
    )
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
    response = await idle_api.http.post(
        f"{SERVICE}/GetStatus", json={}, headers={"Origin": "http://evil.example"}
    )
    assert "access-control-allow-origin" not in response.headers
    response = await idle_api.http.post(
        f"{SERVICE}/GetStatus", json={}, headers={"Origin": "http://allowed.example"}
    )
    assert response.headers["access-control-allow-origin"] == "http://allowed.example"


async def test_health(api: Api, shared_server: Served) -> None:
    for body in ({}, {"service": ""}, {"service": "cloud.v1.TaskManagementService"}):
        response = await api.http.post("/grpc.health.v1.Health/Check", json=body)
        assert (response.status_code, response.json()) == (200, {"status": "SERVING"}), body
    response = await api.http.post("/grpc.health.v1.Health/Check", json={"service": "no.such.Service"})
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    async with HealthClient(shared_server.url) as health:
        answer = await health.check(health_pb2.HealthCheckRequest(service="cloud.v1.TaskManagementService"))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    healthz = await api.http.get("/healthz")
    assert (healthz.status_code, healthz.text) == (200, "ok\n")
    readyz = await api.http.get("/readyz")
    assert (readyz.status_code, readyz.text) == (200, "ready\n")


def sample(text: str, sample_name: str, **labels: str) -> float:
    values = [v for found, v in metric_samples(text, sample_name) if found == labels]
    return values[0] if values else 0.0


async def test_metrics(api: Api) -> None:
    scrape = await api.http.get("/metrics")
    assert scrape.status_code == 200
    assert scrape.headers["content-type"].startswith("text/plain")
    before = scrape.text
    for _ in range(3):
        await api.fails("GetTask", {"id": 987_654}, 404, "not_found")
    await api.fails("ListTasks", {"limit": -1}, 400, "invalid_argument")
    task_id = await api.create(unique("metrics"))
    await api.wait_status(task_id, "SUCCEEDED")
    counts = await api.counts()

    async def run_time_seen() -> str | None:
        text = (await api.http.get("/metrics")).text
        runs = sample(text, "taskservice_task_run_seconds_count", type="sleep", outcome="succeeded")
        return text if runs >= 1 else None

    after: str = await eventually(run_time_seen)

    def change(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert change("taskservice_rpc_requests_total", method="GetTask", code="not_found") == 3
    assert change("taskservice_rpc_errors_total", method="GetTask", code="not_found") == 3
    assert change("taskservice_rpc_requests_total", method="ListTasks", code="invalid_argument") == 1
    assert change("taskservice_rpc_requests_total", method="CreateTask", code="ok") == 1
    assert change("taskservice_rpc_requests_total", method="GetStatus", code="ok") == 1
    assert change("taskservice_rpc_errors_total", method="GetStatus", code="ok") == 0
    assert change("taskservice_rpc_duration_seconds_count", method="CreateTask") == 1
    families = {f.name: f for f in text_string_to_metric_families(after)}
    assert families["taskservice_rpc_duration_seconds"].type == "histogram"
    assert families["taskservice_task_run_seconds"].type == "histogram"
    buckets = metric_samples(after, "taskservice_rpc_duration_seconds_bucket")
    assert any(labels == {"method": "GetTask", "le": "+Inf"} for labels, _ in buckets)
    tasks = {labels["status"]: value for labels, value in metric_samples(after, "taskservice_tasks")}
    assert set(tasks) == set(STATUS_NUMBERS)
    if await api.counts() == counts:  # nothing moved between the two looks
        assert tasks == {name: float(n) for name, n in counts.items()}
    assert metric_samples(after, "taskservice_queue_depth")[0][1] >= 0
