"""`gateway audit export|verify|shred-keys`: the auditor's offline tools.

`verify` trusts nothing but the file, the checkpoint and the public key the auditor pins: it
recomputes the whole Merkle tree from the exported entries and checks the signed checkpoint.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from audit.checkpoint import VerifierKey
from audit.errors import CheckpointError

audit_app = typer.Typer(
    help="Export and verify the audit log, and shred sealed payloads past retention.",
    no_args_is_help=True,
)


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


def _read_key(value: str) -> VerifierKey:
    path = Path(value)
    text = path.read_text(encoding="utf-8").strip() if path.is_file() else value.strip()
    return VerifierKey.parse(text)


@audit_app.command("export")
def export_command(
    out: Annotated[Path, typer.Option("--out", help="NDJSON file to write")],
    url: Annotated[
        str | None, typer.Option(help="Export from a running node at this URL (auditor token)")
    ] = None,
    token: Annotated[
        str | None, typer.Option(envvar="GATEWAY_AUDITOR_TOKEN", help="Auditor bearer token")
    ] = None,
    as_stored: Annotated[
        bool,
        typer.Option(
            "--as-stored",
            help="Forensic export of the local node: sign nothing, write every row as stored "
            "and every checkpoint the node signed (OUT.checkpoints)",
        ),
    ] = False,
) -> None:
    """Export the log with a freshly signed checkpoint (OUT and OUT.checkpoint), and print the
    verifier key to pin. Without --url, reads the local node named by GATEWAY_* settings."""
    console = _console()
    checkpoint_path = out.with_name(out.name + ".checkpoint")
    if url:
        if not token:
            raise typer.BadParameter("--token (or GATEWAY_AUDITOR_TOKEN) is needed with --url")
        with (
            httpx.Client(base_url=url, timeout=60) as client,
            client.stream(
                "GET", "/v1/audit/export", headers={"Authorization": f"Bearer {token}"}
            ) as response,
        ):
            if response.status_code != 200:
                response.read()
                console.print(f"[red]export refused ({response.status_code}):[/] {response.text}")
                raise typer.Exit(1)
            note = base64.b64decode(response.headers["X-Checkpoint"]).decode()
            lines = 0
            with out.open("wb") as fh:
                for chunk in response.iter_bytes():
                    fh.write(chunk)
                    lines += chunk.count(b"\n")
            vkey = client.get("/v1/audit/checkpoint").headers.get("X-Verifier-Key", "")
    else:
        from gateway.node_offline import export_local

        with _progress(console) as progress:
            task = progress.add_task("exporting", total=None)
            note, lines, vkey = export_local(
                out,
                lambda done, total: progress.update(task, completed=done, total=total),
                as_stored=as_stored,
            )
    checkpoint_path.write_text(note, encoding="utf-8")
    console.print(f"[green]exported {lines} entries[/] to {out}")
    console.print(f"checkpoint: {checkpoint_path}")
    console.print(f"verifier key (pin it, e.g. in the federation manifest): {vkey}")


@audit_app.command("verify")
def verify_command(
    file: Annotated[Path, typer.Argument(help="An export (NDJSON)", exists=True, dir_okay=False)],
    key: Annotated[str, typer.Option(help="Verifier key (name+id+key) or a file holding it")],
    checkpoint: Annotated[
        Path | None, typer.Option(help="Signed checkpoint (default: FILE.checkpoint)")
    ] = None,
    old_checkpoint: Annotated[
        Path | None, typer.Option(help="An older checkpoint this log must extend")
    ] = None,
) -> None:
    """Recompute the Merkle tree from FILE and check it against the signed checkpoint.

    Exit code 0: the log verifies. 1: it does not (the first bad index is named). 2: bad input.
    """
    from audit.verify import verify_export

    console = _console()
    try:
        vkey = _read_key(key)
    except (CheckpointError, OSError) as exc:
        console.print(f"[red]unusable verifier key:[/] {exc}")
        raise typer.Exit(2) from exc
    checkpoint = checkpoint or file.with_name(file.name + ".checkpoint")
    if not checkpoint.exists():
        console.print(f"[red]no checkpoint at {checkpoint}[/]; pass --checkpoint")
        raise typer.Exit(2)
    total = sum(1 for _ in file.open("rb"))
    with _progress(console) as progress, file.open("rb") as fh:
        task = progress.add_task("verifying", total=total)
        report = verify_export(
            fh,
            checkpoint_text=checkpoint.read_text(encoding="utf-8"),
            origin=vkey.name,
            key_name=vkey.name,
            public_key=vkey.public_key,
            old_checkpoint_text=old_checkpoint.read_text(encoding="utf-8")
            if old_checkpoint
            else None,
            progress=lambda done: progress.update(task, completed=done),
        )
    if report.ok:
        size = report.checkpoint.size if report.checkpoint else 0
        console.print(
            f"[bold green]OK[/]: {report.entries} entries; the signed checkpoint covers {size}, "
            f"root {report.root.hex()}"
        )
        if report.uncovered:
            console.print(f"{report.uncovered} newer entries are not yet covered by a checkpoint")
        return
    first_bad = report.first_bad_index
    located = None
    if first_bad is None:
        located = _locate_with_history(file, vkey)
        if located is not None and located[0] == located[1]:
            first_bad = located[0]
    where = f" at index {first_bad}" if first_bad is not None else ""
    problem = report.problem.value if report.problem else "unknown"
    console.print(f"[bold red]FAILED[/]: {problem}{where}: {report.detail}")
    if located is not None and located[0] != located[1]:
        console.print(f"the first bad entry is between index {located[0]} and {located[1]}")
    elif located is None and first_bad is None and _history_path(file).exists():
        console.print(
            "every checkpoint the node signed agrees with these rows: the checkpoint you hold "
            "is for a different tree (a fork), not for this log"
        )
    raise typer.Exit(1)


def _history_path(file: Path) -> Path:
    return file.with_name(file.name + ".checkpoints")


def _locate_with_history(file: Path, vkey: VerifierKey) -> tuple[int, int] | None:
    """Use the node's own signed checkpoints (forensic export) to find where the rows diverge."""
    from audit.checkpoint import verify_checkpoint
    from audit.verify import locate_divergence

    history = _history_path(file)
    if not history.exists():
        return None
    points: list[tuple[int, bytes]] = []
    for line in history.read_text(encoding="utf-8").splitlines():
        try:
            note = str(json.loads(line)["note"])
        except (ValueError, KeyError, TypeError):
            continue
        try:
            checkpoint = verify_checkpoint(note, vkey.name, vkey.name, vkey.public_key)
        except CheckpointError:
            continue  # a note the pinned key did not sign proves nothing
        points.append((checkpoint.size, checkpoint.root_hash))
    with file.open("rb") as fh:
        return locate_divergence(fh, points)


@audit_app.command("shred-keys")
def shred_keys_command(
    before: Annotated[str, typer.Option(help="Destroy month keys older than YYYY-MM")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
) -> None:
    """End of retention: destroy the audit sealing keys of months before BEFORE. The entries
    stay and the log still verifies; their sealed search terms and justifications become
    unreadable for ever."""
    import re

    from gateway.audit_api.keyring import AuditKeyFile
    from gateway.settings import Settings

    if not re.fullmatch(r"\d{4}-\d{2}", before):
        raise typer.BadParameter("use YYYY-MM")
    settings = Settings()
    if not yes:
        typer.confirm(
            f"Destroy audit sealing keys before {before}? This cannot be undone", abort=True
        )
    doomed = AuditKeyFile(settings.audit_key_file).shred_before(before)
    _console().print(f"destroyed {len(doomed)} key(s): {', '.join(doomed) or 'none'}")
