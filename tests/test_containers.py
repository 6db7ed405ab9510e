"""A container task type's container spec (plugins/containers.py): its rules, each refused with the field
and the rule; its JSON form both ways; rendering with a task's parameters."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from taskservice.plugins.containers import ContainerError, ContainerSpec, quantity

FULL: dict[str, Any] = {
    "image": "ghcr.io/acme/resize:1.2",
    "entrypoint": "python",
    "args": ["-m", "resize", "--width=${width}", "$$HOME", "${customer-id}"],
    "env": {"WIDTH": "${width}px", "LOG_LEVEL": "info", "app.mode": "batch"},
    "resource_requests": {"cpu": "500m", "memory": "256Mi"},
    "resource_limits": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "1"},
    "service_account": "resizer",
}


def test_the_json_form_goes_both_ways() -> None:
    spec = ContainerSpec.from_json(FULL)
    assert spec.to_json() == FULL
    assert ContainerSpec.from_json(spec.to_json()) == spec
    assert ContainerSpec.from_json({"image": "busybox"}).to_json() == {
        "image": "busybox", "entrypoint": "", "args": [], "env": {}, "resource_requests": {},
        "resource_limits": {}, "service_account": "",
    }  # fmt: skip
    # A newer version's keys are left, not refused.
    assert ContainerSpec.from_json({**FULL, "node_selector": {"a": "b"}}) == spec


@pytest.mark.parametrize(
    "image",
    ["busybox", "python:3.12-slim", "localhost:5000/team/resize:latest", "ghcr.io/a/b/c@sha256:" + "0" * 64],
)
def test_image_references(image: str) -> None:
    assert ContainerSpec(image).image == image


@pytest.mark.parametrize(
    ("given", "field", "rule"),
    [
        ({}, "container.image", "is required"),
        ({"image": ""}, "container.image", "is required"),
        ({"image": "Busybox"}, "container.image", "must be an image reference"),
        ({"image": "busy box"}, "container.image", "must be an image reference"),
        ({"image": "busybox:"}, "container.image", "must be an image reference"),
        ({"image": "x" * 600}, "container.image", "at most 512 characters"),
        ({"image": 7}, "container.image", "must be a string"),
        ({"entrypoint": "a\nb"}, "container.entrypoint", "one line"),
        ({"args": "run"}, "container.args", "must be a list of strings"),
        ({"args": ["x"] * 300}, "container.args", "at most 256 arguments"),
        ({"args": ["ok", 3]}, "container.args[1]", "must be a string"),
        ({"args": ["ok", "cost: $5"]}, "container.args[1]", "the $ at character 7 names no parameter"),
        ({"env": ["A=1"]}, "container.env", "must be a mapping"),
        ({"env": {"1X": "a"}}, "container.env['1X']", "must be named as Kubernetes allows"),
        ({"env": {"A B": "a"}}, "container.env['A B']", "must be named as Kubernetes allows"),
        ({"env": {"A": 1}}, "container.env['A']", "must be a string"),
        ({"env": {"A": "${"}}, "container.env['A']", "names no parameter"),
        ({"env": {f"V{i}": "" for i in range(300)}}, "container.env", "at most 256 variables"),
        ({"resource_requests": {"cpu": "-1"}}, "container.resource_requests['cpu']", "Kubernetes quantity"),
        (
            {"resource_limits": {"memory": "1GB"}},
            "container.resource_limits['memory']",
            "Kubernetes quantity",
        ),
        ({"resource_limits": {"Bad Name": "1"}}, "container.resource_limits['Bad Name']", "resource name"),
        ({"resource_limits": {"cpu": True}}, "container.resource_limits['cpu']", "must be a quantity"),
        (
            {"resource_requests": {"cpu": "2"}, "resource_limits": {"cpu": "1500m"}},
            "container.resource_requests['cpu']",
            "must not exceed its limit 1500m",
        ),
        ({"service_account": "Task_Runner"}, "container.service_account", "DNS-1123"),
        ({"service_account": "-runner"}, "container.service_account", "DNS-1123"),
    ],
)
def test_each_rule_names_the_field(given: dict[str, Any], field: str, rule: str) -> None:
    data = {"image": "busybox", **given} if "image" not in given and given else given
    with pytest.raises(ContainerError) as raised:
        ContainerSpec.from_json(data)
    assert raised.value.field == field
    assert rule in raised.value.rule
    assert str(raised.value).startswith(f"{field}: ")


def test_not_an_object() -> None:
    with pytest.raises(ContainerError, match=r"^container: must be an object"):
        ContainerSpec.from_json(["busybox"])


def test_rendering_puts_the_parameters_in_args_and_env() -> None:
    spec = ContainerSpec.from_json(FULL)
    assert spec.references() == {"width", "customer-id"}
    rendered = spec.render({"width": "128", "customer-id": "42", "unused": "x"})
    assert rendered.args == ("-m", "resize", "--width=128", "$HOME", "42")
    assert rendered.env == {"WIDTH": "128px", "LOG_LEVEL": "info", "app.mode": "batch"}
    # What is not templated is as declared.
    assert (rendered.image, rendered.entrypoint, rendered.service_account) == (
        spec.image, spec.entrypoint, spec.service_account,
    )  # fmt: skip
    assert rendered.resource_limits == spec.resource_limits
    assert spec.args[2] == "--width=${width}"  # the declared spec is left as it was


def test_a_missing_parameter_is_a_clear_error() -> None:
    spec = ContainerSpec.from_json(FULL)
    with pytest.raises(ContainerError) as raised:
        spec.render({"width": "128"})
    assert raised.value.field == "container.args[4]"
    assert raised.value.rule == "names ${customer-id}, which the task does not give"


def test_references_to_undeclared_parameters() -> None:
    spec = ContainerSpec.from_json(FULL)
    spec.check_references({"width", "customer-id"})
    with pytest.raises(ContainerError) as raised:
        spec.check_references({"width", "height"})
    assert raised.value.field == "container.args[4]"
    assert (
        "names ${customer-id}, not a parameter of the type (its parameters: height, width)"
        in raised.value.rule
    )


@pytest.mark.parametrize(
    ("text", "value"),
    [("500m", "0.5"), ("1Gi", "1073741824"), ("2", "2"), ("1.5", "1.5"), ("1e3", "1000"), ("128k", "128000")],
)
def test_quantities(text: str, value: str) -> None:
    assert quantity(text) == Decimal(value)


@pytest.mark.parametrize("text", ["", "abc", "-1", "1GB", "1 Gi", "Mi"])
def test_not_quantities(text: str) -> None:
    assert quantity(text) is None
