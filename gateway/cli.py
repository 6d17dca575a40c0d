"""The `gateway` command line: one entry point for operators, integrators and auditors.

Node commands read their settings from GATEWAY_* environment variables (see docs/operator.md).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from gateway.audit_api.cli import audit_app
from gateway.federation.manifest_cli import federation_app
from gateway.federation.reconcile import reconcile_command
from gateway.identity.token_cli import token
from gateway.ops.backup import backup_command, restore_command
from gateway.policy_cli import policy_app
from gateway.records.importer import DEFAULT_LINES_PER_CHUNK, DEFAULT_RETRIES
from gateway.settings import Settings
from gateway.synth.cli import synth

app = typer.Typer(
    help="Police data-sharing gateway: run a force node, manage keys, policies and the audit log.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(policy_app, name="policy")
app.add_typer(audit_app, name="audit")
app.add_typer(federation_app, name="federation")
audit_app.command("reconcile")(reconcile_command)
app.command("token")(token)
app.command("synth")(synth)
app.command("backup")(backup_command)
app.command("restore")(restore_command)

clients_app = typer.Typer(help="Register force systems (OAuth2 client credentials).")
keys_app = typer.Typer(help="Key encryption key rotation and retirement.")
schemas_app = typer.Typer(help="Standard record schemas.")
app.add_typer(clients_app, name="clients")
app.add_typer(keys_app, name="keys")
app.add_typer(schemas_app, name="schemas")


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _settings() -> Settings:
    try:
        return Settings()
    except Exception as exc:
        _console().print(f"[red]invalid settings:[/] {exc}")
        raise typer.Exit(2) from exc


@app.command()
def init() -> None:
    """Create this node's keys and database (idempotent): signing key, key encryption key,
    audit sealing keys, migrations to head, blind-index secret, audit store."""
    from gateway.node import init_node

    settings = _settings()
    done = init_node(settings)
    console = _console()
    console.print(f"[green]node for force {settings.force_code} ready[/] in {settings.data_dir}")
    for item in done:
        console.print(f"  - {item}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8005,
) -> None:
    """Run this force's node (settings from GATEWAY_* environment variables)."""
    import uvicorn

    from gateway.app import create_app

    settings = _settings()
    # http and loop are left to uvicorn's "auto": with httptools and uvloop installed (both
    # are dependencies) it parses HTTP in C and runs on libuv, which took about 6% off the
    # node CPU per federated search in bench/federation_bench.py; without them it falls back
    # to h11 and asyncio's own loop, which behave the same, only slower.
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
    )


@clients_app.command("add")
def clients_add(
    name: Annotated[str, typer.Argument(help="A name for the force system, e.g. niche-rms")],
    scopes: Annotated[
        str, typer.Option(help="Comma-separated: records:write, records:read, audit:read")
    ] = "records:write,records:read",
) -> None:
    """Register a force system; its secret is shown once and stored only as a hash."""
    from gateway.db import Database
    from gateway.identity.clients import ClientError, NewClient, add_client, parse_scopes

    settings = _settings()
    try:
        scope_list = parse_scopes(scopes)
    except ClientError as exc:
        # A usage error (exit status 2) naming the option and the scopes it allows.
        raise typer.BadParameter(str(exc), param_hint="'--scopes'") from exc

    async def _add() -> NewClient:
        db = Database(settings.resolved_database_url)
        try:
            async with db.sessions() as session:
                new = await add_client(session=session, name=name, scopes=scope_list)
                await session.commit()
                return new
        finally:
            await db.dispose()

    try:
        new = asyncio.run(_add())
    except ClientError as exc:
        _console().print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc
    console = _console()
    console.print(f"client_id:     {new.client_id}")
    console.print(f"client_secret: {new.secret}")
    console.print(f"scopes:        {' '.join(new.scopes)}")
    console.print("[yellow]The secret is shown only now. Store it in the force system's vault.[/]")


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


