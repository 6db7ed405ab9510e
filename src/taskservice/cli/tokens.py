"""`task-cli token ...`: create, list and revoke API tokens.

With `--token` (or TASK_SERVICE_TOKEN) the commands go through the server, as an admin. Without one
they go straight to the database (DATABASE_URL, DB_*, or this machine's embedded PostgreSQL): that is
how the first admin token is made, and whoever can reach the database owns the service anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click
from google.protobuf.message import Message

from taskservice.cli.client import AUTH_SERVICE, call
from taskservice.cli.group import Group, global_value
from taskservice.cli.output import age, as_data, emit_data, is_machine, output_option, table
from taskservice.cli.run import load_settings_or_exit, run_async
from taskservice.gen.cloud.v1 import auth_pb2 as pb

if TYPE_CHECKING:  # the database side loads only when a command goes straight to the database
    from taskservice.store import Credentials, TokenRecord

T = TypeVar("T")
M = TypeVar("M", bound=Message)
COLUMNS = ("ID", "NAME", "ROLE", "STATE", "AGE", "EXPIRES", "LAST USED", "CREATED BY")


def _through_api(ctx: click.Context) -> bool:
    return bool(global_value(ctx, "token"))


def _api_call(ctx: click.Context, method: str, request: Message, response_type: type[M]) -> M:
    return call(ctx, lambda client: client.call(method, request, response_type, service=AUTH_SERVICE))


def _direct(work: Callable[[Credentials], Coroutine[Any, Any, T]]) -> T:
    """Run `work` on the service's database itself (no server involved)."""
    from taskservice.auth.tokens import BadTokenRequest
    from taskservice.db import migrate
    from taskservice.db.connect import create_pool
    from taskservice.store import Credentials, TokenNameTaken, TokenNotFound
    from taskservice.store.databases import database_url

    settings = load_settings_or_exit()
    if settings.configured_database_url is None and not (settings.embedded_data_dir / "PG_VERSION").exists():
        raise click.ClickException(
            "no database here to keep tokens in: set DATABASE_URL to the service's database, or pass "
            "--token <admin token> (TASK_SERVICE_TOKEN) to manage tokens through the server at --address"
        )
    url = database_url(settings)
    migrate.upgrade(url)

    async def run() -> T:
        pool = await create_pool(url, max_size=1)
        try:
            return await work(Credentials(pool))
        finally:
            await pool.close()

    try:
        result: T = run_async(run())
    except (BadTokenRequest, TokenNameTaken, TokenNotFound) as error:
        raise click.ClickException(str(error)) from None
    return result


def _message(record: TokenRecord) -> pb.ApiToken:
    from taskservice.api.auth_service import token_message

    return token_message(record, datetime.now(UTC))


@click.group(cls=Group)
def token() -> None:
    """API tokens: create (shown once), list, revoke.

    With --token (an admin's) through the server at --address; without, straight to the database.
    """


@token.command()
@click.option("--name", required=True, help="What the token is for (unique among live tokens).")
@click.option(
    "--role",
    required=True,
    type=click.Choice(["viewer", "operator", "admin", "agent"]),
    help="viewer: read; operator: create, cancel, retry; admin: everything; agent: a worker's needs.",
)
@click.option("--expires", default="", help="Lifetime such as 30d, 12h or 90m [default: never].")
@output_option
@click.pass_context
def create(ctx: click.Context, name: str, role: str, expires: str, output: str) -> None:
    """Create a token and print its secret, once: it is stored only as a hash."""
    from taskservice.auth.secrets import parse_duration

    try:
        seconds = parse_duration(expires) if expires else 0.0
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="'--expires'") from None
    if _through_api(ctx):
        request = pb.CreateTokenRequest(name=name, role=role, expires_in_seconds=seconds)
        response = _api_call(ctx, "CreateToken", request, pb.CreateTokenResponse)
    else:
        from taskservice.auth.tokens import issue

        record, secret = _direct(lambda creds: issue(creds, name, role, seconds, "task-cli (database)"))
        response = pb.CreateTokenResponse(token=_message(record), secret=secret)
    if is_machine(output):
        emit_data(as_data(response), output)
        return
    click.echo(response.secret)
    expiry = response.token.expires_at or "never"
    click.echo(
        f"Token {response.token.name!r} (id {response.token.id}, role {response.token.role}, "
        f"expires {expiry}). This is the only time it is shown: keep it in a secret store.",
        err=True,
    )


@token.command(name="list")
@output_option
@click.pass_context
def list_tokens(ctx: click.Context, output: str) -> None:
    """Every token, newest first (never their secrets)."""
    if _through_api(ctx):
        found = _api_call(ctx, "ListTokens", pb.ListTokensRequest(), pb.ListTokensResponse)
    else:
        found = pb.ListTokensResponse(
            tokens=[_message(r) for r in _direct(lambda creds: creds.list_tokens())]
        )
    if is_machine(output):
        emit_data(as_data(found), output)
        return
    wide = output == "wide"
    rows = [
        (t.id, t.name, t.role, t.state, t.created_at if wide else age(t.created_at), t.expires_at or "never",
         t.last_used_at if wide else age(t.last_used_at), t.created_by)
        for t in found.tokens
    ]  # fmt: skip
    table(COLUMNS if not wide else ("ID", "NAME", "ROLE", "STATE", "CREATED", "EXPIRES", "LAST USED",
                                    "CREATED BY"), rows, flexible=("NAME", "CREATED BY"))  # fmt: skip


@token.command()
@click.argument("name_or_id")
@click.pass_context
def revoke(ctx: click.Context, name_or_id: str) -> None:
    """Revoke a token by name or id: every server refuses it from now on."""
    by_id = int(name_or_id) if name_or_id.isdigit() else 0
    name = "" if by_id else name_or_id
    if _through_api(ctx):
        request = pb.RevokeTokenRequest(name=name, id=by_id)
        revoked = _api_call(ctx, "RevokeToken", request, pb.ApiToken)
    else:
        revoked = _message(_direct(lambda creds: creds.revoke_token(name=name, token_id=by_id)))
    click.echo(f"revoked token {revoked.name!r} (id {revoked.id})")
