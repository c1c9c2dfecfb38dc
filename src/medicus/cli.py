"""The `medicus` command: serve, migrate, demo data, configuration and the capabilities' own
commands (`medicus audit ...`, `medicus admin ...`, `medicus storage ...`, `medicus collab ...`).

Every command imports what it needs inside its own function, so that `medicus --help` and the
short commands start in a fraction of a second instead of loading the whole platform first."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import orjson
import typer

from medicus.audit.cli import build_cli as build_audit_cli
from medicus.collab.cli import build_cli as build_collab_cli
from medicus.iam.cli import build_cli as build_admin_cli
from medicus.messenger.cli import build_cli as build_messenger_cli
from medicus.storage.cli import build_cli as build_storage_cli

if TYPE_CHECKING:
    from medicus.audit.service import AuditTrail
    from medicus.collab.text_backfill import TextBackfill
    from medicus.iam.cli import AdminContext
    from medicus.messenger.service import Messenger
    from medicus.platform import Platform
    from medicus.settings import Settings
    from medicus.storage.maintenance import StorageMaintenance

app = typer.Typer(
    help="medicus: health-data platform for a region's hospitals.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: rich's formatting takes a second to import
)
config_cli = typer.Typer(
    help="Show the effective configuration.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(config_cli, name="config")


def _settings(**overrides: object) -> Settings:
    from medicus.core.logging import configure_logging
    from medicus.settings import load_settings

    settings = load_settings(**overrides)
    configure_logging(settings.log_level, settings.uses_json_logs)
    return settings


class DatabaseNotReady(Exception):
    """The database is reachable but its schema is not the one this code needs."""


@asynccontextmanager
async def _open_platform() -> AsyncIterator[Platform]:
    from medicus import migrations
    from medicus.platform import build_platform

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


def _settings_without_logging() -> Settings:
    """For commands whose output is their answer (`admin token`): no log lines around it."""
    from medicus.settings import load_settings

    return load_settings()


@asynccontextmanager
async def _open_audit_trail() -> AsyncIterator[AuditTrail]:
    async with _open_platform() as platform:
        yield platform.audit


@asynccontextmanager
async def _open_admin_context() -> AsyncIterator[AdminContext]:
    from medicus.iam.cli import AdminContext

    async with _open_platform() as platform:
        yield AdminContext(
            platform.database, platform.identity, platform.signing_keys, platform.upstream
        )


app.add_typer(build_audit_cli(_open_audit_trail), name="audit")
app.add_typer(build_admin_cli(_open_admin_context, _settings_without_logging), name="admin")


@asynccontextmanager
async def _open_storage() -> AsyncIterator[StorageMaintenance]:
    from medicus.storage.maintenance import StorageMaintenance

    async with _open_platform() as platform:
        yield StorageMaintenance(platform.storage, platform.audit)


app.add_typer(build_storage_cli(_open_storage), name="storage")


@asynccontextmanager
async def _open_text_backfill(seconds: float) -> AsyncIterator[TextBackfill]:
    from medicus.collab.text_backfill import TextBackfill

    async with _open_platform() as platform:
        yield TextBackfill(platform.database, platform.storage, platform.audit, seconds)


app.add_typer(build_collab_cli(_open_text_backfill), name="collab")


@asynccontextmanager
async def _open_messenger() -> AsyncIterator[Messenger]:
    async with _open_platform() as platform:
        if platform.messenger is None:
            typer.echo("medicus: the messenger is off (MEDICUS_MESSENGER=off)", err=True)
            raise typer.Exit(2)
        yield platform.messenger.service


app.add_typer(build_messenger_cli(_open_messenger, _settings), name="messenger")


def _migrate(settings: Settings, finish: bool = False) -> str:
    """Apply what is missing and run the background updates it scheduled for a while (to
    their end with `finish`); one sentence on where the database stands now."""
    from medicus import migrations
    from medicus.core.db import Database

    async def revision() -> str | None:
        database = Database(settings.database_url, pool_size=1)
        try:
            return await migrations.current_revision(database)
        finally:
            await database.dispose()

    before = asyncio.run(revision())
    seconds = None if finish else migrations.INLINE_SECONDS
    left = migrations.upgrade(settings.database_url, inline_seconds=seconds)
    head = migrations.head_revision()
    applied = migrations.revisions_between(before, head)
    done = "up to date" if applied == 0 else f"{applied} migration{'s' * (applied > 1)} applied"
    if left:
        done += f"; {left} background update{'s' * (left > 1)} left for the server to run"
    return f"database at revision {head} ({done})"


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
    typer.echo(_migrate(_settings(), finish))


@migrate_cli.command("status")
def migrate_status() -> None:
    """The database's revision and the background updates still pending, with their progress."""
    from medicus import migrations
    from medicus.core.db import Database

    async def report() -> list[str]:
        database = Database(_settings().database_url)
        try:
            return await migrations.status_report(database)
        finally:
            await database.dispose()

    for line in asyncio.run(report()):
        typer.echo(line)


