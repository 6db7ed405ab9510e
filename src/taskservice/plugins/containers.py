"""A container task type's container (`ContainerSpec`): its checks, its JSON form, its rendering.

A container task type runs as a Kubernetes Job (the Kubernetes agent and the controller) rather than
as a plugin: its declaration says the image, the command (`entrypoint`), the args and env, the
resources and the service account. Args and env values may name the task's parameters, `${name}`
(`$$` is a dollar sign): Python's `string.Template`, whose braced names may also hold `.` and `-`
(`${customer-id}`), as parameter names may. The server renders them for each task (Task fields
11-14 and 125-127); everything else is taken literally.

Pure: no I/O. Every rule broken raises ContainerError naming the field ("container.env['1X']") and the
rule, so that code, the file of container types and the API all say the same thing.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

IMAGE_MAX = 512
ENTRYPOINT_MAX = 4096
ARGS_MAX = 256  # how many
ARG_MAX = 16 * 1024  # characters each (and each env value)
ENV_MAX = 256  # how many
ENV_NAME_MAX = 256
RESOURCES_MAX = 16  # how many, in requests and in limits each
SERVICE_ACCOUNT_MAX = 253
JSON_KEYS = ("image", "entrypoint", "args", "env", "resource_requests", "resource_limits", "service_account")

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# The image reference grammar of the distribution project (docker/distribution reference), kept whole:
# [domain[:port]/]path[/path...][:tag][@digest].
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_PATH = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_IMAGE = re.compile(rf"(?:{_DOMAIN}/)?{_PATH}(?:/{_PATH})*(?::{_TAG})?(?:@{_DIGEST})?")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
# A resource's name: a Kubernetes qualified name, with an optional DNS subdomain prefix (nvidia.com/gpu).
_DNS_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = re.compile(rf"{_DNS_LABEL}(?:\.{_DNS_LABEL})*")
_RESOURCE_NAME = re.compile(
    rf"(?:{_DNS_LABEL}(?:\.{_DNS_LABEL})*/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]{{0,61}}[A-Za-z0-9])?"
)
# A Kubernetes quantity (resource.Quantity), not negative: a number, then a binary suffix (Ki..Ei), a
# decimal one (n, u, m, k, M, G, T, P, E) or an exponent.
_QUANTITY = re.compile(
    r"(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?"
)
_SUFFIXES = {
    **{s: Decimal(1024) ** (i + 1) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))},
    **{"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1)},
    **{s: Decimal(1000) ** (i + 1) for i, s in enumerate(("k", "M", "G", "T", "P", "E"))},
}


_WRITE = "write ${name} (a parameter), or $$ for a dollar sign"


class ContainerError(ValueError):
    """A rule of a container spec broken: `field` is where ("container.args[2]"), `rule` what."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field, self.rule = field, rule


class _Template(string.Template):
    # `${name}` may name any parameter: the names a declaration allows are not only identifiers.
    braceidpattern = r"[A-Za-z_][A-Za-z0-9_.-]*"


def references(text: str, where: str) -> set[str]:
    """The parameter names `text` names (`$name`, `${name}`); ContainerError for a `$` that is neither
    (`$$` is a dollar sign)."""
    names: set[str] = set()
    for match in _Template.pattern.finditer(text):
        if match.group("invalid") is not None:
            raise ContainerError(
                where,
                f"the $ at character {match.start() + 1} names no parameter: {_WRITE}",
            )
        name = match.group("named") or match.group("braced")
        if name:
            names.add(name)
    return names


def quantity(value: str) -> Decimal | None:
    """A Kubernetes quantity's value ("500m" -> 0.5, "1Gi" -> 1073741824), None when it is not one."""
    match = _QUANTITY.fullmatch(value)
    if match is None:
        return None
    suffix = match.group("suffix") or ""
    try:
        number = Decimal(match.group("number"))
        return number * Decimal(f"1{suffix}") if suffix[:1] in ("e", "E") else number * _SUFFIXES[suffix]
    except InvalidOperation:
        return None


def _text(where: str, value: object, limit: int, *, required: bool = False) -> str:
    if not isinstance(value, str):
        raise ContainerError(where, f"must be a string (got {type(value).__name__})")
    if required and not value.strip():
        raise ContainerError(where, "is required")
    if len(value) > limit:
        raise ContainerError(where, f"must be at most {limit} characters (got {len(value)})")
    return value


