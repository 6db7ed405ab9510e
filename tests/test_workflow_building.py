"""Workflows on the client's side, without a server: the builder (`Workflow.step`), a workflow file's
reading (YAML and JSON, `task-cli workflow create --file`), the answers as dataclasses, and `workflow
get`'s tree of steps. Through a server: tests/test_workflow_commands.py."""

from __future__ import annotations

import re
from typing import Any

import pytest
from click.testing import CliRunner

from taskservice import InvalidArgument, StepRef, TaskOptions, TaskStatus, Workflow
from taskservice.cli import cli
from taskservice.cli.workflows import EXAMPLE_FILE, counts_text, load_file, step_tree, steps_text
from taskservice.client.messages import WorkflowInfo, WorkflowStepInfo
from taskservice.client.workflows import read_workflow, workflow_request
from taskservice.gen.cloud.v1 import task_pb2 as pb
from typed_tasks import Order, typed_resize, typed_ship


def _graph(workflow: Workflow) -> list[tuple[str, str, list[str]]]:
    """(step, type, depends_on) of each step, in the request's order."""
    return [(s.name, s.task.type, list(s.depends_on)) for s in workflow.request().steps]


# -- the builder ------------------------------------------------------------------------------------


def test_steps_are_named_after_their_type_made_unique_and_wait_for_what_they_come_after() -> None:
    wf = Workflow("etl")
    a = wf.step(typed_resize, user="ada", width=128)
    b = wf.step(typed_resize, after=a, user="bob", width=64)
    c = wf.step(typed_resize, after=[a], user="cy", width=32)
    d = wf.step("send_email", name="notify", after=[b, "typed_resize-3", b], parameters={"to": "ops"})
    assert [a.name, b.name, c.name, d.name] == ["typed_resize", "typed_resize-2", "typed_resize-3", "notify"]
    assert wf.steps == (a, b, c, d)
    assert len(wf) == 4
    assert _graph(wf) == [
        ("typed_resize", "typed_resize", []),
        ("typed_resize-2", "typed_resize", ["typed_resize"]),
        ("typed_resize-3", "typed_resize", ["typed_resize"]),
        ("notify", "send_email", ["typed_resize-2", "typed_resize-3"]),  # each once
    ]
    request = wf.request(idempotency_key="nightly-2026-12-01")
    assert (request.name, request.idempotency_key) == ("etl", "nightly-2026-12-01")
    # A step's task is named as the step (an empty name), unless its options name it.
    assert [s.task.name for s in request.steps] == ["", "", "", ""]
    assert dict(request.steps[3].task.payload.parameters) == {"to": "ops"}
    assert wf.request().idempotency_key == ""


def test_a_declared_types_parameters_are_checked_and_sent_as_its_worker_parses_them() -> None:
    wf = Workflow("typed")
    wf.step(typed_resize, user="ada", width=128, ratio=0.5, square=True)
    wf.step(typed_ship, order=Order(order_id=7, email="ada@example.com"))
    steps = wf.request().steps
    assert dict(steps[0].task.payload.parameters) == {"user": "ada", "width": "128", "ratio": "0.5",
                                                      "square": "true"}  # fmt: skip
    assert dict(steps[1].task.payload.parameters) == {"order_id": "7", "email": "ada@example.com",
                                                      "express": "false"}  # fmt: skip
    # Refused at step(), as the server would refuse it, and nothing is added.
    with pytest.raises(InvalidArgument, match=r"payload.parameters\['width'\]"):
        wf.step(typed_resize, user="ada", width=8)
    with pytest.raises(InvalidArgument, match="parameters"):
        wf.step(typed_resize, user="ada", wdth=128)  # type: ignore[call-overload]
    assert len(wf) == 2


