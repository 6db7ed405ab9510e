"""Authentication and authorization: tokens, roles, the table of who may call what, dashboard login."""

from taskservice.auth.principal import ANONYMOUS, Principal, current
from taskservice.auth.roles import ROLE_RIGHTS, Right, Role, Rule, rule
from taskservice.auth.secrets import new_secret, parse_duration, secret_hash

__all__ = [
    "ANONYMOUS",
    "ROLE_RIGHTS",
    "Principal",
    "Right",
    "Role",
    "Rule",
    "current",
    "new_secret",
    "parse_duration",
    "rule",
    "secret_hash",
]
