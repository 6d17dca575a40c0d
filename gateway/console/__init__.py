"""The auditor console: server-rendered pages at `/console/` for reviewing access, verifying the
log's integrity in the browser, answering "who looked at this?" and spotting misuse.

`install_console(app, settings)` mounts it: the pages, their static assets, the signed session
cookie and the sign-in redirect.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from gateway.console.auth import SignInRequired, build_oauth
from gateway.console.config import ConsoleSettings, session_secret
from gateway.console.endpoints import router, sign_in_redirect
from gateway.console.templating import STATIC_DIR
from gateway.settings import Settings

SESSION_COOKIE = "gateway_console"

__all__ = ["ConsoleSettings", "install_console", "router"]


def install_console(
    app: FastAPI, settings: Settings, console: ConsoleSettings | None = None
) -> None:
    """Mount the console on `app`. Call before the app starts (it adds a middleware)."""
    console = console or ConsoleSettings()
    app.state.console_settings = console
    app.state.console_oauth = build_oauth(app, settings, console)
    # Signed (itsdangerous), HttpOnly, SameSite=Lax and scoped to /console: the cookie is never
    # sent to the API, and a cross-site POST cannot ride on it.
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret(settings, console),
        session_cookie=SESSION_COOKIE,
        max_age=console.session_max_age_seconds,
        path="/console",
        same_site="lax",
        https_only=settings.node_url.startswith("https://"),
    )
    app.mount("/console/static", StaticFiles(directory=STATIC_DIR), name="console-static")
    app.include_router(router)
    app.add_exception_handler(SignInRequired, sign_in_redirect)
