"""`gateway token`: mint an analyst token from this node's built-in issuer (demo and test users).

Settings come from GATEWAY_* environment variables, as for every node command. The token goes to
stdout alone so scripts can capture it; everything else goes to stderr.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from gateway.identity.issuer import IssuerDisabled, IssuerError, mint_analyst_token
from gateway.settings import Settings


def _split(value: str) -> list[str]:
    return [item for item in value.replace(",", " ").split() if item]


def token(
    user: Annotated[str, typer.Option("--user", help="The analyst's user id (token subject)")],
    vetting: Annotated[
        str, typer.Option(help="Vetting level: NONE, NPPV1, NPPV2, NPPV3, SC or DV")
    ],
    roles: Annotated[str, typer.Option(help="Comma-separated roles")] = "analyst",
    units: Annotated[str, typer.Option(help="Comma-separated units, e.g. MSU,CL-TASKFORCE")] = "",
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds")] = 3600,
    audience: Annotated[
        str | None, typer.Option(help="Token audience; default: this node's URL")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Display name claim")] = None,
) -> None:
    """Print an analyst access token for this node, from its built-in issuer."""
    errors = Console(stderr=True, highlight=False)
    try:
        settings = Settings()
    except Exception as exc:
        errors.print(f"[red]invalid settings:[/] {exc}")
        raise typer.Exit(2) from exc
    try:
        value = mint_analyst_token(
            settings,
            user_id=user,
            roles=_split(roles),
            vetting=vetting,
            units=_split(units),
            ttl_seconds=ttl,
            audience=audience,
            extra_claims={"name": name} if name else None,
        )
    except IssuerDisabled as exc:
        errors.print(f"[red]error:[/] {exc} (GATEWAY_BUILTIN_ISSUER)")
        raise typer.Exit(2) from exc
    except IssuerError as exc:
        errors.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc
    typer.echo(value)
