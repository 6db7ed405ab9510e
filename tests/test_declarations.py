"""Task type declarations: what a type declares, the rules a parameter is checked by, and CreateTask
refusing bad parameters by name (over the API, for types of the server and types only workers run,
and through task-cli), with ListTaskTypes and `task create --help` showing the declarations."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import httpx
import pydantic
import pytest
from click.testing import CliRunner
from pydantic import BaseModel, ConfigDict, EmailStr, Field

from conftest import Served, serving
from taskservice import task
from taskservice.cli import cli
from taskservice.db.connect import create_pool
from taskservice.plugins import PermanentFailure, Registry
from taskservice.plugins.context import TaskContext
from taskservice.plugins.declare import ParameterError, ParameterSpec, TaskTypeSpec, TypedTask
from taskservice.plugins.email import SendEmail
from taskservice.plugins.query import RunQuery
from taskservice.plugins.sleep import Sleep
from taskservice.store import Store

pytestmark = pytest.mark.e2e  # starts processes (tests/conftest.py: tiers)

SERVICE = "/cloud.v1.TaskManagementService"
LATER = 3600  # delaySeconds that keeps a task QUEUED for the whole module


class Fit(enum.Enum):
    CROP = "crop"
    PAD = "pad"


def resize_image(
    path: str,
    width: Annotated[int, Field(ge=1, le=10_000)],
    fit: Fit = Fit.CROP,
    sharpen: bool = False,
    quality: Annotated[float | None, "JPEG quality, 0..1"] = None,
    ctx: TaskContext | None = None,
) -> dict[str, Any]:
    """Resize one image.

    Args:
        path: Where the image is.
        width: The new width in pixels.
    """
    return {"path": path, "width": width, "fit": fit.value, "sharpen": sharpen, "quality": quality}


class Report(BaseModel):
    model_config = ConfigDict(extra="forbid")

    month: str = Field(description="YYYY-MM")
    rows: int = Field(100, ge=1, le=1000, description="at most this many rows")


def typed(function: Any, **policy: Any) -> TypedTask[..., Any]:
    """`function` declared as a task type, without registering it anywhere."""
    options: dict[str, Any] = dict.fromkeys(("description", "max_retries", "timeout", "backoff"))
    return TypedTask(function.__name__, function, **{**options, "permanent": (), **policy})


# -- what a declaration says ------------------------------------------------------------------------


def test_a_functions_signature_declares_its_parameters() -> None:
    declared = typed(resize_image, max_retries=2, timeout=30, backoff=0.5, permanent=(FileNotFoundError,))
    spec = declared.spec
    assert spec.description == "Resize one image."
    assert [p.model_dump() for p in spec.parameters] == [
        {"name": "path", "type": "string", "required": True, "default": None,
         "description": "Where the image is.", "choices": (), "minimum": None, "maximum": None,
         "aliases": (), "format": ""},
        {"name": "width", "type": "integer", "required": True, "default": None,
         "description": "The new width in pixels.", "choices": (), "minimum": 1, "maximum": 10_000,
         "aliases": (), "format": ""},
        {"name": "fit", "type": "enum", "required": False, "default": "crop", "description": "",
         "choices": ("crop", "pad"), "minimum": None, "maximum": None, "aliases": (), "format": ""},
        {"name": "sharpen", "type": "boolean", "required": False, "default": "false", "description": "",
         "choices": (), "minimum": None, "maximum": None, "aliases": (), "format": ""},
        {"name": "quality", "type": "number", "required": False, "default": None,
         "description": "JPEG quality, 0..1", "choices": (), "minimum": None, "maximum": None, "aliases": (),
         "format": ""},
    ]  # fmt: skip
    assert (spec.max_retries, spec.timeout_seconds, spec.backoff_seconds) == (2, 30.0, 0.5)
    assert (spec.permanent, spec.permanent_errors) == ((FileNotFoundError,), ("FileNotFoundError",))
    assert not spec.extra_parameters  # the context parameter is no task parameter
    # Still the function it was.
    assert declared("a.png", 3) == {
        "path": "a.png",
        "width": 3,
        "fit": "crop",
        "sharpen": False,
        "quality": None,
    }


def test_a_pydantic_model_declares_the_parameters() -> None:
    def monthly(report: Report, ctx: Any) -> dict[str, Any]:
        return report.model_dump()

    spec = typed(monthly, description="A report").spec
    assert [(p.name, p.type, p.required, p.default, p.description, p.minimum, p.maximum)
            for p in spec.parameters] == [
        ("month", "string", True, None, "YYYY-MM", None, None),
        ("rows", "integer", False, "100", "at most this many rows", 1, 1000),
    ]  # fmt: skip
    assert spec.description == "A report"


def test_keyword_arguments_accept_other_parameters() -> None:
    def tagged(name: str, **labels: str) -> None: ...

    spec = typed(tagged).spec
    assert spec.extra_parameters
    assert spec.check({"name": "x", "team": "a"}) == {"name": "x", "team": "a"}


def test_what_cannot_be_declared_is_refused_at_once() -> None:
    def listed(items: list[int]) -> None: ...

    def variadic(*args: str) -> None: ...

    with pytest.raises(TypeError, match=r"parameter items: list\[int\] is not supported"):
        typed(listed)
    with pytest.raises(TypeError, match="parameter args must be one that can be given by name"):
        typed(variadic)


def test_a_bad_name_or_retry_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="task type name"):
        task("two\nlines")(resize_image)
    with pytest.raises(ValueError, match="max_retries"):
        task("too_many", max_retries=11)(resize_image)


SPEC = typed(resize_image).spec


@pytest.mark.parametrize(
    ("parameters", "name", "rule"),
    [
        ({"width": "3"}, "path", "is required"),
        ({"path": "", "width": "3"}, "path", "is required"),  # empty counts as not given
        ({"path": "a", "width": "abc"}, "width", "must be an integer (got 'abc')"),
        ({"path": "a", "width": "1.5"}, "width", "must be an integer (got '1.5')"),
        ({"path": "a", "width": "0"}, "width", "must be >= 1 (got '0')"),
        ({"path": "a", "width": "10001"}, "width", "must be <= 10000 (got '10001')"),
        ({"path": "a", "width": "3", "fit": "stretch"}, "fit", "must be one of crop, pad (got 'stretch')"),
        ({"path": "a", "width": "3", "sharpen": "maybe"}, "sharpen", "must be true or false (got 'maybe')"),
        ({"path": "a", "width": "3", "quality": "high"}, "quality", "must be a number (got 'high')"),
        ({"path": "a", "width": "3", "quality": "nan"}, "quality", "must be a finite number (got 'nan')"),
        ({"path": "a", "width": "3", "wdth": "4"}, "wdth",
         "is not a parameter of this task type (its parameters: path, width, fit, sharpen, quality)"),
    ],
)  # fmt: skip
def test_a_broken_rule_names_the_parameter(parameters: dict[str, str], name: str, rule: str) -> None:
    with pytest.raises(ParameterError) as raised:
        SPEC.check(parameters)
    assert (raised.value.name, raised.value.rule) == (name, rule)


def test_good_parameters_become_values() -> None:
    assert SPEC.check({"path": "a", "width": " 42 ", "fit": "pad", "sharpen": "YES", "quality": "0.5"}) == {
        "path": "a", "width": 42, "fit": "pad", "sharpen": True, "quality": 0.5,
    }  # fmt: skip
    assert SPEC.check({"path": "a", "width": "1", "sharpen": "0", "quality": ""}) == {
        "path": "a", "width": 1, "sharpen": False,
    }  # fmt: skip


def test_an_alias_satisfies_a_required_parameter_once() -> None:
    recipient = ParameterSpec(name="recipient", required=True, aliases=("to",))
    spec = TaskTypeSpec(parameters=(recipient,))
    assert spec.check({"to": "a@example.com"}) == {"recipient": "a@example.com"}
    with pytest.raises(ParameterError, match=r"recipient: is required \(or to\)"):
        spec.check({})
    with pytest.raises(ParameterError, match="give one of recipient, to, not several"):
        spec.check({"recipient": "a@example.com", "to": "b@example.com"})


def test_a_declaration_survives_its_json_and_unreadable_json_is_none() -> None:
    spec = SPEC.model_copy(update={"permanent": (KeyError,), "permanent_errors": ("KeyError",)})
    again = TaskTypeSpec.from_json(spec.to_json())
    assert again is not None
    assert again.model_dump() == spec.model_dump()  # `permanent` is not in the JSON
    assert again.permanent == ()  # the classes stay in their process
    assert again.permanent_errors == ("KeyError",)
    assert TaskTypeSpec.from_json({"parameters": [{"type": "string"}]}) is None  # no name
    assert TaskTypeSpec.from_json({"max_retries": 99}) is None
    # A newer version's fields are ignored.
    newer = TaskTypeSpec.from_json({"parameters": [{"name": "x", "pattern": "^a"}], "queue": "q"})
    assert newer is not None
    assert newer.parameters[0].name == "x"


def test_a_string_parameter_may_declare_a_format() -> None:
    spec = TaskTypeSpec(parameters=(ParameterSpec(name="reply_to", format="email"),))
    with pytest.raises(ParameterError) as broken:
        spec.check({"reply_to": "ada at example.com"})
    assert (broken.value.name, broken.value.rule.split(": ")[0]) == (
        "reply_to", "must be an e-mail address (got 'ada at example.com')",
    )  # fmt: skip
    assert spec.check({"reply_to": "ada@example.com"}) == {"reply_to": "ada@example.com"}
    assert spec.check({"reply_to": ""}) == {}  # empty: not given
    # A format nobody knows is a mistake in code, refused at once...
    with pytest.raises(pydantic.ValidationError, match="unknown format 'emial'; known: email"):
        ParameterSpec(name="x", format="emial")
    # ...but a newer version's, read back from its published declaration, is kept and not checked here.
    newer = TaskTypeSpec.from_json({"parameters": [{"name": "site", "format": "uri"}]})
    assert newer is not None
    assert newer.parameters[0].format == "uri"
    assert newer.check({"site": "anything"}) == {"site": "anything"}
    assert newer.to_json()["parameters"][0]["format"] == "uri"


def test_emailstr_declares_the_email_format() -> None:
    def notify(recipient: EmailStr, cc: EmailStr | None = None, note: str = "") -> str:
        return recipient

    declared = typed(notify)
    assert [(p.name, p.type, p.format) for p in declared.spec.parameters] == [
        ("recipient", "string", "email"), ("cc", "string", "email"), ("note", "string", ""),
    ]  # fmt: skip
    # The worker checks it too: a bad address fails the attempt at once, naming the parameter.
    with pytest.raises(PermanentFailure, match=r"^cc: must be an e-mail address \(got 'nobody'\)"):
        declared.run({"recipient": "ada@example.com", "cc": "nobody"})
    assert declared.run({"recipient": "ada@example.com"}) == "ada@example.com"


def test_the_built_in_types_declare_their_parameters() -> None:
    registry = Registry()
    email, query, sleep = (registry.declaration(n) for n in ("send_email", "run_query", "sleep"))
    assert (email, query, sleep) == (SendEmail.spec, RunQuery.spec, Sleep.spec)
    assert email is not None
    assert query is not None
    assert sleep is not None
    with pytest.raises(ParameterError, match=r"^recipient: is required \(or to\)$"):
        email.check({"subject": "hi"})
    with pytest.raises(ParameterError, match=r"^to: must be an e-mail address \(got 'not-an-address'\): "):
        email.check({"to": "not-an-address"})
    assert email.check({"recipient": "ada@example.com"}) == {"recipient": "ada@example.com"}
    with pytest.raises(ParameterError, match=r"^query: is required$"):
        query.check({})
    with pytest.raises(ParameterError, match=r"^seconds: must be a number \(got 'abc'\)$"):
        sleep.check({"seconds": "abc"})
    with pytest.raises(ParameterError, match=r"^fail_rate: must be <= 1"):
        sleep.check({"fail_rate": "2"})
    assert sleep.check({"seconds": "1", "note": "a label"}) == {"seconds": 1.0, "note": "a label"}
    # The old protocol still: a run(parameters) gets no context, a run(parameters, ctx) does.
    assert [registry.takes_context(n) for n in ("send_email", "run_query", "sleep")] == [True, True, False]


# -- over the API: CreateTask refuses bad parameters by name ----------------------------------------

WIDTH_SPEC = TaskTypeSpec(
    description="Published by a worker only: the server does not have this code.",
    parameters=(
        ParameterSpec(name="path", required=True, description="Where it is."),
        ParameterSpec(name="width", type="integer", required=True, minimum=1),
    ),
    max_retries=7,
    timeout_seconds=12.5,
)


@pytest.fixture(scope="module")
def server(
    pg_server_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """A server without workers of its own (tasks stay QUEUED) that counts a worker live for a minute
    after its last heartbeat: the one `published` makes beats only once."""
    folder = tmp_path_factory.mktemp("decl")
    with serving(pg_server_url, template_database, folder, WORKER_COUNT="0", LEASE_SECONDS="60") as s:
        yield s


@pytest.fixture(scope="module")
async def published(server: Served) -> AsyncIterator[Store]:
    """A live worker elsewhere runs `remote_resize`, and published its declaration."""
    pool = await create_pool(server.settings.database_url, max_size=2)
    store = Store(pool)
    await store.register_task_types({"remote_resize": WIDTH_SPEC.to_json()})
    await store.register_worker("remote-worker", "elsewhere", 1, 1, ["remote_resize", "remote_untyped"])
    yield store
    await pool.close()


@pytest.fixture
async def http(server: Served) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        yield client


async def _post(http: httpx.AsyncClient, method: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = await http.post(f"{SERVICE}/{method}", json=body)
    data = response.json()
    assert isinstance(data, dict)
    return response.status_code, data


def _create(kind: str, parameters: dict[str, str], **fields: Any) -> dict[str, Any]:
    return {"name": f"a {kind}", "type": kind, "payload": {"parameters": parameters}, "delaySeconds": LATER,
            **fields}  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "parameters", "message"),
    [
        ("send_email", {"subject": "hi"}, "payload.parameters['recipient']: is required (or to)"),
        ("run_query", {}, "payload.parameters['query']: is required"),
        ("sleep", {"seconds": "abc"}, "payload.parameters['seconds']: must be a number (got 'abc')"),
        ("sleep", {"seconds": "-1"}, "payload.parameters['seconds']: must be >= 0 (got '-1')"),
        ("send_email", {"recipient": "a@example.com", "bcc": "b@example.com"},
         "payload.parameters['bcc']: is not a parameter of this task type (its parameters: recipient, "
         "subject, body); the original's send_email and run_query ignored their parameters: set "
         "SIMULATED_PLUGINS=true on the server and its workers to run them that way"),
        ("remote_resize", {"path": "a.png"}, "payload.parameters['width']: is required"),
        ("remote_resize", {"path": "a.png", "width": "wide"},
         "payload.parameters['width']: must be an integer (got 'wide')"),
        ("send_email", {"recipient": "not-an-address"},
         "payload.parameters['recipient']: must be an e-mail address (got 'not-an-address'): "
         "An email address must have an @-sign."),
        ("send_email", {"to": "ada@"},
         "payload.parameters['to']: must be an e-mail address (got 'ada@'): "
         "There must be something after the @-sign."),
    ],
)  # fmt: skip
async def test_create_task_refuses_bad_parameters_naming_them(
    http: httpx.AsyncClient, published: Store, kind: str, parameters: dict[str, str], message: str
) -> None:
    status, error = await _post(http, "CreateTask", _create(kind, parameters))
    assert (status, error) == (400, {"code": "invalid_argument", "message": message})


async def test_create_tasks_names_the_task_and_creates_none(http: httpx.AsyncClient, server: Served) -> None:
    name = "batch with one bad task"
    good = {**_create("sleep", {"seconds": "0"}), "name": name}
    bad = {**_create("sleep", {"seconds": "soon"}), "name": name}
    status, error = await _post(http, "CreateTasks", {"tasks": [good, bad]})
    assert (status, error["message"]) == (
        400,
        "tasks[1].payload.parameters['seconds']: must be a number (got 'soon')",
    )
    _, listed = await _post(http, "ListTasks", {"nameContains": name})
    assert listed.get("tasks", []) == []


async def test_good_parameters_are_accepted_and_declared_defaults_apply(
    http: httpx.AsyncClient, published: Store, server: Served
) -> None:
    accepted = [
        _create("send_email", {"to": "a@example.com"}),
        _create("run_query", {"query": "SELECT 1"}),
        _create("sleep", {"seconds": "0.5", "note": "labels are kept"}),
        _create("remote_resize", {"path": "a.png", "width": "640"}),
        _create("remote_untyped", {"anything": "goes"}),  # declares nothing: checked when it runs
    ]
    for body in accepted:
        status, created = await _post(http, "CreateTask", body)
        assert status == 200, created
    status, created = await _post(http, "CreateTask", _create("remote_resize", {"path": "b", "width": "1"}))
    task = await published.get_task(int(created["id64"]))
    # The type's declared defaults, not the server's MAX_RETRIES and TASK_TIME_OUT; a request's own win.
    assert (task.max_retries, task.timeout_seconds) == (7, 12.5)
    assert (server.settings.max_retries, server.settings.task_time_out) != (7, 12.5)
    body = _create("remote_resize", {"path": "b", "width": "1"}, maxRetries=1, timeoutSeconds=3)
    _, created = await _post(http, "CreateTask", body)
    task = await published.get_task(int(created["id64"]))
    assert (task.max_retries, task.timeout_seconds) == (1, 3.0)


async def test_list_task_types_returns_the_declarations(http: httpx.AsyncClient, published: Store) -> None:
    status, found = await _post(http, "ListTaskTypes", {})
    assert status == 200
    names = ["remote_resize", "remote_untyped", "run_query", "send_email", "sleep"]
    assert found["types"] == names  # the old field, for old clients
    declarations = {d["name"]: d for d in found["declarations"]}
    assert list(declarations) == names
    untyped = declarations["remote_untyped"]
    assert (untyped["declared"], untyped["extraParameters"], untyped["parameters"]) == (False, True, [])
    no_list: dict[str, Any] = {"description": "", "choices": [], "aliases": [], "format": ""}
    assert declarations["remote_resize"] == {
        "name": "remote_resize",
        "declared": True,
        "description": WIDTH_SPEC.description,
        "parameters": [
            {"name": "path", "type": "string", "required": True, **no_list, "description": "Where it is."},
            {"name": "width", "type": "integer", "required": True, "minimum": 1, **no_list},
        ],
        "extraParameters": False,
        "maxRetries": 7,
        "timeoutSeconds": 12.5,
        "permanentErrors": [],
        "queue": "default",  # it declares none
    }
    assert declarations["send_email"]["parameters"][0] == {
        "name": "recipient", "type": "string", "required": True, "description": "The address to send to.",
        "choices": [], "aliases": ["to"], "format": "email",
    }  # fmt: skip
    seconds = declarations["sleep"]["parameters"][0]
    assert (seconds["name"], seconds["type"], seconds["defaultValue"], seconds["minimum"]) == (
        "seconds", "number", "0", 0,
    )  # fmt: skip


# -- through task-cli -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (["--type", "send_email"], "payload.parameters['recipient']: is required"),
        (["--type", "run_query"], "payload.parameters['query']: is required"),
        (["--type", "sleep", "-p", "seconds=abc"], "payload.parameters['seconds']: must be a number"),
        (["--type", "send_email", "-p", "recipient=not-an-address"],
         "payload.parameters['recipient']: must be an e-mail address (got 'not-an-address')"),
    ],
)  # fmt: skip
def test_task_cli_create_refuses_bad_parameters_by_name(
    server: Served, arguments: list[str], named: str
) -> None:
    result = CliRunner().invoke(cli, ["--address", server.url, "task", "create", "x", *arguments])
    assert result.exit_code == 1, result.output
    assert named in result.stderr
    assert "Traceback" not in result.output


def test_task_create_help_lists_each_types_parameters(server: Served, published: Store) -> None:
    result = CliRunner().invoke(
        cli, ["--address", server.url, "task", "create", "--help"], terminal_width=100
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "remote_resize, remote_untyped, run_query, send_email, sleep" in out
    section = out[out.index("Parameters (--parameter NAME=VALUE)") :]
    assert f"remote_resize: {WIDTH_SPEC.description}" in section
    lines = [" ".join(line.split()) for line in section.splitlines()]
    assert "path (string, required) Where it is." in lines
    assert "width (integer, required, >= 1)" in lines
    assert "recipient (string, required, format email, also as to) The address to send to." in lines
    assert "seconds (number, default 0, >= 0) How long to sleep." in lines
    assert (
        "fail_rate (number, default 0, >= 0, <= 1) The probability of failing after the sleep (0..1)."
        in lines
    )
    assert "query (string, required) One SQL statement, run in a READ ONLY transaction." in lines
    assert "(other parameters are accepted too)" in lines  # sleep's labels
    assert "remote_untyped:" not in section  # declares nothing
