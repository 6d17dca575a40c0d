"""The `gateway` command line."""

import typer

app = typer.Typer(help="Police data-sharing gateway.", no_args_is_help=True)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo("0.1.0")