def test_options_come_from_the_step_else_the_declared_types_with_options() -> None:
    wf = Workflow("options")
    wf.step(typed_resize.with_options(TaskOptions(priority=9, queue="images")), user="ada", width=128)
    wf.step(typed_resize.with_options(TaskOptions(priority=9)), options=TaskOptions(priority=1), user="b",
            width=128)  # fmt: skip
    wf.step("sleep", options=TaskOptions(name="nap", description="d", max_retries=0, timeout_seconds=5,
                                         delay_seconds=30, limit_key="k"))  # fmt: skip
    first, second, third = (s.task for s in wf.request().steps)
    assert (first.priority, first.queue, second.priority, second.queue) == (9, "images", 1, "")
    assert (third.name, third.description, third.max_retries, third.timeout_seconds, third.delay_seconds,
            third.limit_key) == ("nap", "d", 0, 5.0, 30.0, "k")  # fmt: skip
    assert not first.HasField("max_retries")  # None: the type's default


def test_what_a_step_cannot_be_is_refused_where_it_is_written() -> None:
    wf, other = Workflow("one"), Workflow("two")
    a = wf.step("sleep")
    elsewhere = other.step("sleep")
    with pytest.raises(ValueError, match=r"^after: no step 'nope' before this one"):
        wf.step("sleep", after=["sleep", "nope"])
    with pytest.raises(ValueError, match=r"^after: step 'sleep' is a step of workflow 'two'"):
        wf.step("sleep", after=elsewhere)
    with pytest.raises(ValueError, match=r"^name: the workflow has a step 'sleep' already"):
        wf.step("sleep", name="sleep", after=a)
    with pytest.raises(ValueError, match=r"^options.idempotency_key: a step has none"):
        wf.step("sleep", options=TaskOptions(idempotency_key="k"))
    with pytest.raises(ValueError, match=r"^options.idempotency_key"):
        wf.step(typed_resize.with_options(TaskOptions(idempotency_key="k")), user="ada", width=128)
    with pytest.raises(TypeError, match=r"parameters=\{\.\.\.\} \(got seconds\)"):
        wf.step("sleep", seconds="1")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="declared by @task, or a type's name"):
        wf.step(print)  # type: ignore[call-overload]
    assert wf.steps == (a,)  # none of them was added
    # A cycle cannot be written: `after` names earlier steps only.
    assert StepRef("sleep", wf) == a


def test_create_workflow_takes_a_workflow_or_a_name_and_its_steps() -> None:
    wf = Workflow("etl")
    wf.step("sleep")
    assert workflow_request(wf, idempotency_key="k") == wf.request("k")
    same = workflow_request("etl", {"sleep": {"type": "sleep"}}, "k")
    assert same == wf.request("k")
    with pytest.raises(TypeError, match="not both"):
        workflow_request(wf, {"sleep": {"type": "sleep"}})
    with pytest.raises(TypeError, match="give its steps too"):
        workflow_request("etl")


# -- steps from a mapping (a workflow file's) ------------------------------------------------------

DIAMOND = """\
name: diamond
steps:
  load:                      # written first: it still comes after the steps it depends on
    type: send_email
    depends_on: [left, right]
    parameters: {recipient: ops@example.com, zip: 01234, flag: yes, ratio: 1.50, day: 2026-12-01}
  extract:
    type: sleep
    parameters: {seconds: 0}
    timeout: 2.5
    max_retries: 0
  left: {type: sleep, depends_on: extract, priority: 5, queue: fast, limit_key: k, description: "the left"}
  right: {type: sleep, depends_on: [extract], delay: 60}
"""


def test_a_files_steps_come_after_what_they_depend_on_their_values_as_written() -> None:
    request = read_workflow(load_file(DIAMOND, "diamond.yaml")).request()
    assert request.name == "diamond"
    assert [(s.name, list(s.depends_on)) for s in request.steps] == [
        ("extract", []), ("left", ["extract"]), ("right", ["extract"]), ("load", ["left", "right"]),
    ]  # fmt: skip
    extract, left, right, load = (s.task for s in request.steps)
    # Every scalar as its text: no octal zip code, no boolean "yes", no date.
    assert dict(load.payload.parameters) == {
        "recipient": "ops@example.com", "zip": "01234", "flag": "yes", "ratio": "1.50", "day": "2026-12-01",
    }  # fmt: skip
    assert (extract.timeout_seconds, extract.max_retries, dict(extract.payload.parameters)) == (
        2.5, 0, {"seconds": "0"},
    )  # fmt: skip
    assert (left.priority, left.queue, left.limit_key, left.description) == (5, "fast", "k", "the left")
    assert (right.delay_seconds, right.HasField("max_retries"), right.HasField("timeout_seconds")) == (
        60.0, False, False,
    )  # fmt: skip


