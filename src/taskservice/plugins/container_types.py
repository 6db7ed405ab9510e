"""Container task types: declared in code (`container_task`) or in a file (TASK_CONTAINER_TYPES).

A container task type runs as a Kubernetes Job: the Kubernetes agent (`task-cli serve --kubernetes`)
publishes it and is the only one to claim it; the server renders each task's container (Task fields
11-14 and 125-127) from its declaration. In a registry it is an entry whose declaration carries a
`container`: `Registry.names()` (the types a worker or a plain agent claims) leaves it out, and its
plugin refuses to run (PermanentFailure) should anything call it all the same.

The Kubernetes agent asks `container_types(registry, settings)` for the types it serves: those of the
registry (declared in code, or an installed plugin's entry point) and those of the file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskservice.plugins import PermanentFailure, register_declared
from taskservice.plugins.containers import ContainerError, ContainerSpec
from taskservice.plugins.declare import TYPE_NAME_MAX, DeclarationError, ParameterSpec, TaskTypeSpec

if TYPE_CHECKING:
    from taskservice.config import Settings
    from taskservice.plugins import Registry

# A type's keys in the file (and container_task's arguments); `resources` holds requests and limits.
FILE_KEYS = (
    "image", "entrypoint", "args", "env", "resources", "service_account", "parameters", "timeout_seconds",
    "max_retries", "backoff_seconds", "description", "queue",
)  # fmt: skip
FILE_MAX_BYTES = 1024 * 1024


class ContainerTypeError(ValueError):
    """A container task type declared wrong: `type_name`, the `field` ("container.image",
    "parameters[0].type", "max_retries") and the `rule`."""

    def __init__(self, type_name: str, field: str, rule: str) -> None:
        super().__init__(f"container task type {type_name!r}: {field}: {rule}")
        self.type_name, self.field, self.rule = type_name, field, rule


class ContainerType:
    """A container task type: its name and declaration (`spec`, whose `container` is set). As a
    registry's plugin, it refuses to run: the Kubernetes agent and its controller run it."""

    def __init__(self, name: str, spec: TaskTypeSpec) -> None:
        if spec.container is None:
            raise ContainerTypeError(name, "container", "is required: a container task type runs an image")
        self.name, self.spec = name, spec

    @property
    def container(self) -> ContainerSpec:
        assert self.spec.container is not None  # checked when made
        return self.spec.container

    def declaration(self) -> dict[str, Any]:
        """Its declaration as published (PullEvents' declarations_json)."""
        return self.spec.to_json()

    def run(self, parameters: dict[str, str]) -> Any:
        raise PermanentFailure(
            f"task type {self.name!r} is a container task type: the Kubernetes agent runs it "
            "(task-cli serve --kubernetes), not a worker"
        )

    def __repr__(self) -> str:
        return f"<container task type {self.name!r}: {self.container.image}>"


def container_task(
    name: str,
    *,
    image: str,
    entrypoint: str = "",
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    resources: Mapping[str, Mapping[str, str]] | None = None,
    service_account: str = "",
    parameters: Sequence[ParameterSpec | Mapping[str, Any]] | Mapping[str, Mapping[str, Any]] | None = None,
    timeout_seconds: float | None = None,
    max_retries: int | None = None,
    backoff_seconds: float | None = None,
    description: str = "",
    queue: str | None = None,
) -> ContainerType:
    """Declare task type `name` as a container: the image (and command, args, env, resources, service
    account) a Kubernetes Job runs for each of its tasks; args and env values may name its parameters,
    `${name}` (`$$` is a dollar sign).

    `parameters` lists what its tasks take, each as a ParameterSpec or its JSON form ({"name": "width",
    "type": "integer", "required": true, ...}; or a mapping of name -> the rest); None: any parameters
    (what args and env name is then checked per task, when it is created). `resources` is
    {"requests": {"cpu": "500m", ...}, "limits": {...}}. `timeout_seconds` (the Job's deadline),
    `max_retries` and `backoff_seconds` are as `@task`'s. Every Registry of this process knows it from
    now on; only the Kubernetes agent runs it. ContainerTypeError names the field and the rule broken.
    """
    declared = container_type(
        name,
        {
            "image": image, "entrypoint": entrypoint, "args": list(args), "env": dict(env or {}),
            "resources": resources or {}, "service_account": service_account, "parameters": parameters,
            "timeout_seconds": timeout_seconds, "max_retries": max_retries,
            "backoff_seconds": backoff_seconds, "description": description, "queue": queue,
        },
    )  # fmt: skip
    register_declared(name, declared)
    return declared


