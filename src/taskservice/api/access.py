"""The one access check: every request's credentials against the table of auth/roles.py.

ASGI middleware in front of every route, so it holds for the dashboard, /metrics and each RPC
protocol alike, and runs before a request body is read. Credentials are a bearer token
(`Authorization: Bearer tsk_...`) or the dashboard's session cookie, looked up in PostgreSQL and kept
a while by auth/cache.py, which forgets them when any is revoked: refused by every replica at once.
"""

from __future__ import annotations

from collections.abc import Callable
from http.cookies import CookieError, SimpleCookie
from urllib.parse import quote, urlsplit

import asyncpg
import structlog
from connectrpc.code import Code
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskservice.api.deadline import within_deadline
from taskservice.api.rejection import header, protocol, reject
from taskservice.auth import roles
from taskservice.auth.cache import CredentialCache
from taskservice.auth.principal import ANONYMOUS, Principal, set_current
from taskservice.auth.roles import Role, Rule
from taskservice.auth.secrets import SESSION_PREFIX, TOKEN_PREFIX, secret_hash, well_formed
from taskservice.auth.sessions import SESSION_COOKIE
from taskservice.store import Credentials, Holder

log = structlog.get_logger(__name__)

HOW_TO_AUTHENTICATE = (
    "send Authorization: Bearer <token> (task-cli: --token or TASK_SERVICE_TOKEN; "
    "an admin makes tokens with `task-cli token create`)"
)


# Sent when a request carried a token that this server, with auth off, did not check: a client that
# believes its token guards it is told so (task-cli and the Python client read it).
TOKEN_IGNORED = (b"task-token-ignored", b"auth is off on this server")


def _saying_token_ignored(send: Send) -> Send:
    async def send_with_header(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), TOKEN_IGNORED]}
        await send(message)

    return send_with_header


class Refusal(Exception):
    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class AccessControl:
    """Lets a request through only with the right its path needs; sets auth.current() for it."""

    def __init__(
        self,
        app: ASGIApp,
        credentials: Callable[[], Credentials | None],
        required: bool,
        metrics_public: bool = False,
        login_path: str | None = None,
        cache: CredentialCache | None = None,
    ) -> None:
        self.app, self._credentials = app, credentials
        self.required, self.metrics_public, self.login_path = required, metrics_public, login_path
        self.cache = cache or CredentialCache()  # disabled until its invalidation line is connected

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.required:
            set_current(ANONYMOUS)
            if scope["type"] == "http" and header(scope, b"authorization"):
                send = _saying_token_ignored(send)
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        rule = roles.rule(path, metrics_public=self.metrics_public)
        if rule.public:
            await self.app(scope, receive, send)
            return
        try:
            principal = await self._authenticate(scope, path)
            self._authorize(principal, rule, path)
        except Refusal as refusal:
            await self._refuse(scope, send, refusal, path)
            return
        set_current(principal)
        await self.app(scope, receive, send)

    async def _authenticate(self, scope: Scope, path: str) -> Principal:
        authorization = header(scope, b"authorization")
        if authorization:
            scheme, _, secret = authorization.partition(" ")
            if scheme.lower() != "bearer" or not secret.strip():
                raise Refusal(
                    Code.UNAUTHENTICATED,
                    f"the Authorization header must be Bearer <token>: {HOW_TO_AUTHENTICATE}",
                )
            secret = secret.strip()
            if not well_formed(secret, TOKEN_PREFIX):
                raise Refusal(Code.UNAUTHENTICATED, "that is not a taskservice token (they start with tsk_)")
            holder = await self._holder("token", secret)
            if holder is None:
                raise Refusal(Code.UNAUTHENTICATED, "the token is unknown, expired or revoked")
            return Principal(holder.name, Role(holder.role), "token")
        session = _cookie(scope, SESSION_COOKIE)
        if session and well_formed(session, SESSION_PREFIX):
            if path.startswith(roles.RPC_PREFIXES) and not _same_origin(scope):
                raise Refusal(
                    Code.PERMISSION_DENIED,
                    "a session cookie is accepted only from the dashboard's own origin "
                    "with a Connect-Protocol-Version header",
                )
            holder = await self._holder("session", session)
            if holder is not None:
                return Principal(holder.name, Role(holder.role), "session")
            raise Refusal(Code.UNAUTHENTICATED, "your dashboard session has ended; log in again")
        raise Refusal(Code.UNAUTHENTICATED, f"this server requires a token: {HOW_TO_AUTHENTICATE}")

    async def _holder(self, kind: str, secret: str) -> Holder | None:
        credentials = self._credentials()
        if credentials is None:
            raise Refusal(Code.UNAVAILABLE, "the server is starting; try again")
        digest = secret_hash(secret)
        known = self.cache.get(digest)
        if known is not None:
            return known
        generation = self.cache.generation()
        try:
            if kind == "token":
                holder = await within_deadline(credentials.token_holder(digest))
            else:
                holder = await within_deadline(credentials.session_holder(digest))
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            log.error("cannot check credentials: database unavailable", error=str(error))
            raise Refusal(Code.UNAVAILABLE, "the database is unavailable; try again") from None
        if holder is not None:
            self.cache.keep(digest, holder, generation)
        return holder

    @staticmethod
    def _authorize(principal: Principal, rule: Rule, path: str) -> None:
        what = path.rsplit("/", 1)[-1] or "the dashboard"
        if not rule.known:
            raise Refusal(Code.PERMISSION_DENIED, f"{what} is not in the access table (auth/roles.py)")
        if rule.right is not None and not principal.may(rule.right):
            holders = ", ".join(roles.roles_with(rule.right))
            raise Refusal(
                Code.PERMISSION_DENIED,
                f"{what} needs the right {rule.right.value!r}, which role {principal.role.value} "
                f"does not have (roles with it: {holders})",
            )

    async def _refuse(self, scope: Scope, send: Send, refusal: Refusal, path: str) -> None:
        browser_page = path == "/" and scope["method"] == "GET" and protocol(scope) == "connect"
        if browser_page and refusal.code == Code.UNAUTHENTICATED and self.login_path:
            location = f"{self.login_path}?next={quote(path)}"
            await send(
                {"type": "http.response.start", "status": 303, "headers": [(b"location", location.encode())]}
            )
            await send({"type": "http.response.body", "body": b""})
            return
        extra = (
            [(b"www-authenticate", b'Bearer realm="taskservice"')]
            if refusal.code == Code.UNAUTHENTICATED
            else []
        )
        await reject(scope, send, refusal.code, refusal.message, headers=extra)


def _cookie(scope: Scope, name: str) -> str:
    raw = header(scope, b"cookie")
    if not raw:
        return ""
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except CookieError:
        return ""
    morsel = jar.get(name)
    return morsel.value if morsel is not None else ""


def _same_origin(scope: Scope) -> bool:
    """Whether a cookie-carrying RPC comes from the dashboard's own page (CSRF defence).

    A custom header makes a cross-origin browser ask first (a CORS preflight, refused unless
    CORS_ORIGINS allows that origin), and Origin and Sec-Fetch-Site, which a page cannot forge,
    must say same origin when the browser sends them.
    """
    if not header(scope, b"connect-protocol-version"):
        return False
    origin = header(scope, b"origin")
    if origin and urlsplit(origin).netloc != header(scope, b"host"):
        return False
    return header(scope, b"sec-fetch-site") in ("", "same-origin")