def _command() -> str:
    """How the user ran this command, so that the commands we print for them work as shown:
    `medicus` when that is the one on PATH, else the path they typed (`.venv/bin/medicus`),
    or `python -m medicus` spelled with this interpreter."""
    invoked = sys.argv[0]
    if os.path.basename(invoked) != "medicus":
        return f"{sys.executable} -m medicus"
    on_path = shutil.which("medicus")
    if on_path and os.path.exists(invoked) and os.path.samefile(on_path, invoked):
        return "medicus"
    return invoked


@app.command()
def demo() -> None:
    """Load demo data for development: two hospitals, a practice, their staff and a backend
    client with its key in the data directory (safe to run again)."""
    from medicus.demo import describe, load_demo
    from medicus.settings import ConfigError

    async def run() -> list[str]:
        async with _open_platform() as platform:
            if platform.settings.env == "production":
                raise ConfigError("demo data is for development; MEDICUS_ENV is production")
            summary = await load_demo(platform)
            return describe(summary, platform, _command())

    for line in asyncio.run(run()):
        typer.echo(line)


@app.command()
def serve(
    host: str | None = typer.Option(None, help="Address to listen on [MEDICUS_HOST]."),
    port: int | None = typer.Option(None, help="Port to listen on [MEDICUS_PORT]."),
    workers: int | None = typer.Option(
        None, help="Server processes sharing the port [MEDICUS_WORKERS]; one per core."
    ),
) -> None:
    """Serve the platform over HTTP. The embedded SQLite default migrates itself first."""
    import uvicorn

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
    if settings.messenger == "managed":
        _start_synapse(settings)
    typer.echo(
        f"starting medicus on {settings.public_url}/ (log in at {settings.public_url}/login, "
        f"API docs at {settings.public_url}/docs); Ctrl+C stops it"
    )
    if settings.workers == 1:
        from medicus.app import create_app

        uvicorn.run(create_app(settings), **options)
        return
    _prepare_for_workers(settings, overrides)
    uvicorn.run("medicus.app:create_worker_app", factory=True, workers=settings.workers, **options)


def _start_synapse(settings: Settings) -> None:
    """The managed Synapse, as a child that ends with this process (unless one answers
    already, as after `medicus messenger start`)."""
    from medicus.messenger import synapse_process
    from medicus.messenger.homeserver import Homeserver

    homeserver = Homeserver.from_settings(settings)
    try:
        synapse_process.start(homeserver, settings.effective_secret_key(), with_parent=True)
    except synapse_process.SynapseError as error:
        typer.echo(f"medicus: the messenger cannot start: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"messenger: Synapse answers at {homeserver.synapse_url}, behind /_matrix")


def _prepare_for_workers(settings: Settings, overrides: Mapping[str, object]) -> None:
    """Worker processes build their settings from the environment, so the command line's
    choices go there; the development secret and the first signing key are created here,
    once, so that the workers do not race to create different ones."""
    from medicus.platform import build_platform

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
    from medicus.settings import load_settings

    shown = load_settings().masked()
    if as_json:
        typer.echo(orjson.dumps(shown, option=orjson.OPT_INDENT_2).decode())
        return
    for name, value in shown.items():
        typer.echo(f"MEDICUS_{name.upper()} = {value}")


def _problem(error: Exception) -> tuple[int, str] | None:
    """The exit code and sentence for a configuration or database problem, None for others.
    The exception types are imported only here: whatever raised one has loaded its module."""
    from sqlalchemy.exc import DBAPIError

    from medicus.settings import ConfigError

    if isinstance(error, ConfigError):
        return 2, f"configuration error: {error}"
    if isinstance(error, DBAPIError | OSError):
        return 3, _database_problem(error)
    if isinstance(error, DatabaseNotReady):
        return 3, str(error)
    return None


def _database_problem(error: Exception) -> str:
    from sqlalchemy.engine import make_url

    from medicus.settings import ConfigError, load_settings

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
    except Exception as error:
        problem = _problem(error)
        if problem is None:
            raise
        code, sentence = problem
        typer.echo(f"medicus: {sentence}", err=True)
        sys.exit(code)
