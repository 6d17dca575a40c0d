"""Import packages come from this repository; the domain packages stay pure."""

import ast
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ["gateway", "schemas", "policies", "audit"]
DOMAIN_PACKAGES = ["schemas", "policies", "audit"]
FORBIDDEN_IN_DOMAIN = {"fastapi", "starlette", "authlib", "gateway", "uvicorn", "sqlmodel"}


@pytest.mark.parametrize("name", PACKAGES)
def test_package_imports_from_this_repository(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__file__ is not None
    assert Path(module.__file__).resolve().is_relative_to(REPO / name)


def _imported_top_levels(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", DOMAIN_PACKAGES)
def test_domain_package_never_imports_web_or_gateway(package: str) -> None:
    offenders = []
    for path in sorted((REPO / package).rglob("*.py")):
        bad = _imported_top_levels(path) & FORBIDDEN_IN_DOMAIN
        if bad:
            offenders.append(f"{path.relative_to(REPO)}: {sorted(bad)}")
    assert not offenders, "domain packages must stay pure:\n" + "\n".join(offenders)


def test_import_direction_checker_catches_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import fastapi\nfrom gateway.app import create_app\n", encoding="utf-8")
    assert _imported_top_levels(bad) & FORBIDDEN_IN_DOMAIN == {"fastapi", "gateway"}
