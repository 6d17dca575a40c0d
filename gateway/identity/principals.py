"""Who is calling, once authenticated. Endpoints receive these from dependencies, never tokens."""

from __future__ import annotations

from dataclasses import dataclass, field

from audit.entry import Actor


@dataclass(frozen=True)
class SystemPrincipal:
    """A force system (records management system) of this node's own force."""

    client_id: str
    force: str
    scopes: frozenset[str]

    def actor(self) -> Actor:
        return Actor(client_id=self.client_id, force=self.force)


@dataclass(frozen=True)
class AuditorPrincipal:
    """An auditor or data protection officer of this node's force."""

    user_id: str
    force: str
    roles: tuple[str, ...] = field(default=("auditor",))

    def actor(self) -> Actor:
        return Actor(user_id=self.user_id, force=self.force, roles=self.roles)


@dataclass(frozen=True)
class AnalystPrincipal:
    """A force analyst, authenticated by a token from an issuer the manifest trusts for `force`."""

    user_id: str
    force: str
    roles: tuple[str, ...]
    vetting: str
    units: tuple[str, ...] = ()
    issuer: str = ""

    def actor(self) -> Actor:
        return Actor(user_id=self.user_id, force=self.force, roles=self.roles, vetting=self.vetting)
