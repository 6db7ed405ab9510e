"""A bounded fuzz run over every RPC, in JSON and binary, against a real server process.

Whatever arrives, the server answers with a 4xx or 200 (never a 5xx, never `unknown`), stays up, and
stays small. FUZZ_EXAMPLES sets the examples per RPC and encoding: small in CI; `make fuzz` runs long.
"""

from __future__ import annotations

import gzip
import json
import os
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import psutil
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import Served, serving
from taskservice.gen.cloud.v1 import auth_pb2, task_pb2
from taskservice.gen.grpc.health.v1 import health_pb2

pytestmark = pytest.mark.e2e  # starts processes (tests/conftest.py: tiers)

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
MiB = 1024 * 1024
# How long a PullEvents stream may stay silent before it counts as an open original-style stream: a
# refusal of a bad request comes at once, before the stream opens.
QUIET_STREAM_SECONDS = 2.0
METHODS = [
    (service, method)
    for module, name in (
        (task_pb2, "TaskManagementService"),
        (auth_pb2, "AuthService"),
        (health_pb2, "Health"),
    )
    for service in [module.DESCRIPTOR.services_by_name[name]]
    for method in service.methods
]
IDS = [m.name for _, m in METHODS]


@pytest.fixture(scope="module")
def server(
    pg_server_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    with serving(pg_server_url, template_database, tmp_path_factory.mktemp("fuzz"), WORKER_COUNT="0") as s:
        yield s


@pytest.fixture(scope="module")
def http(server: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


# -- what to send ----------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)
SCALARS: dict[int, st.SearchStrategy[Any]] = {
    FieldDescriptor.TYPE_STRING: st.text(max_size=300),
    FieldDescriptor.TYPE_BOOL: st.booleans(),
    FieldDescriptor.TYPE_DOUBLE: st.floats(),
    FieldDescriptor.TYPE_INT32: st.integers(-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: st.integers(-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_ENUM: st.integers(-3, 10),
}


def field_values(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.message_type is not None:
        if field.message_type.GetOptions().map_entry:
            return st.dictionaries(st.text(max_size=20), st.text(max_size=100), max_size=8)
        if depth > 2 or field.message_type.file.package == "google.protobuf":
            return json_values
        single = messages(field.message_type, depth + 1)
    else:
        single = SCALARS.get(field.type, json_values)
    chosen = st.lists(single, max_size=4) if field.is_repeated else single
    return st.one_of(chosen, json_values)  # mostly the right shape, sometimes anything


def messages(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """JSON objects shaped like `descriptor` (JSON or proto field names), with odd values mixed in."""
    fields = {name: field_values(f, depth) for f in descriptor.fields for name in {f.json_name}}
    return st.fixed_dictionaries({}, optional=fields)


def proto_bytes(descriptor: Descriptor) -> st.SearchStrategy[bytes]:
    """Valid encodings of the message with random values, cut or bit-flipped, or random bytes."""

    def encode(data: dict[str, Any]) -> bytes:
        from google.protobuf import json_format, message_factory

        message = message_factory.GetMessageClass(descriptor)()
        try:
            json_format.ParseDict(data, message, ignore_unknown_fields=True)
        except (json_format.ParseError, ValueError, TypeError, RecursionError):
            return b""
        return message.SerializeToString()

    valid = messages(descriptor).map(encode)
    mangled = st.tuples(valid, st.integers(0, 64), st.integers(0, 255)).map(
        lambda t: t[0][: t[1]] + bytes([t[2]]) + t[0][t[1] + 1 :]
    )
    return st.one_of(valid, mangled, st.binary(max_size=200))


def wrap(body: bytes, streaming: bool, compressed: bool) -> bytes:
    if compressed:
        body = gzip.compress(body)
    if streaming:
        return struct.pack(">BI", 1 if compressed else 0, len(body)) + body
    return body


transports = st.fixed_dictionaries(
    {"gzip": st.booleans(), "bad_gzip": st.booleans(), "version": st.sampled_from(["1", "1", "2", ""])}
)


# -- the checks ------------------------------------------------------------------------------


def send(
    http: httpx.Client, service: Any, method: Any, body: bytes, codec: str, transport: dict[str, Any]
) -> None:
    streaming = method.server_streaming
    compressed = transport["gzip"] and not transport["bad_gzip"]
    content = wrap(body, streaming, compressed)
    if transport["gzip"] and transport["bad_gzip"]:
        content = b"\x1f\x8b" + content  # claims gzip, is not
    headers = {"Content-Type": f"application/connect+{codec}" if streaming else f"application/{codec}"}
    if transport["version"]:
        headers["Connect-Protocol-Version"] = transport["version"]
    if transport["gzip"]:
        headers["Connect-Content-Encoding" if streaming else "Content-Encoding"] = "gzip"
    url = f"/{service.full_name}/{method.name}"
    # An original-style agent's PullEvents stream (a request naming no agent) is sent only work, and
    # nothing at all while there is none (docs/protocols.md): quiet is an answer there, not a hang.
    quiet_is_an_answer = method.name == "PullEvents"
    timeout: Any = httpx.USE_CLIENT_DEFAULT
    if quiet_is_an_answer:
        timeout = httpx.Timeout(30, read=QUIET_STREAM_SECONDS)
    try:
        with http.stream("POST", url, content=content, headers=headers, timeout=timeout) as response:
            data = b""
            for chunk in response.iter_bytes():
                data += chunk
                if streaming and len(data) >= 5 + int.from_bytes(data[1:5], "big"):
                    break  # the first envelope says it all; the stream may go on for ever
    except httpx.ReadTimeout:
        if not quiet_is_an_answer:
            raise
        return
    assert response.status_code < 500, (url, response.status_code, data[:300])
    if streaming and response.status_code == 200 and data[:1] == b"\x02":
        end = json.loads(data[5 : 5 + int.from_bytes(data[1:5], "big")])
        assert end.get("error", {}).get("code") not in ("unknown", "internal"), (url, end)
    elif response.status_code >= 400 and not streaming and data:
        assert json.loads(data).get("code") not in ("unknown", "internal"), (url, data[:300])


@pytest.mark.parametrize(("service", "method"), METHODS, ids=IDS)
def test_fuzz_json(http: httpx.Client, server: Served, service: Any, method: Any) -> None:
    descriptor = method.input_type

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(body=st.one_of(messages(descriptor), json_values), transport=transports)
    def run(body: Any, transport: dict[str, Any]) -> None:
        send(http, service, method, json.dumps(body).encode(), "json", transport)

    run()
    assert server.process.process.poll() is None


@pytest.mark.parametrize(("service", "method"), METHODS, ids=IDS)
def test_fuzz_binary(http: httpx.Client, server: Served, service: Any, method: Any) -> None:
    descriptor = method.input_type

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(body=proto_bytes(descriptor), transport=transports)
    def run(body: bytes, transport: dict[str, Any]) -> None:
        send(http, service, method, body, "proto", transport)

    run()
    assert server.process.process.poll() is None


def test_after_the_fuzzing_the_server_is_alive_and_small(http: httpx.Client, server: Served) -> None:
    assert http.get("/readyz").status_code == 200
    assert psutil.Process(server.process.process.pid).memory_info().rss < 300 * MiB
