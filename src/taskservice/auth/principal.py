"""Who is making the current request, as the access check found it (a context variable)."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from taskservice.auth.roles import ROLE_RIGHTS, Right, Role


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    kind: str  # token, session, or anonymous (auth is off)

    def may(self, right: Right) -> bool:
        return right in ROLE_RIGHTS[self.role]

    @property
    def registrant(self) -> str | None:
        """Who this caller is as the registrant of the agents it runs (workers.principal): its kind
        and name, or None with auth off (then every caller is the same one)."""
        return None if self.kind == "anonymous" else f"{self.kind}:{self.name}"


# With auth off everyone may do everything, as before.
ANONYMOUS = Principal("anonymous", Role.ADMIN, "anonymous")

_current: ContextVar[Principal] = ContextVar("principal", default=ANONYMOUS)


def current() -> Principal:
    """The caller of the RPC being served (set by the access check before the handler runs)."""
    return _current.get()


def set_current(principal: Principal) -> None:
    _current.set(principal)