def container_type(name: object, given: object) -> ContainerType:
    """A container task type from its file form (FILE_KEYS), checked: ContainerTypeError naming the
    type, the field and the rule."""
    if not isinstance(name, str) or not name.strip() or len(name) > TYPE_NAME_MAX or "\n" in name:
        raise ContainerTypeError(str(name), "name", f"must be 1 to {TYPE_NAME_MAX} characters on one line")
    if not isinstance(given, Mapping):
        raise ContainerTypeError(
            name, "", f"must be a mapping with at least an image (got {type(given).__name__})"
        )
    unknown = sorted(str(key) for key in given if key not in FILE_KEYS)
    if unknown:
        raise ContainerTypeError(
            name, unknown[0], f"is not a key of a container task type (its keys: {', '.join(FILE_KEYS)})"
        )
    resources = given.get("resources") or {}
    if not isinstance(resources, Mapping) or set(resources) - {"requests", "limits"}:
        raise ContainerTypeError(
            name, "resources", 'must be a mapping with "requests" and "limits" (each optional)'
        )
    parameters = given.get("parameters")
    try:
        container = ContainerSpec.from_json(
            {
                "image": given.get("image"),
                "entrypoint": given.get("entrypoint") or "",
                "args": given.get("args") or [],
                "env": given.get("env") or {},
                "resource_requests": resources.get("requests") or {},
                "resource_limits": resources.get("limits") or {},
                "service_account": given.get("service_account") or "",
            }
        )
    except ContainerError as error:
        raise ContainerTypeError(name, error.field, error.rule) from None
    data = {
        "description": given.get("description") or "",
        "parameters": _parameters(name, parameters),
        "extra_parameters": parameters is None,
        "max_retries": given.get("max_retries"),
        "timeout_seconds": given.get("timeout_seconds"),
        "backoff_seconds": given.get("backoff_seconds"),
        "queue": given.get("queue"),
        "container": container,
    }
    try:
        return ContainerType(name, TaskTypeSpec.checked(data))
    except DeclarationError as error:
        raise ContainerTypeError(name, error.field, error.rule) from None


def _parameters(type_name: str, given: object) -> list[Any]:
    """The parameters in the declaration's form: a list of objects, or a mapping of name -> the rest."""
    if given is None:
        return []
    if isinstance(given, Mapping):
        return [
            {"name": key, **value} if isinstance(value, Mapping) else value for key, value in given.items()
        ]
    if isinstance(given, str) or not isinstance(given, Sequence):
        rule = 'must be a list of parameters ({"name": ..., "type": ...}) or a mapping of name -> the rest'
        raise ContainerTypeError(type_name, "parameters", rule)
    return list(given)


def load_file(path: Path) -> dict[str, ContainerType]:
    """The container task types of a YAML or JSON file (type name -> its declaration, FILE_KEYS).
    ContainerTypesFileError, naming the file (and the type and field), when it cannot be read as one."""
    import yaml  # here: only the processes that read the file pay for it

    where = f"TASK_CONTAINER_TYPES ({path})"
    try:
        text = path.read_bytes()
    except OSError as error:
        raise ContainerTypesFileError(where, f"cannot be read: {error.strerror or error}") from None
    if len(text) > FILE_MAX_BYTES:
        raise ContainerTypesFileError(where, f"must be at most {FILE_MAX_BYTES} bytes")
    try:  # YAML reads JSON too; JSON first, for its clearer errors on a .json file
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as error:
        raise ContainerTypesFileError(
            where, f"is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {error}"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ContainerTypesFileError(
            where, "must be a mapping of task type name -> its container and declaration"
        )
    types = {}
    for name, given in data.items():
        try:
            types[str(name)] = container_type(name, given)
        except ContainerTypeError as error:
            raise ContainerTypesFileError(where, str(error)) from None
    return types


class ContainerTypesFileError(ValueError):
    """The file of container task types is wrong: the message names the file, the type and the field."""

    def __init__(self, where: str, rule: str) -> None:
        super().__init__(f"{where}: {rule}")


def container_types(registry: Registry, settings: Settings) -> dict[str, ContainerType]:
    """The container task types the Kubernetes agent serves: the registry's (declared with
    `container_task` in a module it imported, or an installed plugin's) and TASK_CONTAINER_TYPES's.

    ContainerTypesFileError when the file is wrong, or declares a type the code declares too (one
    place for each type: two would leave which one runs to chance).
    """
    declared = registry.container_types()
    path = settings.task_container_types
    if path is None:
        return declared
    from_file = load_file(path)
    both = sorted(set(declared) & set(from_file))
    if both:
        raise ContainerTypesFileError(
            f"TASK_CONTAINER_TYPES ({path})",
            f"declares {', '.join(both)}, declared in code too: declare each type in one place",
        )
    return {**declared, **from_file}
