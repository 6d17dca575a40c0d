"""The `gateway` command line: one entry point for operators, integrators and auditors."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Police data-sharing gateway: run a force node, manage keys, policies and the audit log.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8005, help="Port to listen on."),
) -> None:
    """Run this force's node (settings from GATEWAY_* environment variables)."""
    import uvicorn

    from gateway.app import create_app
    from gateway.settings import Settings

    settings = Settings()
    uvicorn.run(create_app(settings), host=host, port=port, log_config=None, access_log=False)


@app.command()
def version() -> None:
    """Print the gateway's version."""
    typer.echo("0.1.0")
