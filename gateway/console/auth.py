"""Auditor sign-in for the console: OpenID Connect authorization code + PKCE with Authlib's
Starlette client, and the signed session cookie that follows it.

Only a person whose ID token says they belong to this node's force and hold the auditor role gets
a session; everybody else is refused (and the refusal is audited). The cookie carries who the
auditor is, never a token: the console needs no call to the identity provider after sign-in.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
from authlib.integrations.starlette_client import OAuth
from fastapi import FastAPI, Request

from audit.entry import Actor
from gateway.console.config import ConsoleSettings
from gateway.identity.principals import AuditorPrincipal
from gateway.settings import Settings

OAUTH_NAME = "force_issuer"
SESSION_KEY = "auditor"


class SignInRequired(Exception):
    """Raised by the page dependency; the console answers with a redirect to sign-in."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


@dataclass(frozen=True)
class ConsoleUser:
    user_id: str
    force: str
    roles: tuple[str, ...]
    vetting: str | None
    name: str | None
    issuer: str

    def principal(self) -> AuditorPrincipal:
        return AuditorPrincipal(user_id=self.user_id, force=self.force, roles=self.roles)

    def actor(self) -> Actor:
        return Actor(user_id=self.user_id, force=self.force, roles=self.roles, vetting=self.vetting)

    def to_session(self, expires_at: float) -> dict[str, Any]:
        return {
            "sub": self.user_id,
            "force": self.force,
            "roles": list(self.roles),
            "vetting": self.vetting,
            "name": self.name,
            "iss": self.issuer,
            "exp": expires_at,
        }

    @classmethod
    def from_session(cls, data: object) -> ConsoleUser | None:
        if not isinstance(data, dict):
            return None
        try:
            if float(data["exp"]) < time.time():
                return None
            return cls(
                user_id=str(data["sub"]),
                force=str(data["force"]),
                roles=tuple(str(role) for role in data.get("roles") or ()),
                vetting=data.get("vetting"),
                name=data.get("name"),
                issuer=str(data["iss"]),
            )
        except (KeyError, TypeError, ValueError):
            return None


def user_from_claims(claims: dict[str, Any], issuer: str) -> ConsoleUser | None:
    """The console user an ID token describes, or None when it lacks what the console needs."""
    sub, force = claims.get("sub"), claims.get("force")
    roles = claims.get("roles") or []
    if not isinstance(sub, str) or not isinstance(force, str) or not isinstance(roles, list):
        return None
    vetting = claims.get("vetting")
    name = claims.get("name")
    return ConsoleUser(
        user_id=sub,
        force=force,
        roles=tuple(str(role) for role in roles),
        vetting=vetting if isinstance(vetting, str) else None,
        name=name if isinstance(name, str) else None,
        issuer=issuer,
    )


def build_oauth(app: FastAPI, settings: Settings, console: ConsoleSettings) -> OAuth:
    """Register the force's issuer with Authlib (discovery document, PKCE S256)."""
    issuer = console.issuer_url(settings)
    client_kwargs: dict[str, Any] = {
        "scope": "openid profile",
        "code_challenge_method": "S256",
        "timeout": 10.0,
        # Public client: PKCE proves possession; a confidential one also authenticates by Basic.
        "token_endpoint_auth_method": "client_secret_basic" if console.client_secret else "none",
    }
    if console.uses_builtin_issuer(settings):
        # The node is its own issuer: talk to it in-process, so sign-in does not depend on the
        # node reaching its own public URL from inside (it often cannot behind a load balancer).
        client_kwargs["transport"] = httpx.ASGITransport(app=app)
    oauth = OAuth()
    oauth.register(
        name=OAUTH_NAME,
        client_id=console.client_id,
        client_secret=console.client_secret.get_secret_value() if console.client_secret else None,
        server_metadata_url=f"{issuer}/.well-known/openid-configuration",
        client_kwargs=client_kwargs,
    )
    return oauth


def session_user(request: Request) -> ConsoleUser | None:
    return ConsoleUser.from_session(request.session.get(SESSION_KEY))
