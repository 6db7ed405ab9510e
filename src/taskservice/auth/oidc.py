"""Dashboard login with any OpenID Connect provider: authorization code flow with PKCE, server-side
sessions (in PostgreSQL, shared by every replica), logout, and the role from a claim or a default.

Routes under /auth/ (public in the access table): login sends the browser to the provider, callback
checks what comes back (state, PKCE, the ID token's signature, issuer, audience and nonce) and opens a
session, logout ends it.
"""

from __future__ import annotations

import base64
import json
import time
import warnings
from typing import Any

import httpx
import structlog
from authlib.common.security import generate_token
from authlib.deprecate import AuthlibDeprecationWarning
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from taskservice.auth.roles import Role
from taskservice.auth.sessions import end_session, local_path, open_session, secure
from taskservice.config import Settings

# authlib 1.9 warns on importing its httpx client unless the httpx2 package is installed; we call it
# with httpx on purpose (our errors are httpx's), so that one warning class is silenced, at its import.
# authlib.deprecate is imported first: it adds an "always" filter for the class at import time.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client

log = structlog.get_logger(__name__)

LOGIN_COOKIE = "taskservice_login"  # state, PKCE verifier and nonce of a login under way
LOGIN_SECONDS = 600
METADATA_SECONDS = 3600.0
LOGIN_ROLES = {Role.VIEWER, Role.OPERATOR, Role.ADMIN}  # a person is never an agent
LOGGED_OUT = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Logged out · taskservice</title>'
    '<script src="/static/theme.js"></script><link rel="stylesheet" href="/static/app.css"></head>'
    '<body><main class="logged-out">'
    '<h1>You are logged out</h1><p><a class="btn primary" href="/">Log in again</a></p></main></body></html>'
)


class LoginFailed(Exception):
    """The provider's answer does not hold up; the message is shown to the user."""