def _image(value: object) -> str:
    image = _text("container.image", value, IMAGE_MAX, required=True)
    if not _IMAGE.fullmatch(image):
        raise ContainerError(
            "container.image",
            f"must be an image reference such as registry.example.com/team/resize:1.2 (lowercase "
            f"repository, then an optional :tag and @digest; got {image!r})",
        )
    return image


def _entrypoint(value: object) -> str:
    entrypoint = _text("container.entrypoint", value, ENTRYPOINT_MAX)
    if _CONTROL.search(entrypoint):
        raise ContainerError("container.entrypoint", "must be one line without control characters")
    return entrypoint


def _args(value: object) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        raise ContainerError("container.args", f"must be a list of strings (got {type(value).__name__})")
    args = tuple(value)
    if len(args) > ARGS_MAX:
        raise ContainerError("container.args", f"must hold at most {ARGS_MAX} arguments (got {len(args)})")
    for i, arg in enumerate(args):
        _text(f"container.args[{i}]", arg, ARG_MAX)
        references(arg, f"container.args[{i}]")
    return args


def _mapping(where: str, value: object) -> Mapping[Any, Any]:
    if not isinstance(value, Mapping):
        raise ContainerError(where, f"must be a mapping of names to strings (got {type(value).__name__})")
    return value


def _env(value: object) -> dict[str, str]:
    env = _mapping("container.env", value)
    if len(env) > ENV_MAX:
        raise ContainerError("container.env", f"must hold at most {ENV_MAX} variables (got {len(env)})")
    for name, text in env.items():
        where = f"container.env[{name!r}]"
        if not isinstance(name, str) or not _ENV_NAME.fullmatch(name) or len(name) > ENV_NAME_MAX:
            raise ContainerError(
                where,
                f"must be named as Kubernetes allows: a letter or _, then letters, digits, _, . or - "
                f"(at most {ENV_NAME_MAX} characters)",
            )
        _text(where, text, ARG_MAX)
        references(text, where)
    return dict(env)


def _resources(where: str, value: object) -> dict[str, str]:
    resources = _mapping(where, value)
    if len(resources) > RESOURCES_MAX:
        raise ContainerError(where, f"must hold at most {RESOURCES_MAX} resources (got {len(resources)})")
    for name, amount in resources.items():
        at = f"{where}[{name!r}]"
        if not isinstance(name, str) or len(name) > SERVICE_ACCOUNT_MAX or not _RESOURCE_NAME.fullmatch(name):
            raise ContainerError(
                at, "must be a Kubernetes resource name such as cpu, memory or nvidia.com/gpu"
            )
        if isinstance(amount, bool) or not isinstance(amount, str | int | float):
            raise ContainerError(at, f"must be a quantity such as 500m, 256Mi or 2 (got {amount!r})")
        if quantity(str(amount)) is None:
            raise ContainerError(
                at,
                f"must be a Kubernetes quantity such as 500m, 256Mi, 1Gi or 2, not negative (got {amount!r})",
            )
    return {name: str(amount) for name, amount in resources.items()}


def _within_limits(requests: Mapping[str, str], limits: Mapping[str, str]) -> None:
    for name, requested in requests.items():
        if name in limits:
            low, high = quantity(requested), quantity(limits[name])
            if low is not None and high is not None and low > high:
                raise ContainerError(
                    f"container.resource_requests[{name!r}]",
                    f"must not exceed its limit {limits[name]} (got {requested})",
                )


def _service_account(value: object) -> str:
    account = _text("container.service_account", value, SERVICE_ACCOUNT_MAX)
    if account and not _DNS_SUBDOMAIN.fullmatch(account):
        raise ContainerError(
            "container.service_account",
            f"must be a DNS-1123 name: lowercase letters, digits, - and ., starting and ending with a "
            f"letter or digit (got {account!r})",
        )
    return account


