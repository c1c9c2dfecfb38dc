"""`medicus admin ...`: commands operators script. Each prints the new id, or JSON with --json;
a refused request ends with one sentence and exit code 1. What a command needs beyond typer and
the role names is imported when it runs, so that `--help` answers at once."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
import typer

from medicus.audit.actors import OPERATOR
from medicus.iam.roles import MfaPolicy, OrganisationType, Role

if TYPE_CHECKING:
    from medicus.core.db import Database
    from medicus.iam.keys import SigningKeys
    from medicus.iam.service import IdentityService
    from medicus.iam.upstream import UpstreamLogins
    from medicus.settings import Settings

T = TypeVar("T")


class AdminContext:
    """What the admin commands need, opened per command by the composition root."""

    def __init__(
        self,
        database: Database,
        identity: IdentityService,
        keys: SigningKeys,
        upstream: UpstreamLogins,
    ) -> None:
        self.database = database
        self.identity = identity
        self.keys = keys
        self.upstream = upstream


OpenAdminContext = Callable[[], AbstractAsyncContextManager[AdminContext]]
LoadSettings = Callable[[], "Settings"]


def _run(open_context: OpenAdminContext, work: Callable[[AdminContext], Awaitable[T]]) -> T:
    from medicus.iam.passwords import PasswordRejected
    from medicus.iam.scopes import ScopeError
    from medicus.iam.service import AdministrationError

    async def run() -> T:
        async with open_context() as context:
            return await work(context)

    try:
        return asyncio.run(run())
    except (AdministrationError, PasswordRejected, ScopeError) as error:
        typer.echo(f"medicus: {error}", err=True)
        raise typer.Exit(1) from None


def _print(result: dict[str, Any], as_json: bool, key: str) -> None:
    typer.echo(orjson.dumps(result).decode() if as_json else str(result[key]))


_AS_JSON = typer.Option(False, "--json", help="Print JSON instead of the bare id.")


def build_cli(open_context: OpenAdminContext, load_settings: LoadSettings) -> typer.Typer:
    cli = typer.Typer(
        help="Administer organisations, users and OAuth clients.",
        no_args_is_help=True,
        rich_markup_mode=None,
    )
    _add_member_commands(cli, open_context)
    _add_login_commands(cli, open_context)
    _add_token_command(cli, load_settings)

    @cli.command("rotate-keys")
    def rotate_keys(as_json: bool = _AS_JSON) -> None:
        """Retire the token-signing key and create a new one; prints the new key id.
        Tokens signed by the old key stay valid until they expire."""

        async def work(context: AdminContext) -> str:
            return await context.keys.rotate()

        _print({"kid": _run(open_context, work)}, as_json, "kid")

    return cli


def _add_member_commands(cli: typer.Typer, open_context: OpenAdminContext) -> None:
    """Organisations, and the people who work for them."""

    @cli.command("create-org")
    def create_org(
        name: str,
        kind: OrganisationType = typer.Option(..., "--type", help="Kind of organisation."),
        iknr: str | None = typer.Option(None, help="IK number (9 digits)."),
        telematik_id: str | None = typer.Option(None, help="Telematik-ID."),
        mfa_policy: MfaPolicy = typer.Option(MfaPolicy.CLINICAL, help="Who must use 2FA."),
        as_json: bool = _AS_JSON,
    ) -> None:
        """Create an organisation (tenant); prints its id."""

        async def work(context: AdminContext) -> str:
            async with context.database.transaction() as session:
                return await context.identity.create_organisation(
                    session, OPERATOR, name, kind, iknr, telematik_id, mfa_policy
                )

        _print({"id": _run(open_context, work), "name": name}, as_json, "id")

    @cli.command("create-user")
    def create_user(
        email: str,
        org: str = typer.Option(..., help="Organisation: id, IK number or exact name."),
        role: Role = typer.Option(..., help="Role at that organisation."),
        name: str | None = typer.Option(None, help="Display name (default: the e-mail)."),
        password_stdin: bool = typer.Option(False, help="Read a password from standard input."),
        as_json: bool = _AS_JSON,
    ) -> None:
        """Create a user (or add a membership to an existing one); prints the user's id."""
        password = sys.stdin.readline().rstrip("\n") if password_stdin else None

        async def work(context: AdminContext) -> dict[str, Any]:
            async with context.database.transaction() as session:
                organisation = await context.identity.organisation(session, org)
                user = await context.identity.ensure_user(session, OPERATOR, email, name or email)
                await context.identity.ensure_membership(
                    session, OPERATOR, user.id, organisation.id, role
                )
                if password is not None:
                    await context.identity.set_password(session, OPERATOR, user.id, password)
            return {"id": user.id, "created": user.created, "organisation": organisation.id}

        _print(_run(open_context, work), as_json, "id")