class OIDCLogin:
    """The login routes for one provider (OIDC_ISSUER), with sessions kept by `credentials()`."""

    def __init__(self, settings: Settings, credentials: Any) -> None:
        self.settings = settings
        self._credentials = credentials  # () -> Credentials | None, set once the server started
        self._metadata: dict[str, Any] = {}
        self._metadata_at = 0.0

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/auth/login", self.login, methods=["GET"]),
            Route("/auth/callback", self.callback, methods=["GET"]),
            Route("/auth/logout", self.logout, methods=["POST"]),
        ]

    # -- the provider ----------------------------------------------------------------------

    async def metadata(self) -> dict[str, Any]:
        if not self._metadata or time.monotonic() - self._metadata_at > METADATA_SECONDS:
            url = self.settings.oidc_issuer.rstrip("/") + "/.well-known/openid-configuration"
            async with httpx.AsyncClient(timeout=10) as client:
                response = await client.get(url)
                response.raise_for_status()
                self._metadata = response.json()
            self._metadata_at = time.monotonic()
        return self._metadata

    def _client(self, redirect_uri: str) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            client_id=self.settings.oidc_client_id,
            client_secret=self.settings.oidc_client_secret or None,
            scope=self.settings.oidc_scopes,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            timeout=10,
        )

    # -- the routes -------------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        target = local_path(request.query_params.get("next", "/"))
        try:
            metadata = await self.metadata()
        except (httpx.HTTPError, ValueError) as error:
            log.error("OIDC provider unreachable", issuer=self.settings.oidc_issuer, error=str(error))
            return PlainTextResponse("The login provider cannot be reached; try again later.", 503)
        state, verifier, nonce = generate_token(32), generate_token(64), generate_token(32)
        async with self._client(str(request.url_for("callback"))) as client:
            url, _ = client.create_authorization_url(
                metadata["authorization_endpoint"], state=state, code_verifier=verifier, nonce=nonce
            )
        response = RedirectResponse(url, status_code=303)
        pending = {"state": state, "verifier": verifier, "nonce": nonce, "next": target}
        response.set_cookie(
            LOGIN_COOKIE, base64.urlsafe_b64encode(json.dumps(pending).encode()).decode(),
            max_age=LOGIN_SECONDS, path="/auth/", httponly=True, samesite="lax",
            secure=secure(request, self.settings),
        )  # fmt: skip
        return response

    async def callback(self, request: Request) -> Response:
        try:
            subject, role, target = await self._finish_login(request)
        except LoginFailed as error:
            log.warning("dashboard login failed", reason=str(error))
            response: Response = PlainTextResponse(f"Login failed: {error}", status_code=403)
            response.delete_cookie(LOGIN_COOKIE, path="/auth/")
            return response
        response = await open_session(
            request, self.settings, self._credentials(), subject, role, target, "oidc"
        )
        response.delete_cookie(LOGIN_COOKIE, path="/auth/")
        return response

    async def logout(self, request: Request) -> Response:
        # A page of its own, not a redirect to the dashboard: the provider would log the browser
        # straight back in (single sign-on).
        return await end_session(request, self._credentials(), HTMLResponse(LOGGED_OUT))

    # -- checking what came back ------------------------------------------------------------

    async def _finish_login(self, request: Request) -> tuple[str, Role, str]:
        pending = _pending(request.cookies.get(LOGIN_COOKIE, ""))
        params = request.query_params
        if "error" in params:
            raise LoginFailed(f"the provider said {params['error']}: {params.get('error_description', '')}")
        if not params.get("state") or params.get("state") != pending.get("state"):
            raise LoginFailed("the login's state does not match; start again from the dashboard")
        code = params.get("code", "")
        if not code:
            raise LoginFailed("the provider sent no authorization code")
        try:
            metadata = await self.metadata()
            async with self._client(str(request.url_for("callback"))) as client:
                token = await client.fetch_token(
                    metadata["token_endpoint"], code=code, code_verifier=pending["verifier"]
                )
            claims = await self._id_token_claims(metadata, token, pending["nonce"])
        except (httpx.HTTPError, JoseError, ValueError, KeyError) as error:
            raise LoginFailed(
                f"the provider's answer does not hold up ({type(error).__name__}: {error})"
            ) from None
        subject = str(claims.get("email") or claims.get("preferred_username") or claims["sub"])
        return subject, self._role(claims), pending.get("next", "/")

    async def _id_token_claims(self, metadata: dict[str, Any], token: dict[str, Any], nonce: str) -> Any:
        if "id_token" not in token:
            raise ValueError("no ID token in the token response (is the openid scope asked for?)")
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(metadata["jwks_uri"])
            response.raise_for_status()
            keys = KeySet.import_key_set(response.json())
        algorithms = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        decoded = jwt.decode(token["id_token"], keys, registry=JWSRegistry(algorithms=algorithms))
        claims = CodeIDToken(
            decoded.claims,
            decoded.header,
            {"iss": {"values": [metadata["issuer"]]}},
            {
                "nonce": nonce,
                "client_id": self.settings.oidc_client_id,
                "access_token": token.get("access_token"),
            },
        )
        claims.validate(leeway=60)
        return claims

    def _role(self, claims: Any) -> Role:
        name = self.settings.oidc_role_claim
        claimed = claims.get(name) if name else None
        if isinstance(claimed, list):  # e.g. a groups claim: the strongest role listed
            known = [Role(c) for c in claimed if c in {r.value for r in LOGIN_ROLES}]
            order = [Role.ADMIN, Role.OPERATOR, Role.VIEWER]
            claimed = next((r.value for r in order if r in known), None)
        if isinstance(claimed, str) and claimed in {r.value for r in LOGIN_ROLES}:
            return Role(claimed)
        if self.settings.oidc_default_role:
            return Role(self.settings.oidc_default_role)
        raise LoginFailed(
            f"your account has no taskservice role (claim {name!r}) and OIDC_DEFAULT_ROLE is empty; "
            "ask an administrator"
        )


def _pending(cookie: str) -> dict[str, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cookie.encode()))
    except (ValueError, TypeError):
        data = None
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), str) for k in ("state", "verifier", "nonce")
    ):
        raise LoginFailed("no login is under way in this browser (cookies blocked, or it took too long)")
    return data