@dataclass(frozen=True)
class ContainerSpec:
    """What a container task type runs (checked when made: ContainerError)."""

    image: str
    entrypoint: str = ""  # the container's command; empty: the image's own
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    resource_requests: Mapping[str, str] = field(default_factory=dict)  # e.g. cpu "500m", memory "256Mi"
    resource_limits: Mapping[str, str] = field(default_factory=dict)
    service_account: str = ""  # the Pod's; empty: the namespace's default

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: the checked (normalised) values replace the given ones
        set_(self, "image", _image(self.image))
        set_(self, "entrypoint", _entrypoint(self.entrypoint))
        set_(self, "args", _args(self.args))
        set_(self, "env", _env(self.env))
        set_(self, "resource_requests", _resources("container.resource_requests", self.resource_requests))
        set_(self, "resource_limits", _resources("container.resource_limits", self.resource_limits))
        set_(self, "service_account", _service_account(self.service_account))
        _within_limits(self.resource_requests, self.resource_limits)

    def __hash__(self) -> int:  # its mappings are not hashable; its JSON is (a declaration may be hashed)
        return hash(json.dumps(self.to_json(), sort_keys=True))

    def references(self) -> set[str]:
        """The parameters its args and env name."""
        named = {n for i, arg in enumerate(self.args) for n in references(arg, f"container.args[{i}]")}
        return named | {n for k, v in self.env.items() for n in references(v, f"container.env[{k!r}]")}

    def check_references(self, parameters: Collection[str]) -> None:
        """ContainerError when args or env name a parameter not in `parameters` (the declared ones)."""
        known = ", ".join(sorted(parameters)) or "none"
        for i, arg in enumerate(self.args):
            self._known(f"container.args[{i}]", arg, parameters, known)
        for name, text in self.env.items():
            self._known(f"container.env[{name!r}]", text, parameters, known)

    @staticmethod
    def _known(where: str, text: str, parameters: Collection[str], known: str) -> None:
        for name in sorted(references(text, where)):
            if name not in parameters:
                raise ContainerError(
                    where, f"names ${{{name}}}, not a parameter of the type (its parameters: {known})"
                )

    def render(self, values: Mapping[str, str], *, strict: bool = True) -> ContainerSpec:
        """This container with `values` put in its args and env (`$$` made `$`); ContainerError naming
        the first parameter it lacks (`strict` False: left as `${name}`)."""
        return _rendered(
            self,
            tuple(_render(f"container.args[{i}]", arg, values, strict) for i, arg in enumerate(self.args)),
            {
                name: _render(f"container.env[{name!r}]", text, values, strict)
                for name, text in self.env.items()
            },
        )

    def to_json(self) -> dict[str, Any]:
        """Its form in a type's declaration (the declarations workers and agents publish)."""
        return {
            "image": self.image,
            "entrypoint": self.entrypoint,
            "args": list(self.args),
            "env": dict(self.env),
            "resource_requests": dict(self.resource_requests),
            "resource_limits": dict(self.resource_limits),
            "service_account": self.service_account,
        }

    @classmethod
    def from_json(cls, data: object) -> ContainerSpec:
        """The spec of a declaration's "container" (keys it does not know are left: a newer version's);
        ContainerError for a broken rule."""
        if isinstance(data, ContainerSpec):
            return data
        if not isinstance(data, Mapping):
            raise ContainerError(
                "container", f"must be an object with at least an image (got {type(data).__name__})"
            )
        if "image" not in data:
            raise ContainerError("container.image", "is required")
        return cls(
            image=data["image"],
            entrypoint=data.get("entrypoint") or "",
            args=data.get("args") or (),
            env=data.get("env") or {},
            resource_requests=data.get("resource_requests") or {},
            resource_limits=data.get("resource_limits") or {},
            service_account=data.get("service_account") or "",
        )


def _render(where: str, text: str, values: Mapping[str, str], strict: bool) -> str:
    template = _Template(text)
    if not strict:
        return template.safe_substitute(values)
    try:
        return template.substitute(values)
    except KeyError as missing:
        raise ContainerError(where, f"names ${{{missing.args[0]}}}, which the task does not give") from None
    except ValueError:  # an invalid `$`: refused when the spec was made, so only a hand-made one
        raise ContainerError(
            where, "a $ names no parameter: write ${name}, or $$ for a dollar sign"
        ) from None


def _rendered(spec: ContainerSpec, args: tuple[str, ...], env: dict[str, str]) -> ContainerSpec:
    """`spec` with rendered args and env, not checked again (a rendered `$` is no template)."""
    rendered = object.__new__(ContainerSpec)
    for name, value in vars(spec).items():
        object.__setattr__(rendered, name, value)
    object.__setattr__(rendered, "args", args)
    object.__setattr__(rendered, "env", env)
    return rendered