def test_json_reads_the_same_numbers_as_their_text_and_booleans_as_true_or_false() -> None:
    text = """{"name": "diamond", "steps": {
        "extract": {"type": "sleep", "parameters": {"seconds": 0, "ratio": 1.50, "on": true}, "timeout": 2.5},
        "load": {"type": "sleep", "depends_on": ["extract"], "priority": 5}}}"""
    for filename in ("wf.json", "<stdin>"):
        request = read_workflow(load_file(text, filename)).request()
        extract, load = request.steps
        assert dict(extract.task.payload.parameters) == {"seconds": "0", "ratio": "1.50", "on": "true"}
        assert (extract.task.timeout_seconds, load.task.priority, list(load.depends_on)) == (
            2.5,
            5,
            ["extract"],
        )
    # The Python mapping the client takes: numbers and booleans as their text too.
    steps = {"a": {"type": "sleep", "parameters": {"n": 5, "x": 0.25, "b": False}, "priority": 3}}
    (a,) = workflow_request("py", steps).steps
    assert (dict(a.task.payload.parameters), a.task.priority) == ({"n": "5", "x": "0.25", "b": "false"}, 3)


@pytest.mark.parametrize(
    ("steps", "said"),
    [
        ({"a": {"type": "sleep", "dependson": ["b"]}},
         "steps['a']: unknown key 'dependson' (a step has type, "),
        ({"a": {"parameters": {}}}, "steps['a'].type: is required"),
        ({"a": {"type": 5}}, "steps['a'].type: must be text (got the number 5)"),
        ({"a": ["sleep"]}, "steps['a']: must be a mapping of type, parameters, depends_on... (got a list)"),
        ({"a": {"type": "sleep", "parameters": ["x"]}}, "steps['a'].parameters: must be a mapping"),
        ({"a": {"type": "sleep", "parameters": {"x": None}}},
         "steps['a'].parameters['x']: must be text, a number or a boolean (got null)"),
        ({"a": {"type": "sleep", "parameters": {"x": [1]}}},
         "steps['a'].parameters['x']: must be text, a number"),
        ({"a": {"type": "sleep", "priority": "high"}},
         "steps['a'].priority: must be a whole number (got the text 'high')"),
        ({"a": {"type": "sleep", "priority": 1.5}}, "steps['a'].priority: must be a whole number"),
        ({"a": {"type": "sleep", "max_retries": True}}, "steps['a'].max_retries: must be a whole number"),
        ({"a": {"type": "sleep", "timeout": "soon"}}, "steps['a'].timeout: must be a number of seconds"),
        ({"a": {"type": "sleep", "delay": None}}, "steps['a'].delay: must be a number of seconds (got null)"),
        ({"a": {"type": "sleep", "queue": 1}}, "steps['a'].queue: must be text"),
        ({"a": {"type": "sleep", "depends_on": {"b": 1}}},
         "steps['a'].depends_on: must be a list of step names"),
        ({"a": {"type": "sleep", "depends_on": ["b"]}},
         "steps['a'].depends_on: names no step of this workflow: 'b'"),
        ({"a": {"type": "sleep", "depends_on": ["a"]}},
         "steps['a'].depends_on: a step cannot depend on itself"),
        ({"a": {"type": "sleep"}, "b": {"type": "sleep", "depends_on": ["c", "a"]},
          "c": {"type": "sleep", "depends_on": ["d"]}, "d": {"type": "sleep", "depends_on": ["b"]}},
         "steps['b'].depends_on: makes a cycle: b -> c -> d -> b"),
        (["a"], "steps: must be a mapping of each step's name to the step (got a list)"),
    ],
)  # fmt: skip
def test_a_broken_step_is_refused_naming_the_step_and_its_key(steps: Any, said: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(said)}"):
        workflow_request("broken", steps)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("steps: {a: {type: sleep}}", "name: is required"),
        ("name: x", "steps: is required"),
        ("name: x\nsteps: {a: {type: sleep}}\nversion: 2",
         "unknown key 'version' (a workflow has name, steps)"),
        ("- a\n- b", "a workflow file holds a mapping of name and steps (got a list)"),
        ("", "a workflow file holds a mapping of name and steps (got null)"),
        ("name: x\nsteps:\n  a: {type: sleep}\n  a: {type: sleep}", "not YAML: "),
        ("name: [x", "not YAML: "),
        ('{"name": "x", "name": "y", "steps": {}}', "the key 'name' is given twice"),
        ('{"name": "x", "steps": {"a": {"type": "sleep", "timeout": NaN}}}', "NaN is not a number"),
        ('{"name": "x", "steps": [}', "not JSON: "),  # nor YAML: the JSON's error is said
    ],
)  # fmt: skip
def test_a_broken_file_says_what_is_wrong(text: str, said: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(said)}"):
        read_workflow(load_file(text, "<stdin>"))


