"""The `medicus` command: serve, migrate, demo data, configuration and the capabilities' own
commands (`medicus audit ...`)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import orjson
import typer
import uvicorn
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from medicus import migrations
from medicus.audit.cli import build_cli as build_audit_cli
from medicus.audit.service import AuditTrail
from medicus.core.logging import configure_logging
from medicus.demo import DEMO_ORGANISATIONS, DEMO_PASSWORD, load_demo
from medicus.iam.cli import AdminContext
from medicus.iam.cli import build_cli as build_admin_cli
from medicus.platform import Platform, build_platform
from medicus.settings import ConfigError, Settings, load_settings

app = typer.Typer(
    help="medicus: health-data platform for a region's hospitals.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
config_cli = typer.Typer(help="Show the effective configuration.", no_args_is_help=True)
app.add_typer(config_cli, name="config")


def _settings(**overrides: object) -> Settings:
    settings = load_settings(**overrides)
    configure_logging(settings.log_level, settings.uses_json_logs)
    return settings


class DatabaseNotReady(Exception):
    """The database is reachable but its schema is not the one this code needs."""


@asynccontextmanager
async def _open_platform() -> AsyncIterator[Platform]:
    platform = build_platform(_settings())
    try:
        revision = await migrations.current_revision(platform.database)
        if revision != migrations.head_revision():
            raise DatabaseNotReady(
                f"the database is at revision {revision or 'none'} but this medicus needs "
                f"{migrations.head_revision()}; run `medicus migrate` first"
            )
        yield platform
    finally:
        await platform.close()


@asynccontextmanager
async def _open_audit_trail() -> AsyncIterator[AuditTrail]:
    async with _open_platform() as platform:
        yield platform.audit


@asynccontextmanager
async def _open_admin_context() -> AsyncIterator[AdminContext]:
    async with _open_platform() as platform:
        yield AdminContext(
            platform.database, platform.identity, platform.signing_keys, platform.upstream
        )


app.add_typer(build_audit_cli(_open_audit_trail), name="audit")
app.add_typer(build_admin_cli(_open_admin_context), name="admin")


def _migrate(settings: Settings) -> str:
    migrations.upgrade(settings.database_url)
    return migrations.head_revision()


migrate_cli = typer.Typer(help="The database's schema and the background updates of its data.")
app.add_typer(migrate_cli, name="migrate")


@migrate_cli.callback(invoke_without_command=True)
def migrate(
    context: typer.Context,
    finish: bool = typer.Option(
        False, "--finish", help="Run the background updates to completion here and now."
    ),
) -> None:
    """Bring the database schema up to date (safe to run again). The background updates it
    schedules run here for a while; what is left, the server runs (`medicus migrate status`)."""
    if context.invoked_subcommand is not None:
        return
    seconds = None if finish else migrations.INLINE_SECONDS
    left = migrations.upgrade(_settings().database_url, inline_seconds=seconds)
    typer.echo(f"database at revision {migrations.head_revision()}")
    if left:
        typer.echo(f"{left} background updates pending: the server runs them")


@migrate_cli.command("status")
def migrate_status() -> None:
    """The database's revision and the background updates still pending, with their progress."""
    from medicus.core.db import Database

    async def report() -> list[str]:
        database = Database(_settings().database_url)
        try:
            return await migrations.status_report(database)
        finally:
            await database.dispose()

    for line in asyncio.run(report()):
        typer.echo(line)


@app.command()
def demo() -> None:
    """Load demo data: two hospitals, a practice and their staff (safe to run again)."""

    async def run() -> None:
        async with _open_platform() as platform:
            if platform.settings.env == "production":
                raise ConfigError("demo data is for development; MEDICUS_ENV is production")
            summary = await load_demo(platform)
            login = f"{platform.settings.public_url}/login"
        typer.echo(
            f"demo data in place: {summary.organisations_created} organisations, "
            f"{summary.users_created} users, {summary.memberships_created} memberships created"
        )
        typer.echo(
            f"log in at {login} as {DEMO_ORGANISATIONS[0].staff[1][0]} (physician) or "
            f"{DEMO_ORGANISATIONS[0].staff[0][0]} (admin), password '{DEMO_PASSWORD}'"
        )

    asyncio.run(run())


@app.command()
def serve(
    host: str | None = typer.Option(None, help="Address to listen on [MEDICUS_HOST]."),
    port: int | None = typer.Option(None, help="Port to listen on [MEDICUS_PORT]."),
    workers: int | None = typer.Option(
        None, help="Server processes sharing the port [MEDICUS_WORKERS]; one per core."
    ),
) -> None:
    """Serve the platform over HTTP. The embedded SQLite default migrates itself first."""
    given = {"host": host, "port": port, "workers": workers}
    overrides = {k: v for k, v in given.items() if v is not None}
    settings = _settings(**overrides)
    if settings.should_auto_migrate:
        _migrate(settings)
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_config": None,
        "access_log": False,
        "proxy_headers": True,
        "server_header": False,
        "timeout_graceful_shutdown": 10,
    }
    if settings.workers == 1:
        from medicus.app import create_app

        uvicorn.run(create_app(settings), **options)
        return
    _prepare_for_workers(settings, overrides)
    uvicorn.run("medicus.app:create_worker_app", factory=True, workers=settings.workers, **options)


def _prepare_for_workers(settings: Settings, overrides: Mapping[str, object]) -> None:
    """Worker processes build their settings from the environment, so the command line's
    choices go there; the development secret and the first signing key are created here,
    once, so that the workers do not race to create different ones."""
    for name, value in overrides.items():
        os.environ[f"MEDICUS_{name.upper()}"] = str(value)
    settings.effective_secret_key()

    async def first_signing_key() -> None:
        platform = build_platform(settings)
        try:
            await platform.signing_keys.ring()
        finally:
            await platform.close()

    asyncio.run(first_signing_key())


@config_cli.command("show")
def config_show(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Print the effective configuration, secrets masked."""
    shown = load_settings().masked()
    if as_json:
        typer.echo(orjson.dumps(shown, option=orjson.OPT_INDENT_2).decode())
        return
    for name, value in shown.items():
        typer.echo(f"MEDICUS_{name.upper()} = {value}")


def _database_problem(error: Exception) -> str:
    try:
        url = make_url(load_settings().database_url).render_as_string(hide_password=True)
    except ConfigError:
        url = "the configured database"
    reason = str(getattr(error, "orig", None) or error).splitlines()[0]
    return f"cannot use the database at {url}: {reason}"


def main() -> None:
    """Entry point: configuration and database problems end in one sentence, not a traceback."""
    try:
        app()
    except ConfigError as error:
        typer.echo(f"medicus: configuration error: {error}", err=True)
        sys.exit(2)
    except (DBAPIError, OSError) as error:
        typer.echo(f"medicus: {_database_problem(error)}", err=True)
        sys.exit(3)
    except DatabaseNotReady as error:
        typer.echo(f"medicus: {error}", err=True)
        sys.exit(3)
