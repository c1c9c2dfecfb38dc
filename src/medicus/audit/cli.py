"""`medicus audit ...`: operator commands of the audit trail. What a command needs beyond typer
is imported when it runs, so that `--help` answers at once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict
from typing import TYPE_CHECKING

import orjson
import typer

if TYPE_CHECKING:
    from medicus.audit.service import AuditTrail, ChainReport

OpenAuditTrail = Callable[[], AbstractAsyncContextManager["AuditTrail"]]


def _show(report: ChainReport, as_json: bool) -> None:
    if as_json:
        typer.echo(orjson.dumps({"intact": report.intact, **asdict(report)}).decode())
    elif report.intact:
        typer.echo(f"audit trail intact: {report.entries} entries, head hash {report.head_hash}")
    else:
        typer.secho(f"audit trail broken: {report.problem}", fg="red", err=True)


def build_cli(open_audit_trail: OpenAuditTrail) -> typer.Typer:
    cli = typer.Typer(
        help="Inspect and verify the tamper-evident audit trail.",
        no_args_is_help=True,
        rich_markup_mode=None,
    )

    @cli.command()
    def verify(
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
        seal: bool = typer.Option(
            True, help="First seal entries still pending, so that the check covers them."
        ),
    ) -> None:
        """Walk the hash chain and name the first entry that was altered, removed or
        reordered. Exits with 1 if the chain is broken."""

        async def run() -> ChainReport:
            async with open_audit_trail() as audit:
                if seal:
                    await audit.seal_all()
                return await audit.verify()

        report = asyncio.run(run())
        _show(report, as_json)
        if not report.intact:
            raise typer.Exit(1)

    return cli
