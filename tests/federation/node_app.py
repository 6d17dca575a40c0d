"""An app factory for node subprocesses in the end-to-end tests, used only while the app factory
does not mount the federation routers itself (then the tests run `gateway serve`)."""

from __future__ import annotations

from fastapi import FastAPI

from gateway.app import create_app
from gateway.settings import Settings
from tests.federation.conftest import install_routers


def create() -> FastAPI:
    app = create_app(Settings())
    install_routers(app)
    return app