@keys_app.command("rotate")
def keys_rotate(
    resume: Annotated[
        bool, typer.Option("--resume", help="Finish a rotation without a new KEK version")
    ] = False,
    reindex: Annotated[
        bool,
        typer.Option(
            "--reindex/--no-reindex",
            help="Also make new blind-index keys and re-index every record under them",
        ),
    ] = True,
) -> None:
    """Create a new KEK version and re-wrap every data key and node secret under it, then make
    new blind-index keys, re-index every record and switch searches to them. Safe while the node
    serves; resumable (`--resume`)."""
    from gateway.db import Database
    from gateway.node import open_kek_provider
    from gateway.records.index_versions import IndexVersionError
    from gateway.records.rotation import (
        IndexRotationSummary,
        RotationSummary,
        rotate_index,
        rotate_kek,
    )

    settings = _settings()
    console = _console()
    kek = open_kek_provider(settings)
    db = Database(settings.resolved_database_url)
    refused: list[str] = []

    async def _run() -> tuple[RotationSummary, IndexRotationSummary | None]:
        with _progress(console) as progress:
            task = progress.add_task("re-wrapping data keys", total=None)
            try:
                summary = await rotate_kek(
                    sessions=db.sessions,
                    kek=kek,
                    create_version=not resume,
                    progress=lambda done, total: progress.update(task, completed=done, total=total),
                )
                if not reindex:
                    return summary, None
                indexing = progress.add_task("re-indexing records", total=None)
                try:
                    index_summary = await rotate_index(
                        sessions=db.sessions,
                        kek=kek,
                        force=settings.force_code,
                        resume=resume,
                        progress=lambda done, total: progress.update(
                            indexing, completed=done, total=total
                        ),
                    )
                except IndexVersionError as exc:
                    refused.append(str(exc))
                    return summary, None
                return summary, index_summary
            finally:
                await db.dispose()

    try:
        summary, index_summary = asyncio.run(_run())
    finally:
        kek.close()
    from audit.entry import SecurityEvent
    from gateway.node_offline import record_offline_event

    complete = not summary.remaining_on_old and (index_summary is None or index_summary.activated)
    record_offline_event(
        SecurityEvent.KEY_ROTATION,
        settings=settings,
        purpose=f"kek_rotated_to_{summary.new_version}"[:32],
        decision="complete" if complete else "partial",
    )
    if index_summary is not None:
        record_offline_event(
            SecurityEvent.KEY_ROTATION,
            settings=settings,
            purpose=f"blind_index_v{index_summary.version}"[:32],
            decision="complete" if index_summary.activated else "partial",
        )
    table = Table(title="Key rotation")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("current KEK version", summary.new_version)
    table.add_row("data keys re-wrapped", str(summary.data_keys))
    table.add_row("node secrets re-wrapped", str(summary.secrets))
    table.add_row("keys still on older versions", str(summary.remaining_on_old))
    if index_summary is not None:
        table.add_row(
            "blind-index version",
            f"{index_summary.version} ({'active' if index_summary.activated else 'building'})",
        )
        table.add_row("records re-indexed", str(index_summary.reindexed))
        table.add_row("re-index passes", str(index_summary.passes))
    console.print(table)
    if summary.remaining_on_old:
        console.print("Records written during rotation remain; run `gateway keys rotate --resume`.")
    if refused:
        console.print(f"[yellow]Blind index not rotated: {refused[0]}[/]")
        raise typer.Exit(1)
    if index_summary is not None and not index_summary.activated:
        console.print(
            f"{index_summary.behind} record(s) were still being written without the new index "
            "version; searches keep the old one. Run `gateway keys rotate --resume`."
        )
    elif index_summary is not None:
        console.print(
            "Searches use the new blind-index keys (node processes switch within "
            f"{settings.index_refresh_seconds:g} s); the old index is kept until "
            "`gateway keys retire`."
        )


