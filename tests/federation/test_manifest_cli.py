"""`gateway federation init|add|issuer|suspend|activate|sign|show` on a real directory."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import typer
from typer.testing import CliRunner

from audit.checkpoint import VerifierKey
from gateway.federation.manifest import ManifestHolder, verify_manifest
from gateway.federation.manifest_cli import federation_app
from gateway.identity.signing import NodeSigningKey

runner = CliRunner()


def run(*args: str) -> str:
    result = runner.invoke(federation_app, list(args), env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    return result.output


def fail(*args: str) -> str:
    result = runner.invoke(federation_app, list(args), env={"COLUMNS": "250"})
    assert result.exit_code != 0, result.output
    return result.output


def signed(directory: Path) -> object:
    public = json.loads((directory / "authority.pub.jwk").read_text())
    return verify_manifest((directory / "manifest.jws").read_text(), public)


def test_init_creates_authority_keys_and_an_empty_signed_manifest(tmp_path: Path) -> None:
    directory = tmp_path / "fed"
    run("init", "--dir", str(directory))
    assert stat.S_IMODE((directory / "authority.key").stat().st_mode) == 0o600
    public = json.loads((directory / "authority.pub.jwk").read_text())
    assert public["kty"] == "OKP" and "d" not in public and public["kid"]
    manifest = signed(directory)
    assert manifest.version == 1 and manifest.members == []  # type: ignore[attr-defined]
    assert "already exists" in fail("init", "--dir", str(directory))


def test_add_sign_suspend_activate_and_show(tmp_path: Path) -> None:
    directory = str(tmp_path / "fed")
    run("init", "--dir", directory)
    node_key = NodeSigningKey.generate()
    key_file = tmp_path / "node20.jwk"
    key_file.write_text(json.dumps(node_key.public_jwk()))
    jwks_file = tmp_path / "idp.jwks"
    jwks_file.write_text(json.dumps({"keys": [NodeSigningKey.generate().public_jwk()]}))
    vkey = VerifierKey("police-gateway/force-20", 0x01, node_key.public_key).to_text()
    run(
        "add",
        "--dir",
        directory,
        "--force",
        "20",
        "--url",
        "https://gw.force20.example",
        "--signing-key",
        str(key_file),
        "--issuer",
        "https://idp.force20.example",
        "--audience",
        "urn:gw:20",
        "--jwks-uri",
        "https://idp.force20.example/jwks",
        "--contact",
        "spoc@force20.example",
        "--log-key",
        vkey,
    )
    run(
        "add",
        "--dir",
        directory,
        "--force",
        "05",
        "--url",
        "https://gw.force05.example",
        "--signing-key",
        json.dumps(NodeSigningKey.generate().public_jwk()),
        "--issuer",
        "https://idp.force05.example",
        "--audience",
        "urn:gw:05",
        "--jwks",
        str(jwks_file),
    )
    run(
        "issuer",
        "--dir",
        directory,
        "--force",
        "20",
        "--issuer",
        "https://sso.example",
        "--audience",
        "gw",
    )
    assert signed(tmp_path / "fed").members == []  # type: ignore[attr-defined]  # draft only
    assert "version 2 signed" in run("sign", "--dir", directory)
    manifest = signed(tmp_path / "fed")
    assert manifest.version == 2  # type: ignore[attr-defined]
    m20 = manifest.member("20")  # type: ignore[attr-defined]
    assert m20.name == "West Midlands Police"  # default from the force registry
    assert m20.signing_keys[0]["kid"] == node_key.kid
    assert [i.issuer for i in m20.issuers] == ["https://idp.force20.example", "https://sso.example"]
    assert m20.log_key == vkey and m20.contact == "spoc@force20.example"
    assert manifest.member("05").issuers[0].jwks is not None  # type: ignore[attr-defined]

    run("suspend", "--dir", directory, "--force", "05")
    run("sign", "--dir", directory)
    manifest = signed(tmp_path / "fed")
    assert manifest.version == 3  # type: ignore[attr-defined]
    assert manifest.member("05").status == "suspended"  # type: ignore[attr-defined]
    shown = run("show", "--dir", directory)
    assert "version 3" in shown and "suspended" in shown and "gw.force20.example" in shown
    run("activate", "--dir", directory, "--force", "05")
    assert "active" in run("show", "--dir", directory, "--draft")


def test_a_node_picks_up_the_newly_signed_manifest(tmp_path: Path) -> None:
    directory = tmp_path / "fed"
    run("init", "--dir", str(directory))
    holder = ManifestHolder.load(directory / "manifest.jws", directory / "authority.pub.jwk")
    run("add", "--dir", str(directory), "--force", "20", "--url", "https://gw.example")
    run("sign", "--dir", str(directory))
    assert holder.maybe_reload() is True
    assert holder.current.version == 2 and holder.member("20") is not None


def test_clear_errors(tmp_path: Path) -> None:
    directory = str(tmp_path / "fed")
    assert "init" in fail("add", "--dir", directory, "--force", "20", "--url", "https://x.example")
    run("init", "--dir", directory)
    assert "not a force code" in fail(
        "add", "--dir", directory, "--force", "99", "--url", "https://x"
    )
    assert "alias" in fail("add", "--dir", directory, "--force", "02", "--url", "https://x")
    assert "http" in fail("add", "--dir", directory, "--force", "20", "--url", "gw.example")
    assert "--audience" in fail(
        "add",
        "--dir",
        directory,
        "--force",
        "20",
        "--url",
        "https://x.example",
        "--issuer",
        "https://idp.example",
    )
    private = {"kty": "OKP", "crv": "Ed25519", "x": "a", "d": "b"}
    assert "private" in fail(
        "add",
        "--dir",
        directory,
        "--force",
        "20",
        "--url",
        "https://x.example",
        "--signing-key",
        json.dumps(private),
    )
    run("add", "--dir", directory, "--force", "20", "--url", "https://x.example")
    assert "already a member" in fail(
        "add", "--dir", directory, "--force", "20", "--url", "https://y.example"
    )
    run("add", "--dir", directory, "--force", "20", "--url", "https://y.example", "--replace")
    assert "not in the draft" in fail("suspend", "--dir", directory, "--force", "05")


def test_sign_refuses_a_world_readable_authority_key(tmp_path: Path) -> None:
    directory = tmp_path / "fed"
    run("init", "--dir", str(directory))
    (directory / "authority.key").chmod(0o644)
    assert "chmod 600" in fail("sign", "--dir", str(directory))


def test_help_lists_the_commands() -> None:
    output = run("--help")
    for command in ("init", "add", "issuer", "suspend", "activate", "sign", "show"):
        assert command in output
    assert isinstance(federation_app, typer.Typer)
