"""Task type declarations: `TaskTypeSpec`/`ParameterSpec`, checking parameters against one, `TypedTask`.

A declaration says which parameters a task type reads (name, type, required, default, description),
its retry policy (max retries, backoff, which errors are permanent) and its timeout. Workers publish
the declarations of the types they run (store `register_task_types`), so the server checks a new
task's parameters without importing the code that runs it; it stores them as JSON (`to_json`).

Parameters travel as strings (the API's `map<string, string>`): `ParameterSpec.parse` turns one into
its value, and the same rules answer at CreateTask (invalid_argument) and in the worker. The inverse,
`TypedTask.parameters`, turns a call's Python values into those strings, checked the same way.
"""

from __future__ import annotations

import enum
import functools
import inspect
import math
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Generic, Literal, ParamSpec, TypeVar

import annotated_types
import docstring_parser
import pydantic
from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from taskservice.model import (
    CONCURRENCY_MAX,
    LIMIT_KEY_MAX,
    QUEUE_NAME,
    SCHEDULE_NAME_MAX,
    Rate,
    cron_expression,
    every_seconds,
)
from taskservice.plugins import PermanentFailure
from taskservice.plugins.containers import ContainerError, ContainerSpec
from taskservice.plugins.context import TaskContext, current

ParameterType = Literal["string", "integer", "number", "boolean", "enum"]
TYPE_NAME_MAX = 255  # as CreateTask's `type`
_INTEGER = re.compile(r"[+-]?\d{1,30}")
_TRUE, _FALSE = frozenset({"true", "1", "yes", "on"}), frozenset({"false", "0", "no", "off"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
P = ParamSpec("P")
R = TypeVar("R")


class DeclarationError(ValueError):
    """A task type's declaration broke a rule: `field` ("parameters[0].type", "container.image")."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field, self.rule = field, rule


class ParameterError(ValueError):
    """A parameter broke its declaration; `name` is the parameter as given."""

    def __init__(self, name: str, rule: str) -> None:
        super().__init__(f"{name}: {rule}")
        self.name, self.rule = name, rule


def _email(value: str) -> None:
    # Here, not at the top: only a task type with an e-mail parameter pays for the import.
    from email_validator import EmailNotValidError, validate_email

    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError as error:
        raise ValueError(str(error)) from None


@dataclass(frozen=True)
class ParameterFormat:
    """What a string parameter's value must look like besides being a string."""

    rule: str  # "must be ...", as an error says it
    check: Callable[[str], None]  # raises ValueError saying what is wrong
    annotation: Any = None  # the Python type that declares it on a @task function's parameter


# Every format a parameter may declare, by the name its declaration gives (`ParameterSpec.format`).
# A format is added here, and only here (the dashboard's form may also pick an input for it).
FORMATS: dict[str, ParameterFormat] = {
    "email": ParameterFormat("must be an e-mail address", _email, EmailStr),
}


class ParameterSpec(BaseModel):
    """One parameter of a task type."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str
    type: ParameterType = "string"
    required: bool = False
    default: str | None = None  # as it would be sent (a string); None: no default
    description: str = ""
    choices: tuple[str, ...] = ()  # the values of an enum
    minimum: float | None = None  # integer and number: inclusive bounds
    maximum: float | None = None
    aliases: tuple[str, ...] = ()  # other names the parameter may be given by (one at a time)
    format: str = ""  # a string's format, a key of FORMATS ("email"); empty: any string

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: str, info: ValidationInfo) -> str:
        # A declaration read back from the database or an agent may come from a newer version with
        # formats this one does not know: it is kept, and left to the worker that runs it to check.
        published = bool(info.context and info.context.get("published"))
        if value and value not in FORMATS and not published:
            raise ValueError(f"unknown format {value!r}; known: {', '.join(sorted(FORMATS))}")
        return value

    def parse(self, raw: str, given_as: str | None = None) -> Any:
        """The value of `raw`, or ParameterError naming the parameter (as given) and the rule."""
        name = given_as or self.name
        text = raw.strip()
        if self.type == "string":
            form = FORMATS.get(self.format) if self.format else None
            if form is not None:
                try:
                    form.check(raw)
                except ValueError as error:
                    raise ParameterError(name, f"{form.rule} (got {raw!r}): {error}") from None
            return raw
        if self.type == "boolean":
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ParameterError(name, f"must be true or false (got {raw!r})")
        if self.type == "enum":
            if raw not in self.choices:
                raise ParameterError(name, f"must be one of {', '.join(self.choices)} (got {raw!r})")
            return raw
        return self._number(name, raw, text)

    def _number(self, name: str, raw: str, text: str) -> float:
        value: float
        if self.type == "integer":
            if not _INTEGER.fullmatch(text):
                raise ParameterError(name, f"must be an integer (got {raw!r})")
            value = int(text)
        else:
            try:
                value = float(text)
            except ValueError:
                raise ParameterError(name, f"must be a number (got {raw!r})") from None
            if not math.isfinite(value):
                raise ParameterError(name, f"must be a finite number (got {raw!r})")
        if self.minimum is not None and value < self.minimum:
            raise ParameterError(name, f"must be >= {self.minimum:g} (got {raw!r})")
        if self.maximum is not None and value > self.maximum:
            raise ParameterError(name, f"must be <= {self.maximum:g} (got {raw!r})")
        return value


class DeclaredSchedule(BaseModel):
    """A schedule a task type declares (`@task(..., cron=...)` or `schedules=[Cron(...), Every(...)]`):
    a worker running the type creates it, or updates it when its code changed it. `name` "" is the
    type's name."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str = Field("", max_length=SCHEDULE_NAME_MAX)
    cron: str | None = None
    timezone: str = "UTC"
    every: str | None = None  # a duration as written ("30m"): model.every_seconds reads it
    parameters: dict[str, str] = Field(default_factory=dict)
    overlap: Literal["allow", "skip"] = "allow"
    catchup: Literal["none", "last", "all"] = "none"

    @field_validator("cron")
    @classmethod
    def _a_cron_expression(cls, value: str | None) -> str | None:
        return None if value is None else cron_expression(value)

    @field_validator("every")
    @classmethod
    def _a_duration(cls, value: str | None) -> str | None:
        if value is not None:
            every_seconds(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _a_time_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"must be an IANA time zone such as UTC or Europe/Berlin (got {value!r})"
            ) from None
        return value

    @model_validator(mode="after")
    def _cron_or_every(self) -> DeclaredSchedule:
        if (self.cron is None) == (self.every is None):
            raise ValueError("a schedule has a cron expression or an interval (every), one of them")
        return self


class Cron(DeclaredSchedule):
    """`Cron("0 8 * * 1-5", timezone="Europe/Paris")`: a task at each tick of a cron expression (five
    fields, or @hourly, @daily...) in a time zone."""

    def __init__(self, expression: str, /, **options: Any) -> None:
        super().__init__(cron=expression, **options)


class Every(DeclaredSchedule):
    """`Every("30m", parameters={"region": "eu"})`: a task every so often ("30s", "5m", "2h", "1d")."""

    def __init__(self, duration: str, /, **options: Any) -> None:
        super().__init__(every=duration, **options)


def _container(value: object) -> ContainerSpec | None:
    if value is None:
        return None
    try:
        return ContainerSpec.from_json(value)
    except ContainerError as error:
        raise ValueError(str(error)) from None


def _container_json(value: ContainerSpec | None) -> dict[str, Any] | None:
    return None if value is None else value.to_json()


# A container task type's container (plugins/containers.py), as a declaration's "container" key.
Container = Annotated[ContainerSpec | None, PlainValidator(_container), PlainSerializer(_container_json)]


class TaskTypeSpec(BaseModel):
    """What a task type declares. Parameters it does not list are refused unless `extra_parameters`."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    description: str = ""
    parameters: tuple[ParameterSpec, ...] = ()
    extra_parameters: bool = False
    # Used when CreateTask does not say (instead of the server's MAX_RETRIES and TASK_TIME_OUT).
    max_retries: int | None = Field(None, ge=0, le=10)
    timeout_seconds: float | None = Field(None, gt=0, le=86_400)
    # The first retry's delay (instead of RETRY_BACKOFF_BASE); doubles per retry up to the cap.
    backoff_seconds: float | None = Field(None, ge=0, le=86_400)
    # The queue its tasks wait in when CreateTask does not say (instead of "default").
    queue: str | None = Field(None, pattern=rf"^{QUEUE_NAME.pattern}$")
    # Limits across every worker (store/limits.py): attempts running at once, and starts per period
    # ("5/s"), per value of the parameter `concurrency_key` when given, else for the type as a whole.
    concurrency: int | None = Field(None, ge=1, le=CONCURRENCY_MAX)
    concurrency_key: str | None = Field(None, min_length=1, max_length=LIMIT_KEY_MAX)
    rate_limit: str | None = None
    # Schedules its workers create (store/schedules.py; the scheduler reconciles them).
    schedules: tuple[DeclaredSchedule, ...] = ()
    # Errors that fail the task at once (besides PermanentFailure): the classes in this process,
    # their names in the published declaration.
    permanent: tuple[type[BaseException], ...] = Field((), exclude=True)
    permanent_errors: tuple[str, ...] = ()
    # Set: a container task type (plugins/container_types.py), run as a Kubernetes Job by the
    # Kubernetes agent and its controller, never by a worker's plugin.
    container: Container = None

    @field_validator("rate_limit")
    @classmethod
    def _a_rate(cls, value: str | None) -> str | None:
        return None if value is None else str(Rate.parse(value))

    @field_validator("concurrency_key")
    @classmethod
    def _a_parameter_name(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or _CONTROL.search(value)):
            raise ValueError("must name a parameter: no blanks only, no control characters")
        return value

    @field_validator("schedules")
    @classmethod
    def _distinct_names(cls, value: tuple[DeclaredSchedule, ...]) -> tuple[DeclaredSchedule, ...]:
        names = [schedule.name for schedule in value]
        if len(set(names)) != len(names):
            raise ValueError(f"each of a type's schedules needs its own name (got {names})")
        return value

    @model_validator(mode="after")
    def _container_names_parameters(self) -> TaskTypeSpec:
        # Only a type that lists its parameters (and takes no others) can be checked here; any other
        # is checked per task, when it is created (`container_for`).
        if self.container is not None and self.parameters and not self.extra_parameters:
            try:
                self.container.check_references({p.name for p in self.parameters})
            except ContainerError as error:
                raise ValueError(str(error)) from None
        return self

    def container_for(self, parameters: Mapping[str, str]) -> ContainerSpec | None:
        """The container of a task with these parameters (None: not a container type): its args and
        env rendered with them, a declared parameter by its name whichever alias gave it, its default
        when not given (or "" without one). ContainerError when it names a parameter it is not given.
        """
        if self.container is None:
            return None
        values = {key: raw for key, raw in parameters.items() if raw != ""}
        for spec in self.parameters:
            given = [parameters[n] for n in (spec.name, *spec.aliases) if parameters.get(n, "") != ""]
            values[spec.name] = given[0] if given else (spec.default or "")
        return self.container.render(values)

    def declares(self, name: str) -> bool:
        """Whether `name` is a parameter this type takes (by its name or an alias, or as an extra)."""
        return self.extra_parameters or any(name in (p.name, *p.aliases) for p in self.parameters)

    @functools.cached_property
    def _by_name(self) -> dict[str, ParameterSpec]:
        """Each declared parameter by its name and by each alias (made once: a spec is frozen)."""
        return {n: p for p in self.parameters for n in (p.name, *p.aliases)}

    def check(self, parameters: Mapping[str, str]) -> dict[str, Any]:
        """The declared parameters' values by name (plus extra ones as given, when allowed).

        An empty value counts as not given. Raises ParameterError for the first broken rule.
        """
        by_name = self._by_name
        values: dict[str, Any] = {}
        for key, raw in parameters.items():
            if key not in by_name:
                if not self.extra_parameters:
                    names = ", ".join(p.name for p in self.parameters) or "none"
                    rule = f"is not a parameter of this task type (its parameters: {names})"
                    raise ParameterError(key, rule)
                values[key] = raw
        for spec in self.parameters:
            given = [(n, parameters[n]) for n in (spec.name, *spec.aliases) if parameters.get(n, "") != ""]
            if not given:
                if spec.required:
                    also = f" (or {', '.join(spec.aliases)})" if spec.aliases else ""
                    raise ParameterError(spec.name, f"is required{also}")
                continue
            if len(given) > 1:
                raise ParameterError(spec.name, f"give one of {', '.join(n for n, _ in given)}, not several")
            name, raw = given[0]
            values[spec.name] = spec.parse(raw, name)
        return values

    def to_json(self) -> dict[str, Any]:
        # "container" only when there is one: the declarations of other types stay as they were.
        return self.model_dump(mode="json", exclude={"container"} if self.container is None else None)

    @classmethod
    def checked(cls, data: object, *, published: bool = False) -> TaskTypeSpec:
        """A declaration from its JSON form; DeclarationError naming the first field and rule it breaks.
        `published`: as workers and agents publish it (a newer version's formats are let through)."""
        try:
            return cls.model_validate(data, context={"published": published})
        except pydantic.ValidationError as error:
            raise DeclarationError(*first_problem(error)) from None

    @classmethod
    def from_json(cls, data: object) -> TaskTypeSpec | None:
        """A declaration as published, or None when it cannot be read (e.g. from a newer version)."""
        try:
            return cls.model_validate(data, context={"published": True})
        except pydantic.ValidationError:
            return None


def first_problem(error: pydantic.ValidationError) -> tuple[str, str]:
    """The first rule a declaration breaks, as (field, rule): "parameters[0].type", "must be ..."; a
    container's own name their field themselves ("container.env['1X']")."""
    problem = error.errors()[0]
    field = ".".join(str(part) if isinstance(part, str) else f"[{part}]" for part in problem["loc"])
    field = field.replace(".[", "[")
    message = str(problem["msg"]).removeprefix("Value error, ").replace("Input should be", "must be")
    message = "is required" if message == "Field required" else message
    for prefix in ("container.", "container:"):
        if message.startswith(prefix):  # the container's own check: it names its field itself
            found, _, rule = message.partition(": ")
            return found, rule
    return field or "declaration", message


# -- declaring a task type by a function's signature or a pydantic model ---------------------------


def _wire(value: object) -> str | None:
    """A Python default as it would be sent."""
    if value is None:
        return None
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _unwrap(hint: Any) -> tuple[Any, list[Any], bool]:
    """(the type, its Annotated metadata, whether None is allowed) of an annotation."""
    metadata: list[Any] = []
    if typing.get_origin(hint) is Annotated:
        hint, *metadata = typing.get_args(hint)
    optional = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        others = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(others) < len(typing.get_args(hint))
        if len(others) != 1:
            raise TypeError(f"{hint} is not supported: one type, or Optional of one")
        hint = others[0]
        if typing.get_origin(hint) is Annotated:
            hint, *more = typing.get_args(hint)
            metadata += more
    return hint, metadata, optional


def _kind(hint: Any) -> tuple[ParameterType, tuple[str, ...]]:
    if hint is inspect.Parameter.empty or hint is str or _format_of(hint):
        return "string", ()
    if hint is bool:  # before int: bool is an int
        return "boolean", ()
    if hint is int:
        return "integer", ()
    if hint is float:
        return "number", ()
    if inspect.isclass(hint) and issubclass(hint, enum.Enum):
        return "enum", tuple(str(member.value) for member in hint)
    raise TypeError(f"{hint!r} is not supported: str, int, float, bool, an Enum, or Optional of one")


def _format_of(hint: Any) -> str:
    """The format a parameter's annotation declares (EmailStr: "email"), else ""."""
    return next(
        (name for name, form in FORMATS.items() if form.annotation is not None and hint is form.annotation),
        "",
    )


def _bounds(metadata: list[Any]) -> tuple[float | None, float | None]:
    low = high = None
    for item in metadata:
        for constraint in item.metadata if isinstance(item, FieldInfo) else [item]:
            if isinstance(constraint, annotated_types.Ge):
                low = float(constraint.ge)  # type: ignore[arg-type]
            elif isinstance(constraint, annotated_types.Le):
                high = float(constraint.le)  # type: ignore[arg-type]
    return low, high


def _parameter(name: str, hint: Any, default: Any, described: str, metadata: list[Any]) -> ParameterSpec:
    try:
        base, more, optional = _unwrap(hint)
        kind, choices = _kind(base)
    except TypeError as error:
        raise TypeError(f"parameter {name}: {error}") from None
    metadata = [*more, *metadata]
    for item in metadata:
        if isinstance(item, str):
            described = item
        elif isinstance(item, FieldInfo) and item.description:
            described = item.description
    low, high = _bounds(metadata)
    missing = default is inspect.Parameter.empty or default is PydanticUndefined
    return ParameterSpec(
        name=name,
        type=kind,
        required=missing and not optional,
        default=None if missing else _wire(default),
        description=described,
        choices=choices,
        minimum=low,
        maximum=high,
        format=_format_of(base),
    )


def _is_context(name: str, hint: Any) -> bool:
    """A parameter annotated TaskContext (or Optional of it), or named ctx."""
    if name == "ctx":
        return True
    try:
        base, _, _ = _unwrap(hint)
    except TypeError:
        return False
    return base is TaskContext


def _sent(spec: ParameterSpec, value: object) -> str:
    """A Python value as the parameter is sent, refused (ParameterError) when it is not of its type."""
    kind = spec.type
    if isinstance(value, enum.Enum):
        value = value.value
    ok = {
        "string": isinstance(value, str),
        "boolean": isinstance(value, bool),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "enum": str(value) in spec.choices,
    }[kind]
    if not ok:
        wanted = {"string": "a string", "boolean": "true or false", "integer": "an integer",
                  "number": "a number", "enum": f"one of {', '.join(spec.choices)}"}[kind]  # fmt: skip
        raise ParameterError(spec.name, f"must be {wanted} (got {value!r})")
    wire = _wire(value)
    assert wire is not None  # None was left out before
    return wire


class TypedTask(Generic[P, R]):
    """A function declared as a task type (`taskservice.task` makes one): a plugin whose `run` checks
    and converts the parameters, then calls the function (in a thread when it is sync; the worker
    does that)."""

    def __init__(
        self,
        name: str,
        function: Callable[P, R],
        *,
        description: str | None,
        max_retries: int | None,
        timeout: float | None,
        backoff: float | None,
        permanent: tuple[type[BaseException], ...],
        queue: str | None = None,
        concurrency: int | None = None,
        concurrency_key: str | None = None,
        rate_limit: str | None = None,
        schedules: tuple[DeclaredSchedule, ...] = (),
    ) -> None:
        if not name.strip() or len(name) > TYPE_NAME_MAX or _CONTROL.search(name):
            raise ValueError(
                f"task type name {name!r}: 1 to {TYPE_NAME_MAX} characters, no control characters"
            )
        functools.update_wrapper(self, function)
        self.name, self.function = name, function
        self._context_name: str | None = None
        self._model: tuple[str, type[BaseModel]] | None = None
        self._enums: dict[str, dict[str, enum.Enum]] = {}
        hints = typing.get_type_hints(function, include_extras=True)
        documented = docstring_parser.parse(function.__doc__ or "")
        described = {p.arg_name: p.description or "" for p in documented.params}
        parameters: list[ParameterSpec] = []
        extra = False
        for p in inspect.signature(function).parameters.values():
            hint = hints.get(p.name, p.annotation)
            if p.kind is p.VAR_KEYWORD:
                extra = True
            elif p.kind in (p.VAR_POSITIONAL, p.POSITIONAL_ONLY):
                raise TypeError(f"@task {name}: parameter {p.name} must be one that can be given by name")
            elif _is_context(p.name, hint):
                self._context_name = p.name
            elif inspect.isclass(hint) and issubclass(hint, BaseModel):
                self._model = (p.name, hint)
                parameters += [
                    _parameter(field, info.annotation, info.default, info.description or "", info.metadata)
                    for field, info in hint.model_fields.items()
                ]
                extra = extra or hint.model_config.get("extra") == "allow"
                self._remember_enums(hint.model_fields.items())
            else:
                parameters.append(_parameter(p.name, hint, p.default, described.get(p.name, ""), []))
                self._remember_enums([(p.name, hint)])
        if self._model is not None and len(parameters) != len(self._model[1].model_fields):
            raise TypeError(f"@task {name}: a pydantic model parameter declares them all; take no others")
        self.spec = TaskTypeSpec(
            description=(documented.short_description or "") if description is None else description,
            parameters=tuple(parameters),
            extra_parameters=extra,
            max_retries=max_retries,
            timeout_seconds=timeout,
            backoff_seconds=backoff,
            queue=queue,
            concurrency=concurrency,
            concurrency_key=concurrency_key,
            rate_limit=rate_limit,
            schedules=schedules,
            permanent=permanent,
            permanent_errors=tuple(e.__qualname__ for e in permanent),
        )
        if concurrency_key is not None and not self.spec.declares(concurrency_key):
            raise TypeError(f"@task {name}: concurrency_key {concurrency_key!r} is not one of its parameters")
        self.run: Callable[..., Any] = (
            self._run_async if inspect.iscoroutinefunction(function) else self._run_sync
        )

    def _remember_enums(self, fields: Any) -> None:
        for field, hint in fields:
            annotation = hint.annotation if isinstance(hint, FieldInfo) else hint
            base, _, _ = _unwrap(annotation)
            if inspect.isclass(base) and issubclass(base, enum.Enum):
                self._enums[field] = {str(member.value): member for member in base}

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """The function itself: a declared task type stays callable as the function it was."""
        return self.function(*args, **kwargs)

    def parameters(self, *args: Any, **kwargs: Any) -> dict[str, str]:
        """The function's arguments (less its context) as the task's parameters are sent (strings):
        the inverse of `arguments`.

        Checked by the declaration as a worker would check them: ParameterError names the first
        parameter that breaks its rule. None (an Optional left out) is not sent.
        """
        signature = inspect.signature(self.function)
        taken = [p for p in signature.parameters.values() if p.name != self._context_name]
        try:
            bound = signature.replace(parameters=taken).bind(*args, **kwargs)
        except TypeError as error:
            raise ParameterError("parameters", str(error)) from None
        values: dict[str, Any] = {}
        for key, value in bound.arguments.items():
            if signature.parameters[key].kind is inspect.Parameter.VAR_KEYWORD:
                values.update(value)
            elif self._model is not None and key == self._model[0]:
                if not isinstance(value, self._model[1]):
                    raise ParameterError(key, f"must be a {self._model[1].__name__} (got {value!r})")
                values.update(value.model_dump())
            else:
                values[key] = value
        by_name = {p.name: p for p in self.spec.parameters}
        sent = {
            key: _sent(by_name[key], value) if key in by_name else str(value)
            for key, value in values.items()
            if value is not None
        }
        for key, value in values.items():
            if value is None and key in by_name and by_name[key].required:
                raise ParameterError(key, "is required (got None)")
        self.spec.check(sent)
        return sent

    def __repr__(self) -> str:
        return f"<task type {self.name!r}: {self.function.__qualname__}>"

    def arguments(self, parameters: Mapping[str, str], ctx: TaskContext | None) -> dict[str, Any]:
        """The function's keyword arguments for these parameters; PermanentFailure when they are bad
        (retrying cannot fix a parameter)."""
        try:
            values = self.spec.check(parameters)
        except ParameterError as error:
            raise PermanentFailure(str(error)) from None
        for field, members in self._enums.items():
            if field in values:
                values[field] = members[values[field]]
        if self._model is not None:
            argument, model = self._model
            try:
                values = {argument: model.model_validate(values)}
            except pydantic.ValidationError as error:
                raise PermanentFailure(f"parameters: {error}") from None
        if self._context_name is not None:
            values[self._context_name] = ctx if ctx is not None else current()
        return values

    def _run_sync(self, parameters: Mapping[str, str], ctx: TaskContext | None = None) -> Any:
        function: Callable[..., Any] = self.function  # called by the names `arguments` gives
        return _plain(function(**self.arguments(parameters, ctx)))

    async def _run_async(self, parameters: Mapping[str, str], ctx: TaskContext | None = None) -> Any:
        function: Callable[..., Any] = self.function
        return _plain(await function(**self.arguments(parameters, ctx)))


def _plain(result: Any) -> Any:
    """A pydantic model's result as JSON-able data (the attempt stores JSON)."""
    return result.model_dump(mode="json") if isinstance(result, BaseModel) else result