def _add_login_commands(cli: typer.Typer, open_context: OpenAdminContext) -> None:
    """How software and people log in: OAuth clients, a hospital's own identity
    provider."""

    @cli.command("create-client")
    def create_client(
        name: str,
        org: str = typer.Option(..., help="Organisation: id, IK number or exact name."),
        scope: str = typer.Option(..., help='Scopes it may get, e.g. "system/*.rs".'),
        jwks_file: Path | None = typer.Option(
            None, help="Public JWKS of a backend service (private_key_jwt)."
        ),
        redirect_uri: list[str] = typer.Option(
            [], help="Redirect URI of a public app (repeatable)."
        ),
        as_json: bool = _AS_JSON,
    ) -> None:
        """Register an OAuth client: a backend service with --jwks-file, or a public app
        (authorization code with PKCE) with --redirect-uri; prints its client_id."""
        jwks = _read_jwks(jwks_file) if jwks_file is not None else None

        async def work(context: AdminContext) -> str:
            async with context.database.transaction() as session:
                organisation = await context.identity.organisation(session, org)
                return await context.identity.create_client(
                    session, OPERATOR, name, organisation.id, scope, jwks, redirect_uri
                )

        _print({"client_id": _run(open_context, work), "name": name}, as_json, "client_id")

    @cli.command("set-upstream-idp")
    def set_upstream_idp(
        org: str = typer.Argument(..., help="Organisation: id, IK number or exact name."),
        issuer: str = typer.Option(..., help="Issuer URL of the hospital's OIDC provider."),
        client_id: str = typer.Option(..., help="medicus's client id at that provider."),
        client_secret_stdin: bool = typer.Option(
            False, help="Read a client secret from standard input (else PKCE only)."
        ),
        trust_upstream_mfa: bool = typer.Option(
            False, help="Accept the hospital's second factor instead of medicus's."
        ),
        as_json: bool = _AS_JSON,
    ) -> None:
        """Let the organisation's people log in through its own OpenID Connect provider.
        Register `<public URL>/login/upstream/callback` as redirect URI there."""
        secret = sys.stdin.readline().rstrip("\n") if client_secret_stdin else None

        async def work(context: AdminContext) -> str:
            async with context.database.transaction() as session:
                organisation = await context.identity.organisation(session, org)
            await context.upstream.configure(
                organisation.id, issuer, client_id, secret, trust_upstream_mfa, OPERATOR
            )
            return organisation.id

        _print(
            {"organisation": _run(open_context, work), "issuer": issuer}, as_json, "organisation"
        )


def _add_token_command(cli: typer.Typer, load_settings: LoadSettings) -> None:
    """A backend client's access token, for scripts and development."""

    @cli.command("token")
    def token(
        client: str = typer.Option(..., help="client_id of a backend client."),
        scope: str = typer.Option(
            "system/*.cruds", help="Scopes to ask for; the token gets those the client has."
        ),
        key: Path | None = typer.Option(
            None,
            help="The client's private JWK [default: $MEDICUS_DATA_DIR/keys/clients/CLIENT.jwk,"
            " where `medicus demo` puts its client's key].",
        ),
    ) -> None:
        """Get an access token from the running server for a backend client whose private key
        you hold, as the client itself would (private_key_jwt, client credentials); prints
        only the token, for scripts and development:
        curl -H "Authorization: Bearer $(medicus admin token --client ID)" URL/fhir/Patient"""
        from medicus.iam import client_keys

        settings = load_settings()
        key = key or client_keys.key_path(settings.data_dir, client)
        try:
            private_key = client_keys.load_key(key)
            typer.echo(client_keys.request_token(settings.public_url, client, private_key, scope))
        except client_keys.TokenNotIssued as error:
            typer.echo(f"medicus: {error}", err=True)
            raise typer.Exit(1) from None


def _read_jwks(path: Path) -> dict[str, object]:
    try:
        loaded = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as error:
        typer.echo(f"medicus: cannot read the JWKS file {path}: {error}", err=True)
        raise typer.Exit(1) from None
    if not isinstance(loaded, dict) or not isinstance(loaded.get("keys"), list):
        typer.echo(f"medicus: {path} is not a JWKS (an object with a 'keys' list)", err=True)
        raise typer.Exit(1)
    return loaded