def test_a_yaml_key_given_twice_is_named_with_its_line() -> None:
    with pytest.raises(ValueError, match=r"the key 'a' is given twice\n.*line 4, column 3"):
        load_file("name: x\nsteps:\n  a: {type: sleep}\n  a: {type: sleep}")


def test_the_help_examples_file_is_a_workflow() -> None:
    request = read_workflow(load_file(EXAMPLE_FILE)).request()
    assert [(s.name, list(s.depends_on)) for s in request.steps] == [
        ("extract", []), ("clean", ["extract"]), ("report", ["extract"]), ("notify", ["clean", "report"]),
    ]  # fmt: skip


def test_the_cli_refuses_a_broken_file_before_calling_the_server(tmp_path: Any) -> None:
    """A usage error (exit 2) naming the file, the step and the key; no server needed."""
    broken = tmp_path / "etl.yaml"
    broken.write_text("name: etl\nsteps:\n  a: {type: sleep, retries: 3}\n")
    runner = CliRunner()
    result = runner.invoke(cli, ["--address", "http://127.0.0.1:9", "workflow", "create", "-f", str(broken)])
    assert result.exit_code == 2
    assert f"Invalid value for '--file' / '-f': {broken}: steps['a']: unknown key 'retries'" in result.stderr
    piped = runner.invoke(cli, ["--address", "http://127.0.0.1:9", "workflow", "create", "-f", "-"],
                          input="name: etl\nsteps: {a: {type: sleep, depends_on: [b]}}\n")  # fmt: skip
    assert piped.exit_code == 2
    assert "<stdin>: steps['a'].depends_on: names no step of this workflow: 'b'" in piped.stderr
    missing = runner.invoke(cli, ["workflow", "create", "-f", str(tmp_path / "nope.yaml")])
    assert (missing.exit_code, "nope.yaml" in missing.stderr) == (2, True)


# -- the answers ------------------------------------------------------------------------------------


def _workflow(**fields: Any) -> pb.Workflow:
    base: dict[str, Any] = {
        "id": 42, "name": "etl", "status": pb.RUNNING, "created_at": "2026-12-01T07:00:00Z",
        "updated_at": "2026-12-01T07:05:00Z", "steps": 4, "created_by": "token ops",
        "step_counts": {"SUCCEEDED": 1, "RUNNING": 1, "WAITING": 2},
    }  # fmt: skip
    return pb.Workflow(**{**base, **fields})


