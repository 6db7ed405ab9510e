"""The other protocols on the same port as the dashboard, against a real server process: gRPC-Web
(binary and text) in frames built by hand over httpx, and Connect over HTTP/2 (h2c by prior knowledge)."""

from __future__ import annotations

import asyncio
import base64
import struct
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from urllib.parse import unquote

import httpx
import pytest
from google.protobuf.message import Message

from conftest import Served, serving
from taskservice.auth.tokens import issue
from taskservice.db.connect import create_pool
from taskservice.gen.cloud.v1 import task_pb2 as pb
from taskservice.store import Credentials

pytestmark = pytest.mark.e2e  # starts processes (tests/conftest.py: tiers)

SERVICE = "/cloud.v1.TaskManagementService"
TRAILER = 0x80


@dataclass
class Server:
    served: Served
    token: str  # an operator's

    @property
    def url(self) -> str:
        return self.served.url


async def _operator_token(database_url: str) -> str:
    pool = await create_pool(database_url, max_size=2)
    try:
        return (await issue(Credentials(pool), "protocols", "operator", 0, "tests"))[1]
    finally:
        await pool.close()


@pytest.fixture(scope="module")
def server(
    pg_server_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("protocols")
    with serving(pg_server_url, template_database, folder, WORKER_COUNT="0", AUTH_REQUIRED="true") as served:
        yield Server(served, asyncio.run(_operator_token(served.settings.database_url)))


@pytest.fixture
async def h2(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    """HTTP/2 only: h2c with prior knowledge, as gRPC clients and Connect clients over h2c speak it."""
    headers = {"Authorization": f"Bearer {server.token}"}
    async with httpx.AsyncClient(
        base_url=server.url, http1=False, http2=True, headers=headers, timeout=30
    ) as client:
        yield client


@pytest.fixture
async def h1(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {server.token}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as client:
        yield client


def new_task(name: str) -> pb.CreateTaskRequest:
    return pb.CreateTaskRequest(
        name=name, type="sleep", payload=pb.Payload(parameters={"seconds": "0"}), delay_seconds=3600
    )


# -- gRPC-Web --------------------------------------------------------------------------------


def frame(message: Message) -> bytes:
    data = message.SerializeToString()
    return struct.pack(">BI", 0, len(data)) + data


def frames(body: bytes) -> tuple[list[bytes], dict[str, str]]:
    """The messages and the trailers of a gRPC-Web response body."""
    messages, trailers = [], {}
    while body:
        flags, length = struct.unpack(">BI", body[:5])
        data, body = body[5 : 5 + length], body[5 + length :]
        if flags & TRAILER:
            for line in data.decode().split("\r\n"):
                if line:
                    name, _, value = line.partition(":")
                    trailers[name.strip().lower()] = value.strip()
        else:
            messages.append(data)
    return messages, trailers


async def grpc_web(
    client: httpx.AsyncClient, method: str, request: Message, *, text: bool = False, **headers: str
) -> tuple[httpx.Response, list[bytes], dict[str, str]]:
    """One gRPC-Web call; the status of a headers-only answer (an error before any message) is read
    from the headers, as gRPC-Web clients do."""
    body = frame(request)
    content_type = "application/grpc-web-text" if text else "application/grpc-web+proto"
    response = await client.post(
        f"{SERVICE}/{method}",
        content=base64.b64encode(body) if text else body,
        headers={"Content-Type": content_type, "X-Grpc-Web": "1", **headers},
    )
    raw = base64.b64decode(response.content) if text else response.content
    messages, trailers = frames(raw)
    for name in ("grpc-status", "grpc-message"):
        if name in response.headers:
            trailers.setdefault(name, response.headers[name])
    return response, messages, trailers


@pytest.mark.parametrize("text", [False, True], ids=["binary", "text"])
async def test_grpc_web_unary_calls(h1: httpx.AsyncClient, text: bool) -> None:
    response, messages, trailers = await grpc_web(h1, "CreateTask", new_task("grpc-web"), text=text)
    assert response.status_code == 200
    expected = "application/grpc-web-text+proto" if text else "application/grpc-web+proto"
    assert response.headers["content-type"] == expected
    assert trailers["grpc-status"] == "0"
    created = pb.CreateTaskResponse.FromString(messages[0])
    _, messages, trailers = await grpc_web(h1, "GetTask", pb.GetTaskRequest(id64=created.id64), text=text)
    assert trailers["grpc-status"] == "0"
    task = pb.Task.FromString(messages[0])
    assert (task.id64, task.name) == (created.id64, "grpc-web")


@pytest.mark.parametrize("text", [False, True], ids=["binary", "text"])
async def test_grpc_web_errors_are_grpc_statuses(server: Server, text: bool) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as anonymous:
        response, _, trailers = await grpc_web(anonymous, "ListTasks", pb.TaskListRequest(), text=text)
    assert response.status_code == 200
    assert trailers["grpc-status"] == "16"  # unauthenticated
    assert "requires a token" in unquote(trailers["grpc-message"])
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        bearer = {"Authorization": f"Bearer {server.token}"}
        _, _, trailers = await grpc_web(client, "GetTask", pb.GetTaskRequest(id=0), text=text, **bearer)
    assert trailers["grpc-status"] == "3"  # invalid_argument
    assert unquote(trailers["grpc-message"]).startswith("id: ")


async def test_grpc_web_text_that_is_not_base64_is_invalid_argument(h1: httpx.AsyncClient) -> None:
    response = await h1.post(
        f"{SERVICE}/GetTask",
        content=b"this is not base64!",
        headers={"Content-Type": "application/grpc-web-text", "X-Grpc-Web": "1"},
    )
    _, trailers = frames(base64.b64decode(response.content))
    status = trailers.get("grpc-status", response.headers.get("grpc-status"))
    assert status == "3"


async def test_grpc_web_text_accepts_padded_segments(h1: httpx.AsyncClient) -> None:
    """A client may send the body in pieces, each base64 with its own padding."""
    body = frame(pb.GetTaskRequest(id=987_654))
    pieces = base64.b64encode(body[:4]) + base64.b64encode(body[4:])
    assert b"=" in pieces[:-2]  # padding inside, not only at the end
    response = await h1.post(
        f"{SERVICE}/GetTask", content=pieces, headers={"Content-Type": "application/grpc-web-text"}
    )
    _, trailers = frames(base64.b64decode(response.content))
    assert trailers["grpc-status"] == "5"  # not_found: the request was read whole


async def test_grpc_web_text_server_stream(h1: httpx.AsyncClient) -> None:
    body = base64.b64encode(frame(pb.WatchEventsRequest()))
    headers = {"Content-Type": "application/grpc-web-text"}
    async with h1.stream("POST", f"{SERVICE}/WatchEvents", content=body, headers=headers) as response:
        text = b""
        async for chunk in response.aiter_bytes():
            text += chunk
            usable = len(text) - len(text) % 4
            raw = base64.b64decode(text[:usable])
            if len(raw) >= 5 and len(raw) >= 5 + struct.unpack(">I", raw[1:5])[0]:
                break
    assert response.headers["content-type"] == "application/grpc-web-text+proto"
    first = pb.TaskEvent.FromString(raw[5 : 5 + struct.unpack(">I", raw[1:5])[0]])
    assert first.keepalive


# -- Connect over HTTP/2 ---------------------------------------------------------------------


async def test_connect_json_over_h2c(h2: httpx.AsyncClient) -> None:
    body = {"name": "connect h2 json", "type": "sleep", "payload": {}, "delaySeconds": 3600}
    response = await h2.post(f"{SERVICE}/CreateTask", json=body)
    assert response.http_version == "HTTP/2"
    assert response.status_code == 200, response.text
    task_id = int(response.json()["id64"])
    got = await h2.post(f"{SERVICE}/GetTask", json={"id64": str(task_id)})
    assert (got.json()["name"], got.json()["status"]) == ("connect h2 json", "QUEUED")


async def test_connect_proto_over_h2c(h2: httpx.AsyncClient) -> None:
    proto = {"Content-Type": "application/proto"}
    response = await h2.post(
        f"{SERVICE}/CreateTask", content=new_task("connect h2 proto").SerializeToString(), headers=proto
    )
    assert (response.http_version, response.status_code) == ("HTTP/2", 200)
    created = pb.CreateTaskResponse.FromString(response.content)
    got = await h2.post(
        f"{SERVICE}/GetTask", content=pb.GetTaskRequest(id64=created.id64).SerializeToString(), headers=proto
    )
    assert pb.Task.FromString(got.content).name == "connect h2 proto"
    missing = await h2.post(
        f"{SERVICE}/GetTask", content=pb.GetTaskRequest(id=987_654).SerializeToString(), headers=proto
    )
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")


async def test_connect_refusal_over_h2c_is_a_connect_error(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url, http1=False, http2=True, timeout=30) as anonymous:
        response = await anonymous.post(f"{SERVICE}/ListTasks", json={})
    assert (response.http_version, response.status_code) == ("HTTP/2", 401)
    assert response.json()["code"] == "unauthenticated"


async def test_connect_server_stream_over_h2c(h2: httpx.AsyncClient) -> None:
    body = struct.pack(">BI", 0, 2) + b"{}"
    headers = {"Content-Type": "application/connect+json"}
    async with h2.stream("POST", f"{SERVICE}/WatchEvents", content=body, headers=headers) as response:
        data = b""
        async for chunk in response.aiter_bytes():
            data += chunk
            if len(data) >= 5 and len(data) >= 5 + struct.unpack(">I", data[1:5])[0]:
                break
    assert response.http_version == "HTTP/2"
    assert b'"keepalive": true' in data


# -- the same port ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["HTTP/1.1", "HTTP/2"])
async def test_the_dashboard_and_health_share_the_port(server: Server, version: str) -> None:
    headers = {"Authorization": f"Bearer {server.token}"}
    http2 = version == "HTTP/2"
    async with httpx.AsyncClient(
        base_url=server.url, http1=not http2, http2=http2, headers=headers, timeout=30
    ) as client:
        page = await client.get("/")
        assert (page.http_version, page.status_code) == (version, 200)
        assert "<html" in page.text.lower()
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/metrics")).status_code == 200


async def test_grpc_over_http1_is_unimplemented_and_says_what_to_use(h1: httpx.AsyncClient) -> None:
    response = await h1.post(
        f"{SERVICE}/GetStatus",
        content=frame(pb.GetStatusRequest()),
        headers={"Content-Type": "application/grpc"},
    )
    assert response.status_code == 200  # gRPC clients read the status from grpc-status
    assert response.headers["grpc-status"] == "12"  # unimplemented
    assert "HTTP/2" in unquote(response.headers["grpc-message"])
