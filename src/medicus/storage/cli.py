"""`medicus storage ...`: the operator's commands of the object storage. Exit codes: 0 when
all is well, 1 when `verify` found problems or `repair`/`migrate` could not do everything
(they say what, and running them again goes on), 2 when a command is refused as asked
(one sentence), 130 when interrupted. What a command needs beyond typer is imported when it
runs, so that `--help` answers at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
import typer

if TYPE_CHECKING:
    from medicus.storage.maintenance import StorageMaintenance
    from medicus.storage.reports import (
        MigrateReport,
        Problem,
        RepairReport,
        StorageStatus,
        VerifyReport,
    )

OpenMaintenance = Callable[[], AbstractAsyncContextManager["StorageMaintenance"]]
T = TypeVar("T")
M = TypeVar("M")
GIGABYTE = 1024**3
SHOWN_PROBLEMS = 50


def run_command(
    open_context: Callable[[], AbstractAsyncContextManager[M]], work: Callable[[M], Awaitable[T]]
) -> T:
    """Run an operator's command's `work` in what `open_context` opens: a refusal is one
    sentence and exit code 2, an interruption exit code 130 (the commands can be run again)."""
    from medicus.storage.reports import MaintenanceError

    async def run() -> T:
        async with open_context() as context:
            return await work(context)

    try:
        return asyncio.run(run())
    except MaintenanceError as error:
        typer.echo(f"medicus: {error}", err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        typer.echo("medicus: interrupted; run the command again to go on", err=True)
        raise typer.Exit(130) from None


@contextmanager
def progress_bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on standard error (the report goes to standard output), shown from
    the first progress on: a command refused at once shows none."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    bar = Progress(*columns, console=Console(stderr=True))
    tasks: list[TaskID] = []

    def advance(done: int, total: int) -> None:
        if not tasks:
            bar.start()
            tasks.append(bar.add_task(label, total=total))
        bar.update(tasks[0], completed=done, total=total)

    try:
        yield advance
    finally:
        if tasks:
            bar.stop()


def size(count: int | None) -> str:
    """Bytes as an operator reads them (binary units, as the quota settings count)."""
    if count is None:
        return "unlimited"
    if count < 1024:
        return f"{count} bytes"
    units = ("KB", "MB", "GB", "TB")
    value, index = count / 1024, 0
    while value >= 1024 and index < len(units) - 1:
        value, index = value / 1024, index + 1
    return f"{value:.1f} {units[index]}"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _status_lines(status: StorageStatus) -> list[str]:
    lines = [f"{status.objects} objects, each kept on {status.replicas} backend(s)", ""]
    rows = [["backend", "state", "reachable", "objects", "size", "pending", "corrupt", "deleting"]]
    for backend in status.backends:
        state = "draining" if backend.draining else "active"
        reachable = {True: "yes", False: "NO", None: "-"}[backend.reachable]
        if not backend.configured:
            state = "not configured"
        rows.append(
            [
                backend.name,
                state,
                reachable,
                str(backend.objects),
                size(backend.bytes),
                str(backend.pending),
                str(backend.corrupt),
                str(backend.deleting),
            ]
        )
    lines += _table(rows)
    if status.organisations:
        usage = [["organisation", "used", "quota"]]
        for organisation in status.organisations:
            quota = size(organisation.quota_bytes)
            usage.append(
                [
                    organisation.organisation_id,
                    size(organisation.used_bytes),
                    f"{quota} (default)" if organisation.default_quota else quota,
                ]
            )
        lines += ["", *_table(usage)]
    return lines


def _problem_lines(problems: list[Problem]) -> list[str]:
    lines = []
    for problem in problems[:SHOWN_PROBLEMS]:
        detail = f" ({problem.detail})" if problem.detail else ""
        lines.append(f"  {problem.object_id} on {problem.backend}: {problem.problem}{detail}")
    if len(problems) > SHOWN_PROBLEMS:
        lines.append(f"  ... and {len(problems) - SHOWN_PROBLEMS} more (--json lists all)")
    return lines


def _verify_lines(report: VerifyReport) -> list[str]:
    kind = "deep" if report.deep else "sizes"
    head = (
        f"verified {report.objects} objects ({report.replicas_checked} replicas checked, "
        f"{kind}): {report.ok} good, {len(report.problems)} problem(s)"
    )
    if not report.problems:
        return [head]
    counts = ", ".join(f"{name}: {count}" for name, count in sorted(report.counts().items()))
    return [
        head,
        f"problems: {counts}",
        *_problem_lines(report.problems),
        "missing and damaged replicas are marked; `medicus storage repair` copies them again",
    ]


def _repair_lines(report: RepairReport) -> list[str]:
    head = (
        f"repair: {report.added} replica(s) added, {report.copied} copied, "
        f"{report.deleted} deleted, {len(report.failed)} failed"
    )
    if report.kept:
        head += f", {report.kept} kept (their object's last good copy)"
    if not report.failed:
        return [head]
    return [head, *_problem_lines(report.failed), "run it again once the backends answer"]


def _migrate_lines(report: MigrateReport) -> list[str]:
    lines = []
    if report.target_was_draining:
        lines.append(f"{report.target} was draining; it takes new objects again")
    lines.append(
        f"migrate {report.source} -> {report.target}: {report.moved} object(s) copied, "
        f"{report.already_there} were there already; {report.remaining} left on "
        f"{report.source}"
    )
    lines += _problem_lines(report.failed)
    if report.remaining:
        lines.append("run the command again to move what is left")
    else:
        lines.append(
            f"{report.source} holds no objects and takes no new ones; it can be removed "
            "from the configuration"
        )
    return lines


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


_AS_JSON = typer.Option(False, "--json", help="Print the report as JSON.")


def build_cli(open_maintenance: OpenMaintenance) -> typer.Typer:
    cli = typer.Typer(
        help="Object storage: replicas, repair, moving off a backend, keys and quotas.",
        no_args_is_help=True,
        rich_markup_mode=None,
    )
    _add_replica_commands(cli, open_maintenance)
    _add_organisation_commands(cli, open_maintenance)
    return cli


def _add_replica_commands(cli: typer.Typer, open_maintenance: OpenMaintenance) -> None:
    @cli.command()
    def status(as_json: bool = _AS_JSON) -> None:
        """Each backend (reachable? draining?) with its objects and the replicas' work still
        to do, and each organisation's usage against its quota."""
        report = run_command(open_maintenance, lambda maintenance: maintenance.status())
        typer.echo(_json(asdict(report)) if as_json else "\n".join(_status_lines(report)))

    @cli.command()
    def verify(
        deep: bool = typer.Option(
            False, "--deep", help="Read every replica whole: every chunk must open."
        ),
        as_json: bool = _AS_JSON,
    ) -> None:
        """Check every object's replicas: missing, of the wrong size, or (--deep) damaged.
        Those found are marked for repair. Exits with 1 if there were problems."""
        with progress_bar("verifying") as progress:
            report = run_command(open_maintenance, lambda m: m.verify(deep, progress))
        if as_json:
            typer.echo(_json({**asdict(report), "counts": report.counts()}))
        else:
            typer.echo("\n".join(_verify_lines(report)))
        if report.problems:
            raise typer.Exit(1)

    @cli.command()
    def repair() -> None:
        """Add replicas objects lack (after a backend was added), copy the pending and
        corrupt ones from good ones and remove the deleted ones' bytes, now, whatever their
        backoff. Exits with 1 if some could not be done."""
        with progress_bar("repairing") as progress:
            report = run_command(open_maintenance, lambda m: m.repair(progress))
        typer.echo("\n".join(_repair_lines(report)))
        if report.failed:
            raise typer.Exit(1)

    @cli.command()
    def migrate(
        source: str = typer.Option(..., "--from", help="The backend to empty."),
        target: str = typer.Option(..., "--to", help="The backend to move its objects to."),
    ) -> None:
        """Move every object off a backend while the platform stays online. The source takes
        no new objects from now on; safe to interrupt and run again."""
        with progress_bar(f"moving {source} -> {target}") as progress:
            report = run_command(open_maintenance, lambda m: m.migrate(source, target, progress))
        typer.echo("\n".join(_migrate_lines(report)))
        if report.failed or report.remaining:
            raise typer.Exit(1)