@keys_app.command("retire")
def keys_retire(version: Annotated[str, typer.Argument(help="KEK version, e.g. v1")]) -> None:
    """Destroy an old KEK version once nothing is wrapped under it, and delete the blind-index
    keys and tags that a rotation replaced."""
    from gateway.db import Database
    from gateway.node import open_kek_provider
    from gateway.records.index_versions import IndexVersionError, retire_previous
    from gateway.records.rotation import retire_kek_version

    settings = _settings()
    kek = open_kek_provider(settings)
    db = Database(settings.resolved_database_url)

    async def _run() -> list[int]:
        try:
            retired = await retire_previous(
                db.sessions, min_age_seconds=2 * settings.index_refresh_seconds
            )
            await retire_kek_version(sessions=db.sessions, kek=kek, version=version)
            return retired
        finally:
            await db.dispose()

    try:
        retired_index = asyncio.run(_run())
    except (ValueError, IndexVersionError) as exc:
        _console().print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc
    finally:
        kek.close()
    from audit.entry import SecurityEvent
    from gateway.node_offline import record_offline_event

    for index_version in retired_index:
        record_offline_event(
            SecurityEvent.KEY_ROTATION,
            settings=settings,
            purpose=f"blind_index_v{index_version}_retired"[:32],
        )
    record_offline_event(
        SecurityEvent.KEY_ROTATION, settings=settings, purpose=f"kek_{version}_retired"[:32]
    )
    if retired_index:
        _console().print(
            f"[green]blind-index version(s) {retired_index} retired (keys and tags deleted)[/]"
        )
    _console().print(f"[green]KEK {version} retired[/]")


@schemas_app.command("export")
def schemas_export(
    out: Annotated[Path, typer.Option(help="Directory for the JSON Schema files")] = Path(
        "schemas/json/v1"
    ),
) -> None:
    """Write the JSON Schema 2020-12 files of the record schemas v1."""
    from schemas import export_json_schemas

    written = export_json_schemas(out)
    for path in written:
        _console().print(f"wrote {path}")


class _RecordsPerSecond(ProgressColumn):
    """Throughput of the task so far, in records a second."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} records/s")


@app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="NDJSON records", exists=True, dir_okay=False)],
    url: Annotated[str, typer.Option(help="The node's URL")] = "http://127.0.0.1:8005",
    client_id: Annotated[str, typer.Option(envvar="GATEWAY_CLIENT_ID")] = "",
    client_secret: Annotated[str, typer.Option(envvar="GATEWAY_CLIENT_SECRET")] = "",
    local: Annotated[
        bool,
        typer.Option(
            "--local",
            help="Write straight into this machine's node (its GATEWAY_* settings: database, "
            "keys, audit log) instead of through its sync API; no client credentials needed",
        ),
    ] = False,
    report: Annotated[
        Path | None, typer.Option(help="Report file (default FILE.report.json)")
    ] = None,
    chunk: Annotated[
        int, typer.Option(help="Lines per bulk request", min=1, max=100_000)
    ] = DEFAULT_LINES_PER_CHUNK,
    retries: Annotated[
        int,
        typer.Option(
            help="Times a chunk is sent again after a dropped connection, 429 or 503", min=0
        ),
    ] = DEFAULT_RETRIES,
) -> None:
    """Load records into a node: through its sync API (client credentials), or with --local
    straight into this machine's node. Exit status 1 when a line was rejected or the import
    stopped; the report file says which lines, and where it stopped."""
    from gateway.node import NodeStartupError
    from gateway.records.importer import (
        ImportStopped,
        ImportSummary,
        import_over_http,
        run_import_local,
    )

    if not local and (not client_id or not client_secret):
        raise typer.BadParameter(
            "--client-id and --client-secret (or GATEWAY_CLIENT_*) are needed, or --local"
        )
    settings = _settings() if local else None
    console = _console()
    with file.open("rb") as fh:
        total = sum(1 for _ in fh)
    report = report or file.with_name(file.name + ".report.json")
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RecordsPerSecond(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("importing", total=total)
        summary = ImportSummary()  # filled chunk by chunk, so a stop keeps what was done
        try:
            if settings is not None:
                run_import_local(
                    file,
                    settings=settings,
                    lines_per_chunk=chunk,
                    progress=lambda n: progress.advance(task, n),
                    summary=summary,
                )
            else:
                import_over_http(
                    file,
                    url=url,
                    client_id=client_id,
                    secret=client_secret,
                    lines_per_chunk=chunk,
                    retries=retries,
                    progress=lambda n: progress.advance(task, n),
                    summary=summary,
                )
        except ImportStopped:
            pass  # the summary says where and why
        except KeyboardInterrupt:
            summary.stop(summary.lines + 1, "interrupted")
        except NodeStartupError as exc:  # --local: the node's files cannot be used
            console.print(f"[red]cannot open the node:[/] {exc}")
            raise typer.Exit(2) from exc
        except OSError as exc:  # the file, or the node's own files with --local
            console.print(f"[red]import stopped:[/] {exc}")
            raise typer.Exit(1) from exc
    summary.write_report(report)
    table = Table(title=f"import of {file.name}" + (" (local)" if local else ""))
    table.add_column("lines")
    table.add_column("accepted")
    table.add_column("rejected")
    table.add_column("created/replaced/unchanged")
    table.add_column("records/s")
    table.add_row(
        str(summary.lines),
        str(summary.accepted),
        str(summary.rejected),
        f"{summary.created}/{summary.replaced}/{summary.unchanged}",
        f"{summary.per_second:,.0f}",
    )
    console.print(table)
    if summary.retries:
        console.print(f"{summary.retries} chunk(s) were sent again after a failure.")
    console.print(f"report: {report}")
    if summary.stop_reason == "interrupted":
        console.print(
            f"[yellow]import interrupted before line {summary.stopped_at_line}.[/] Run the "
            "same command again to finish: records already stored are reported unchanged."
        )
        raise typer.Exit(130)
    if not summary.complete:
        console.print(
            f"[red]import stopped at line {summary.stopped_at_line}:[/] {summary.stop_reason}\n"
            "Lines before it are stored. Run the same command again to finish: records "
            "already stored are reported unchanged, never stored twice."
        )
        raise typer.Exit(1)
    if summary.rejected:
        console.print(f"[yellow]{summary.rejected} line(s) rejected:[/] see the report.")
        raise typer.Exit(1)


@app.command()
def version() -> None:
    """Print the gateway's version."""
    typer.echo("0.1.0")


