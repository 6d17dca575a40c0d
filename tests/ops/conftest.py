"""Fixtures for operations tests: a real node (keys, SQLite database, audit log) per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway.conftest import NodeClient, _running_node, make_settings


@pytest.fixture
def ops_node(tmp_path: Path) -> Iterator[NodeClient]:
    from gateway.node import init_node

    settings = make_settings(tmp_path / "node")
    init_node(settings)
    yield from _running_node(settings)