def _add_organisation_commands(cli: typer.Typer, open_maintenance: OpenMaintenance) -> None:
    @cli.command("rotate-key")
    def rotate_key(org: str = typer.Option(..., "--org", help="The organisation's id.")) -> None:
        """Give an organisation a new key-encryption key and re-wrap its objects' data keys
        under it (the objects' bytes stay as they are). Safe to run again."""
        report = run_command(open_maintenance, lambda m: m.rotate_key(org))
        typer.echo(
            f"{report.organisation_id}: new key {report.kek_id}; data keys re-wrapped: "
            f"{report.objects} object(s), {report.uploads} upload(s) under way"
        )
        if report.failed:
            typer.echo(f"{report.failed} data key(s) did not unwrap and stay as they were")
            raise typer.Exit(1)

    @cli.command()
    def quota(
        org: str = typer.Option(..., "--org", help="The organisation's id."),
        gigabytes: float | None = typer.Option(None, "--gb", help="Its quota in GB."),
        default: bool = typer.Option(False, "--default", help="The platform's default."),
    ) -> None:
        """Set how much an organisation may keep: --gb N, or --default for the platform's."""
        if (gigabytes is not None) == default:
            typer.echo("medicus: give either --gb N or --default", err=True)
            raise typer.Exit(2)
        quota_bytes = None if gigabytes is None else int(gigabytes * GIGABYTE)
        run_command(open_maintenance, lambda m: m.set_quota(org, quota_bytes))
        shown = "the platform's default" if quota_bytes is None else size(quota_bytes)
        typer.echo(f"quota of {org}: {shown}")
