"""`gateway federation init|add|issuer|suspend|activate|sign|show`: the federation authority's
tools for the trust registry.

The authority keeps a directory with its private key (authority.key, mode 0600), the public key
nodes pin (authority.pub.jwk), an editable draft (manifest.json) and the last signed manifest
(manifest.jws). `add`, `issuer`, `suspend` and `activate` edit the draft; `sign` publishes it as
the next version. Nodes get manifest.jws and authority.pub.jwk in their data directory.
"""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from gateway.federation.manifest import (
    Manifest,
    ManifestError,
    Member,
    TrustedIssuer,
    authority_public_jwk,
    read_authority_key,
    sign_manifest,
    verify_manifest,
    write_manifest_file,
)
from schemas.forces import UnknownForceError, get_force

federation_app = typer.Typer(
    help="Federation authority: keys and the signed trust registry (manifest) of member forces.",
    no_args_is_help=True,
)

PRIVATE_KEY_FILE = "authority.key"
PUBLIC_KEY_FILE = "authority.pub.jwk"
DRAFT_FILE = "manifest.json"
SIGNED_FILE = "manifest.jws"

DirOption = Annotated[
    Path,
    typer.Option(
        "--dir",
        envvar="GATEWAY_FEDERATION_DIR",
        help="The federation authority's directory",
        file_okay=False,
    ),
]


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    _console().print(f"[red]error:[/] {message}")
    return typer.Exit(code)


def _load_private_key(directory: Path) -> Ed25519PrivateKey:
    path = directory / PRIVATE_KEY_FILE
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise _fail(f"{path} not found; run `gateway federation init --dir {directory}`") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise _fail(f"{path} is readable by others; chmod 600 it")
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise _fail(f"{path} is not an Ed25519 private key")
    return key


def _load_draft(directory: Path) -> Manifest:
    path = directory / DRAFT_FILE
    try:
        return Manifest.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _fail(f"{path} not found; run `gateway federation init --dir {directory}`") from None
    except ValidationError as exc:
        raise _fail(f"{path} is not a valid manifest: {exc}") from None


def _save_draft(directory: Path, manifest: Manifest) -> None:
    path = directory / DRAFT_FILE
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def _load_signed(directory: Path) -> Manifest | None:
    path = directory / SIGNED_FILE
    if not path.exists():
        return None
    try:
        return verify_manifest(
            path.read_text(encoding="utf-8"), read_authority_key(directory / PUBLIC_KEY_FILE)
        )
    except ManifestError as exc:
        raise _fail(f"{path}: {exc}") from None


def _json_argument(value: str, what: str) -> Any:
    """Inline JSON, or the path of a file holding it."""
    text = value.strip()
    if not text.startswith(("{", "[")):
        path = Path(value)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            raise _fail(f"{what}: {value} is neither JSON nor a readable file") from None
    try:
        return json.loads(text)
    except ValueError:
        raise _fail(f"{what} is not valid JSON") from None


def _public_signing_jwk(value: str) -> dict[str, Any]:
    raw = _json_argument(value, "--signing-key")
    if not isinstance(raw, dict):
        raise _fail("--signing-key must be one JWK object")
    if "d" in raw:
        raise _fail("--signing-key holds a private key; give the node's public JWK")
    try:
        key = JWKRegistry.import_key(raw)
    except (JoseError, ValueError, TypeError):
        raise _fail("--signing-key is not a valid JWK") from None
    public: dict[str, Any] = dict(key.as_dict(private=False))
    # Keep the node's own kid (its RFC 7638 thumbprint), or compute it so keys can rotate by kid.
    public["kid"] = raw.get("kid") or key.thumbprint()
    for member in ("alg", "use"):
        if member in raw:
            public[member] = raw[member]
    return public


def _trusted_issuer(
    issuer: str, audience: str | None, jwks_uri: str | None, jwks: str | None
) -> TrustedIssuer:
    if not audience:
        raise _fail("--audience is required with --issuer (the aud your node expects)")
    inline = None
    if jwks is not None:
        inline = _json_argument(jwks, "--jwks")
        if not isinstance(inline, dict):
            raise _fail('--jwks must be a JWK Set object {"keys": [...]}')
    try:
        return TrustedIssuer(issuer=issuer, audience=audience, jwks_uri=jwks_uri, jwks=inline)
    except ValidationError as exc:
        raise _fail(f"issuer: {exc.errors()[0]['msg']}") from None


