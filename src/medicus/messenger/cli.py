"""`medicus messenger ...`: the operator's commands of the messenger: start, stop and check the
managed Synapse, and keep the federation list. Exit codes: 0 done, 1 not running/failed,
2 refused."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

import orjson
import typer

from medicus.storage.cli import run_command

if TYPE_CHECKING:
    from medicus.messenger.service import Messenger
    from medicus.settings import Settings

OpenMessenger = Callable[[], AbstractAsyncContextManager["Messenger"]]


def build_cli(open_messenger: OpenMessenger, load_settings: Callable[[], Settings]) -> typer.Typer:
    cli = typer.Typer(
        help="The messenger: its Synapse homeserver and the federation list.",
        no_args_is_help=True,
        rich_markup_mode=None,
    )

    @cli.command("start")
    def start() -> None:
        """Start the managed Synapse in the background (`medicus serve` starts it itself; this
        is for running it on its own)."""
        from medicus.messenger import synapse_process
        from medicus.messenger.homeserver import Homeserver

        settings = load_settings()
        homeserver = Homeserver.from_settings(settings)
        try:
            pid = synapse_process.start(
                homeserver, settings.effective_secret_key(), with_parent=False
            )
        except synapse_process.SynapseError as error:
            typer.echo(f"medicus: {error}", err=True)
            raise typer.Exit(1) from None
        where = homeserver.synapse_url
        typer.echo(f"Synapse answers at {where}" + (f" (pid {pid})" if pid else " already"))

    @cli.command("stop")
    def stop() -> None:
        """Stop the managed Synapse of this data directory."""
        from medicus.messenger import synapse_process
        from medicus.messenger.homeserver import Homeserver

        stopped = synapse_process.stop(Homeserver.from_settings(load_settings()))
        typer.echo("Synapse stopped" if stopped else "no managed Synapse was running")

    @cli.command("status")
    def status(as_json: bool = typer.Option(False, "--json", help="As JSON.")) -> None:
        """Whether Synapse answers, and its version; exit code 1 if it does not."""
        from medicus.messenger import synapse_process
        from medicus.messenger.homeserver import Homeserver

        settings = load_settings()
        homeserver = Homeserver.from_settings(settings)
        found = synapse_process.status(homeserver)
        if as_json:
            body = {
                "mode": settings.messenger,
                "synapse_url": homeserver.synapse_url,
                "server_name": homeserver.server_name,
                "answering": found.answering,
                "version": found.version,
                "pid": found.pid,
            }
            typer.echo(orjson.dumps(body).decode())
        elif found.answering:
            typer.echo(f"Synapse {found.version} answers at {homeserver.synapse_url}")
        else:
            typer.echo(f"Synapse does not answer at {homeserver.synapse_url}")
        if not found.answering:
            raise typer.Exit(1)

    @cli.command("erase")
    def erase(user_id: str) -> None:
        """Deactivate a user's Matrix account for good and erase their messages (right to
        erasure; suspending a member in medicus only locks the account)."""
        erased = run_command(open_messenger, lambda m: m.erase_account(user_id, "operator:cli"))
        typer.echo("erased" if erased else "medicus made no Matrix account for this user")
        if not erased:
            raise typer.Exit(1)

    cli.add_typer(_federation_cli(open_messenger), name="federation")
    return cli


def _federation_cli(open_messenger: OpenMessenger) -> typer.Typer:
    federation = typer.Typer(
        help="Organisations whose members may reach and be reached across organisations.",
        no_args_is_help=True,
        rich_markup_mode=None,
    )

    @federation.command("list")
    def federation_list() -> None:
        """The organisations on the federation list, one id a line."""
        members = run_command(open_messenger, lambda messenger: messenger.federation())
        for organisation_id in sorted(members):
            typer.echo(organisation_id)

    @federation.command("add")
    def federation_add(organisation_id: str) -> None:
        """Put an organisation on the federation list."""
        changed = run_command(
            open_messenger, lambda m: m.federate(organisation_id, True, "operator:cli")
        )
        typer.echo("added" if changed else "already on the list")

    @federation.command("remove")
    def federation_remove(organisation_id: str) -> None:
        """Take an organisation off the federation list."""
        changed = run_command(
            open_messenger, lambda m: m.federate(organisation_id, False, "operator:cli")
        )
        typer.echo("removed" if changed else "was not on the list")

    return federation
