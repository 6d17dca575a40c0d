"""Security headers on every response the node sends, errors and middleware answers included.

- `Cache-Control: no-store` unless the endpoint chose a policy itself (only public metadata such
  as the issuer's JWKS does): records, search results and audit entries must never sit in a
  browser, proxy or CDN cache.
- `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer` (URLs carry record ids).
- `Content-Security-Policy`: the console and the built-in issuer's sign-in page get a strict
  policy (own-origin scripts and styles only, no inline script, no framing); JSON answers get
  `default-src 'none'`; the Swagger page at /docs (CDN assets, inline bootstrap) only refuses
  framing.

Plain ASGI, installed outermost, so it also covers the 413 and 500 answers other middleware sends.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONSOLE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
# The issuer's sign-in form redirects to the relying party's callback, which may be another
# origin: `form-action` would block that redirect in browsers that apply it to redirects.
SIGN_IN_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
API_CSP = "default-src 'none'; frame-ancestors 'none'"
DOCS_CSP = "frame-ancestors 'none'"

_ALWAYS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)


def content_security_policy(path: str) -> str:
    """The policy for a request path."""
    if path == "/console" or path.startswith("/console/"):
        return CONSOLE_CSP
    if path == "/oauth/authorize":
        return SIGN_IN_CSP
    if path == "/docs" or path.startswith("/docs/"):
        return DOCS_CSP
    return API_CSP


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = content_security_policy(scope.get("path", "")).encode()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in _ALWAYS if h[0] not in present)
                if b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", csp))
                if b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