def _with_member(manifest: Manifest, member: Member) -> Manifest:
    members = [m for m in manifest.members if m.force_code != member.force_code] + [member]
    members.sort(key=lambda m: m.force_code)
    return manifest.model_copy(update={"members": members})


def _existing(manifest: Manifest, force: str) -> Member:
    member = manifest.member(force)
    if member is None:
        raise _fail(f"force {force} is not in the draft manifest; add it first")
    return member


@federation_app.command("init")
def init_command(directory: DirOption = Path("federation")) -> None:
    """Create the authority key pair and an empty signed manifest (version 1)."""
    private_path = directory / PRIVATE_KEY_FILE
    if private_path.exists():
        raise _fail(f"{private_path} already exists; refusing to replace the authority key")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    public = authority_public_jwk(key)
    (directory / PUBLIC_KEY_FILE).write_text(json.dumps(public, indent=2) + "\n", encoding="utf-8")
    manifest = Manifest(version=1, issued_at=datetime.now(UTC), members=[])
    _save_draft(directory, manifest)
    write_manifest_file(directory / SIGNED_FILE, sign_manifest(manifest, key, str(public["kid"])))
    console = _console()
    console.print(f"[green]federation authority created[/] in {directory}")
    console.print(f"  authority key id: {public['kid']}")
    console.print(f"  give nodes {directory / PUBLIC_KEY_FILE} and {directory / SIGNED_FILE}")


@federation_app.command("add")
def add_command(
    force: Annotated[str, typer.Option("--force", help="PNC force code, e.g. 20")],
    url: Annotated[str, typer.Option("--url", help="The member node's base URL")],
    directory: DirOption = Path("federation"),
    name: Annotated[
        str | None, typer.Option(help="Display name; default: the force registry's name")
    ] = None,
    signing_key: Annotated[
        list[str] | None,
        typer.Option(
            "--signing-key", help="Node signing public JWK (file or inline JSON); repeatable"
        ),
    ] = None,
    issuer: Annotated[
        str | None, typer.Option(help="Issuer URL trusted for this force's analysts")
    ] = None,
    audience: Annotated[
        str | None, typer.Option(help="Audience the node expects in that issuer's tokens")
    ] = None,
    jwks_uri: Annotated[
        str | None,
        typer.Option(help="The issuer's JWKS URL (omit both this and --jwks to use discovery)"),
    ] = None,
    jwks: Annotated[
        str | None, typer.Option(help="Inline JWK Set for the issuer (file or JSON)")
    ] = None,
    status: Annotated[str, typer.Option(help="active or suspended")] = "active",
    contact: Annotated[
        str | None, typer.Option(help="Contact point, e.g. the force's SPOC mailbox")
    ] = None,
    log_key: Annotated[
        str | None,
        typer.Option(help="The node's audit-log verifier key (vkey text or a file holding it)"),
    ] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Replace an existing member")] = False,
) -> None:
    """Add a member force to the draft manifest (then `gateway federation sign`)."""
    try:
        registered = get_force(force)
    except UnknownForceError:
        raise typer.BadParameter(f"{force!r} is not a force code", param_hint="--force") from None
    if registered.code != force:
        raise typer.BadParameter(
            f"{force!r} is an alias; use {registered.code!r}", param_hint="--force"
        )
    if status not in {"active", "suspended"}:
        raise typer.BadParameter("status is active or suspended", param_hint="--status")
    draft = _load_draft(directory)
    if draft.member(force) is not None and not replace:
        raise _fail(f"force {force} is already a member; use --replace to redefine it")
    issuers = [] if issuer is None else [_trusted_issuer(issuer, audience, jwks_uri, jwks)]
    if issuer is None and (audience or jwks_uri or jwks):
        raise _fail("--audience, --jwks-uri and --jwks need --issuer")
    if log_key is not None and Path(log_key).is_file():
        log_key = Path(log_key).read_text(encoding="utf-8").strip()
    try:
        member = Member(
            force_code=force,
            name=name or registered.name,
            node_url=url,
            signing_keys=[_public_signing_jwk(value) for value in signing_key or []],
            issuers=issuers,
            status=status,  # checked above
            contact=contact,
            log_key=log_key,
        )
    except ValidationError as exc:
        raise _fail(f"member: {exc.errors()[0]['msg']}") from None
    _save_draft(directory, _with_member(draft, member))
    _console().print(f"force {force} ({member.name}) added to the draft; run `sign` to publish")


