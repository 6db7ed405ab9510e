"""Dashboard sessions: opened by a login (OIDC or an API token), kept in PostgreSQL, ended by logout.

The cookie holds a random secret; PostgreSQL keeps only its SHA-256 with the person and the role, so
every replica knows the session and a logout ends it everywhere at once.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import structlog
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from taskservice.auth.roles import Role
from taskservice.auth.secrets import SESSION_PREFIX, new_secret, secret_hash, well_formed
from taskservice.config import Settings
from taskservice.store import Credentials

log = structlog.get_logger(__name__)

SESSION_COOKIE = "taskservice_session"


def secure(request: Request, settings: Settings) -> bool:
    """Whether the cookie may travel over TLS only: served over https, here or at a TLS proxy."""
    return request.url.scheme == "https" or settings.tls_cert_file is not None


async def open_session(
    request: Request,
    settings: Settings,
    credentials: Credentials | None,
    subject: str,
    role: Role,
    target: str,
    how: str,
) -> Response:
    """Start a session for `subject` with `role` and send the browser on to `target`."""
    if credentials is None:
        return PlainTextResponse("The server is starting; try again.", 503)
    secret = new_secret(SESSION_PREFIX)
    seconds = settings.session_hours * 3600
    await credentials.create_session(secret_hash(secret), subject, role.value, seconds)
    log.info("dashboard login", subject=subject, role=role.value, how=how)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE, secret, max_age=int(seconds), path="/", httponly=True, samesite="lax",
        secure=secure(request, settings),
    )  # fmt: skip
    return response


def from_another_site(request: Request) -> bool:
    """Whether a browser says this form was posted from another site's page (a CSRF attempt).

    Browsers send Origin with every POST; a client without one (a script) is not a browser being
    tricked, so only an Origin naming another host is refused.
    """
    origin = request.headers.get("origin")
    return bool(origin) and urlsplit(origin).netloc != request.headers.get("host")


async def end_session(request: Request, credentials: Credentials | None, response: Response) -> Response:
    """End the browser's session (on every replica) and clear its cookie on `response`; refused (403)
    when posted from another site, which would log people out behind their back."""
    if from_another_site(request):
        return PlainTextResponse("Logging out only works from this server's own page.", 403)
    secret = request.cookies.get(SESSION_COOKIE, "")
    if secret and well_formed(secret, SESSION_PREFIX) and credentials is not None:
        await credentials.delete_session(secret_hash(secret))
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def local_path(target: str) -> str:
    """Where to go after the login: a path on this server only (no open redirect)."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target
