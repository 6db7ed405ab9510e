"""Dashboard login with an API token, for servers without an OpenID Connect provider.

With auth on and no OIDC_ISSUER, the dashboard would otherwise be closed to people: the login page
takes a token (made with `task-cli token create`) and opens a session with the token's name and role.
The token itself is not kept in the browser; logging out ends the session, not the token.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from taskservice.auth.roles import Role
from taskservice.auth.secrets import TOKEN_PREFIX, secret_hash, well_formed
from taskservice.auth.sessions import end_session, from_another_site, local_path, open_session
from taskservice.config import Settings
from taskservice.store import Credentials

FORM_MAX_BYTES = 4096
PERSON_ROLES = {Role.VIEWER.value, Role.OPERATOR.value, Role.ADMIN.value}  # a person is never an agent

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Log in · taskservice</title><script src="/static/theme.js"></script>
<link rel="stylesheet" href="/static/app.css"></head>
<body><main class="logged-out">
<h1>Log in to taskservice</h1>
<p class="muted">Paste an API token (an administrator makes one with
<code>task-cli token create --name NAME --role viewer</code>).</p>
{error}
<form method="post" action="/auth/login">
<input type="hidden" name="next" value="{target}">
<label for="token">API token</label>
<input id="token" name="token" type="password" autocomplete="off" required placeholder="tsk_…">
<button class="btn primary" type="submit">Log in</button>
</form></main></body></html>"""


def _page(target: str, error: str = "", status: int = 200) -> HTMLResponse:
    shown = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    return HTMLResponse(_PAGE.format(error=shown, target=html.escape(target, quote=True)), status)


class TokenLogin:
    """GET /auth/login shows the form; POST /auth/login trades a token for a session; POST /auth/logout."""

    def __init__(self, settings: Settings, credentials: Callable[[], Credentials | None]) -> None:
        self.settings, self._credentials = settings, credentials

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/auth/login", self.form, methods=["GET"]),
            Route("/auth/login", self.login, methods=["POST"]),
            Route("/auth/logout", self.logout, methods=["POST"]),
        ]

    async def form(self, request: Request) -> Response:
        return _page(local_path(request.query_params.get("next", "/")))

    async def login(self, request: Request) -> Response:
        # A form posted from another site would log this browser in as someone else (login CSRF).
        if from_another_site(request):
            return _page("/", "This form only works from this server's own page.", 403)
        body = await request.body()
        if len(body) > FORM_MAX_BYTES:
            return _page("/", "That is not a token.", 400)
        fields = parse_qs(body.decode(errors="replace"))
        target = local_path(fields.get("next", ["/"])[0])
        token = fields.get("token", [""])[0].strip()
        credentials = self._credentials()
        if not well_formed(token, TOKEN_PREFIX) or credentials is None:
            return _page(target, "That is not a taskservice token (they start with tsk_).", 401)
        holder = await credentials.token_holder(secret_hash(token))
        if holder is None:
            return _page(target, "The token is unknown, expired or revoked.", 401)
        if holder.role not in PERSON_ROLES:
            return _page(target, f"A {holder.role} token is for programs; log in with a person's token.", 403)
        subject = f"token {holder.name}"
        return await open_session(
            request, self.settings, credentials, subject, Role(holder.role), target, "token"
        )

    async def logout(self, request: Request) -> Response:
        return await end_session(request, self._credentials(), RedirectResponse("/auth/login", 303))