@federation_app.command("issuer")
def issuer_command(
    force: Annotated[str, typer.Option("--force", help="Member force code")],
    issuer: Annotated[str, typer.Option(help="Issuer URL trusted for this force's analysts")],
    audience: Annotated[str, typer.Option(help="Audience the node expects in its tokens")],
    directory: DirOption = Path("federation"),
    jwks_uri: Annotated[str | None, typer.Option(help="The issuer's JWKS URL")] = None,
    jwks: Annotated[str | None, typer.Option(help="Inline JWK Set (file or JSON)")] = None,
) -> None:
    """Trust one more issuer for a member force's analysts (replaces an entry for the same URL)."""
    draft = _load_draft(directory)
    member = _existing(draft, force)
    entry = _trusted_issuer(issuer, audience, jwks_uri, jwks)
    issuers = [i for i in member.issuers if i.issuer != issuer] + [entry]
    updated = member.model_copy(update={"issuers": issuers})
    _save_draft(directory, _with_member(draft, updated))
    _console().print(f"issuer {issuer} trusted for force {force} in the draft")


def _set_status(directory: Path, force: str, status: str) -> None:
    draft = _load_draft(directory)
    member = _existing(draft, force)
    _save_draft(directory, _with_member(draft, member.model_copy(update={"status": status})))
    _console().print(f"force {force} is {status} in the draft; run `sign` to publish")


@federation_app.command("suspend")
def suspend_command(
    force: Annotated[str, typer.Option("--force", help="Member force code")],
    directory: DirOption = Path("federation"),
) -> None:
    """Suspend a member: its analysts and its node are refused once the manifest is signed."""
    _set_status(directory, force, "suspended")


@federation_app.command("activate")
def activate_command(
    force: Annotated[str, typer.Option("--force", help="Member force code")],
    directory: DirOption = Path("federation"),
) -> None:
    """Re-activate a suspended member."""
    _set_status(directory, force, "active")


@federation_app.command("sign")
def sign_command(directory: DirOption = Path("federation")) -> None:
    """Sign the draft as the next manifest version and write manifest.jws."""
    key = _load_private_key(directory)
    public = read_authority_key(directory / PUBLIC_KEY_FILE)
    if authority_public_jwk(key)["x"] != public.get("x"):
        raise _fail(f"{PUBLIC_KEY_FILE} does not belong to {PRIVATE_KEY_FILE}")
    draft = _load_draft(directory)
    signed = _load_signed(directory)
    version = max(draft.version, signed.version if signed else 0) + 1
    manifest = draft.model_copy(update={"version": version, "issued_at": datetime.now(UTC)})
    write_manifest_file(directory / SIGNED_FILE, sign_manifest(manifest, key, str(public["kid"])))
    _save_draft(directory, manifest)
    _console().print(
        f"[green]manifest version {version} signed[/] ({len(manifest.members)} members): "
        f"{directory / SIGNED_FILE}"
    )


@federation_app.command("show")
def show_command(
    directory: DirOption = Path("federation"),
    draft: Annotated[bool, typer.Option("--draft", help="Show the unsigned draft")] = False,
) -> None:
    """Show the signed manifest (signature checked) or the draft."""
    manifest = _load_draft(directory) if draft else _load_signed(directory)
    if manifest is None:
        raise _fail(f"no signed manifest in {directory}")
    label = "draft based on version" if draft else "signed manifest version"
    table = Table(title=f"{label} {manifest.version}, issued {manifest.issued_at:%Y-%m-%d %H:%M}")
    for column in ("force", "name", "node URL", "status", "signing keys", "issuers", "log key"):
        table.add_column(column)
    for member in manifest.members:
        table.add_row(
            member.force_code,
            member.name,
            member.node_url,
            member.status if member.status == "active" else f"[red]{member.status}[/]",
            "\n".join(str(k.get("kid"))[:16] for k in member.signing_keys) or "-",
            "\n".join(f"{i.issuer} (aud {i.audience})" for i in member.issuers) or "-",
            "yes" if member.log_key else "-",
        )
    _console().print(table)
