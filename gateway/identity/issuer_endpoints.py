"""Discovery and JWKS endpoints of the node's built-in issuer.

Mounted only when `settings.builtin_issuer_enabled`; each endpoint also answers 404 itself when
the issuer is off, so a router mounted by mistake publishes nothing.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from gateway.deps import NodeDep
from gateway.errors import NotFound, ServiceUnavailable
from gateway.identity.issuer import IssuerDisabled, IssuerError, discovery_document, issuer_jwks

router = APIRouter(tags=["built-in issuer"])

# Relying parties may cache for a while; a rotated key is still found through the unknown-kid
# refresh every verifier does.
_CACHE = {"Cache-Control": "public, max-age=300"}


def _enabled(node: NodeDep) -> None:
    if not node.settings.builtin_issuer_enabled:
        raise NotFound("This node does not run a built-in token issuer.")


@router.get(
    "/.well-known/openid-configuration",
    summary="OpenID Provider metadata of the built-in issuer",
    responses={404: {"description": "Built-in issuer switched off"}},
)
async def openid_configuration(node: NodeDep) -> Any:
    _enabled(node)
    return JSONResponse(discovery_document(node.settings), headers=_CACHE)


@router.get(
    "/oauth/jwks",
    summary="Public keys of the built-in issuer (JWK Set)",
    responses={
        200: {"content": {"application/jwk-set+json": {"schema": {"type": "object"}}}},
        404: {"description": "Built-in issuer switched off"},
    },
)
async def jwks(node: NodeDep) -> Any:
    _enabled(node)
    try:
        body = issuer_jwks(node.settings)
    except IssuerDisabled as exc:
        raise NotFound(str(exc)) from exc
    except IssuerError as exc:
        raise ServiceUnavailable("The built-in issuer has no key; run `gateway init`.") from exc
    return JSONResponse(body, media_type="application/jwk-set+json", headers=_CACHE)
