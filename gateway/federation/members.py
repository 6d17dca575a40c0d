"""Who the partners are, from the node's signed manifest: keys to verify, URLs to call, log keys.

A node without a manifest refuses partners and answers analysts from its own force only.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from joserfc.jwk import OKPKey

from audit.checkpoint import SIGNATURE_TYPE_COSIGNATURE, SIGNATURE_TYPE_ED25519, VerifierKey
from gateway.federation.manifest import ManifestHolder, Member
from gateway.federation.protocol import SUSPENDED_MEMBER, UNKNOWN_MEMBER, ProtocolError
from gateway.node import Node


def log_origin(force: str) -> str:
    """A node's audit-log origin line (the same rule as `Settings.log_origin`)."""
    return f"police-gateway/force-{force}"


def witness_name(force: str) -> str:
    """The key name a node cosigns partners' checkpoints under."""
    return f"police-gateway/witness-{force}"


def manifest_of(node: Node) -> ManifestHolder | None:
    holder: ManifestHolder | None = getattr(node, "manifest", None)
    if holder is not None:
        holder.maybe_reload()
    return holder


def require_member(node: Node, force: str) -> Member:
    """An active member of the federation, or ProtocolError(unknown/suspended)."""
    holder = manifest_of(node)
    member = holder.member(force) if holder is not None else None
    if member is None:
        raise ProtocolError(UNKNOWN_MEMBER, f"force {force} is not a member of this federation")
    if member.status != "active":
        raise ProtocolError(SUSPENDED_MEMBER, f"force {force} is suspended")
    return member


def member_keys(node: Node, force: str) -> Sequence[Mapping[str, Any]]:
    return require_member(node, force).signing_keys


def _public_keys(member: Member) -> list[Ed25519PublicKey]:
    keys: list[Ed25519PublicKey] = []
    for jwk in member.signing_keys:
        if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            continue
        key = OKPKey.import_key(dict(jwk)).public_key
        if isinstance(key, Ed25519PublicKey):
            keys.append(key)
    return keys


@functools.lru_cache(maxsize=256)
def _parsed_log_key(text: str) -> VerifierKey:
    # Every receipt a partner sends is checked under its log key: parsed once per key text.
    return VerifierKey.parse(text)


def log_verifiers(member: Member) -> list[VerifierKey]:
    """Keys that may sign the member's checkpoints: its published log key, else its node keys
    (a node signs its log with its node key, under its origin as key name)."""
    if member.log_key:
        return [_parsed_log_key(member.log_key)]
    origin = log_origin(member.force_code)
    return [VerifierKey(origin, SIGNATURE_TYPE_ED25519, key) for key in _public_keys(member)]


def witness_verifiers(member: Member) -> list[VerifierKey]:
    name = witness_name(member.force_code)
    return [VerifierKey(name, SIGNATURE_TYPE_COSIGNATURE, key) for key in _public_keys(member)]
