"""`medicus collab ...`: the operator's commands of the collaboration spaces. Exit codes as
`medicus storage` has them (0 done, 2 refused, 130 interrupted)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict
from typing import TYPE_CHECKING

import orjson
import typer

from medicus.storage.cli import progress_bar, run_command

if TYPE_CHECKING:
    from medicus.collab.text_backfill import TextBackfill

OpenBackfill = Callable[[float], AbstractAsyncContextManager["TextBackfill"]]


def build_cli(open_backfill: OpenBackfill) -> typer.Typer:
    cli = typer.Typer(
        help="Collaboration spaces: the text of documents for search.",
        no_args_is_help=True,
        rich_markup_mode=None,
    )

    @cli.command("index-text")
    def index_text(
        seconds: float = typer.Option(
            30.0, "--seconds", min=1, max=600, help="The longest one file's reading may take."
        ),
        as_json: bool = typer.Option(False, "--json", help="The report as JSON."),
    ) -> None:
        """Read the text of the files that have none yet (written before text search, or
        whose reading ran out of time at upload), so that search finds them by their words.
        Safe to interrupt and run again."""
        with progress_bar("reading") as progress:
            report = run_command(
                lambda: open_backfill(seconds), lambda backfill: backfill.run(progress)
            )
        if as_json:
            typer.echo(orjson.dumps(asdict(report)).decode())
        else:
            typer.echo(
                f"{report.files} files without text, {report.readable} of a format with "
                f"text, {report.read} of them with text now"
            )

    return cli