@app.command("up")
def up_command(
    forces: Annotated[str, typer.Option(help="Comma-separated PNC force codes")] = "05,20,01",
    records: Annotated[int, typer.Option(help="Synthetic records per force", min=200)] = 2000,
    workdir: Annotated[
        Path, typer.Option(help="Where the local federation keeps its state")
    ] = Path("var/federation"),
) -> None:
    """Run a local federation: one node process per force on loopback, with keys, a signed
    manifest and synthetic data imported through the sync API. Ctrl-C stops every node."""
    import signal
    import threading

    from gateway.identity.issuer import mint_analyst_token
    from gateway.up import AUDITOR_TOKEN, import_data, prepare, running
    from schemas.forces import UnknownForceError, canonical_force_code

    console = _console()
    try:
        codes = [canonical_force_code(c.strip()) for c in forces.split(",") if c.strip()]
    except UnknownForceError as exc:
        raise typer.BadParameter(str(exc)) from exc
    fed = prepare(workdir, codes, records, log=console.print)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with running(fed):
        import_data(fed, log=console.print)
        table = Table(title="local federation")
        for column in ("force", "node", "API docs", "auditor console"):
            table.add_column(column)
        for spec in fed.nodes:
            table.add_row(spec.force, spec.url, f"{spec.url}/docs", f"{spec.url}/console/")
        console.print(table)
        first = fed.nodes[0]
        token = mint_analyst_token(
            first.settings(fed.workdir),
            user_id="demo-analyst",
            roles=["analyst"],
            vetting="NPPV2",
        )
        console.print("\nTry it (an analyst of force " + first.force + "):")
        console.print(f"  export TOKEN={token}")
        console.print(
            f'  curl -s -X POST {first.url}/v1/search -H "Authorization: Bearer $TOKEN" '
            '-H \'Content-Type: application/json\' -d \'{"purpose": "investigation", '
            '"justification": "county line enquiry", "case_ref": "OP-DEMO-1", '
            '"mode": "hits", "name": "Smith"}\''
        )
        console.print(
            f'  curl -s {first.url}/v1/audit/entries -H "Authorization: Bearer {AUDITOR_TOKEN}"'
        )
        console.print("\nPress Ctrl-C to stop every node.")
        stop.wait()
    console.print("stopped")


@app.command("demo")
def demo_command(
    workdir: Annotated[Path, typer.Option(help="Where the demo keeps its nodes")] = Path(
        "var/demo"
    ),
    records: Annotated[int, typer.Option(help="Synthetic records per force")] = 2000,
) -> None:
    """Run the scripted walk-through on local nodes and say what happened at each step."""
    from gateway.demo import run_demo

    ok = run_demo(workdir=workdir, records=records, console=_console())
    raise typer.Exit(0 if ok else 1)