def _step(
    name: str, task_id: int, status: int, *depends_on: str, spawned_by: str = "", attempts: int = 1
) -> Any:
    return pb.WorkflowStepState(name=name, task_id=task_id, type="sleep", status=status,  # type: ignore[arg-type]
                                depends_on=depends_on, spawned_by=spawned_by, attempts=attempts)  # fmt: skip


def test_a_workflow_and_its_steps_as_dataclasses() -> None:
    steps = (_step("a", 12, pb.SUCCEEDED), _step("b", 13, pb.WAITING, "a", spawned_by="a", attempts=0))
    info = WorkflowInfo.from_proto(_workflow(), tuple(WorkflowStepInfo.from_proto(s) for s in steps))
    assert (info.id, info.name, info.status, info.created_by, info.finished_at) == (
        42, "etl", TaskStatus.RUNNING, "token ops", None,
    )  # fmt: skip
    assert info.created_at is not None
    assert info.created_at.isoformat() == "2026-12-01T07:00:00+00:00"
    assert info.step_counts == {TaskStatus.RUNNING: 1, TaskStatus.SUCCEEDED: 1, TaskStatus.WAITING: 2}
    assert info.steps[1] == WorkflowStepInfo("b", 13, "sleep", TaskStatus.WAITING, ("a",), "a", 0)
    assert info.steps[0].spawned_by is None
    assert not TaskStatus.WAITING.finished


def test_the_steps_column_and_the_counts() -> None:
    assert steps_text(_workflow()) == "1/4 succeeded"
    assert counts_text(_workflow()) == "4: 1 RUNNING, 1 SUCCEEDED, 2 WAITING"
    assert counts_text(_workflow(steps=0, step_counts={})) == "0"


# -- the tree of steps ------------------------------------------------------------------------------


def test_a_diamond_shows_its_join_under_its_first_parent_naming_the_other() -> None:
    steps = [
        _step("extract", 12, pb.SUCCEEDED),
        _step("left", 13, pb.RUNNING, "extract"),
        _step("right", 14, pb.QUEUED, "extract"),
        _step("load", 15, pb.WAITING, "left", "right"),
    ]
    assert step_tree(steps) == [
        "extract  task 12  SUCCEEDED",
        "├── left  task 13  RUNNING",
        "│   └── load  task 15  WAITING  (also after right)",
        "└── right  task 14  QUEUED",
    ]


def test_several_roots_spawned_children_and_a_step_waiting_for_them() -> None:
    steps = [
        _step("fetch", 1, pb.WAITING, "fetch/page-1", "fetch/page-2", attempts=1),
        _step("other", 2, pb.FAILED, attempts=3),
        _step("after-other", 3, pb.CANCELLED, "other"),
        _step("fetch/page-1", 4, pb.SUCCEEDED, spawned_by="fetch"),
        _step("fetch/page-2", 5, pb.RUNNING, spawned_by="fetch"),
        _step("merge", 6, pb.WAITING, "fetch", "fetch/page-1", "fetch/page-2"),
    ]
    assert step_tree(steps) == [
        "fetch  task 1  WAITING  (also after fetch/page-1, fetch/page-2)",
        "├── fetch/page-1  task 4  SUCCEEDED  (spawned)",
        "├── fetch/page-2  task 5  RUNNING  (spawned)",
        "└── merge  task 6  WAITING  (also after fetch/page-1, fetch/page-2)",
        "other  task 2  FAILED  (3 attempts)",
        "└── after-other  task 3  CANCELLED",
    ]


def test_a_long_chain_is_drawn_without_recursion_and_names_are_shown_literally() -> None:
    steps = [_step("s0", 1, pb.QUEUED)] + [
        _step(f"s{n}", n + 1, pb.WAITING, f"s{n - 1}") for n in range(1, 1500)
    ]
    lines = step_tree(steps)
    assert len(lines) == 1500
    assert lines[-1] == " " * 4 * 1498 + "└── s1499  task 1500  WAITING"
    assert step_tree([_step("evil\x1b[2J", 1, pb.QUEUED)]) == ["evil\\x1b[2J  task 1  QUEUED"]
