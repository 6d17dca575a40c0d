"""Every read of record content goes through the one enforcement point (gateway/search/service).

Record content is only readable after decryption, so the rule is checked where it can be: no
module but the enforcement point calls `reveal_record` or decrypts field ciphertexts, and every
route that returns record content reaches that module.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ENFORCEMENT_POINT = "gateway/search/service.py"
# Where decryption itself is defined, and key management (KEK unwrapping), are not read paths.
DEFINITIONS = {"gateway/records/protection.py"}
KEY_MANAGEMENT = "gateway/keys/"
DECRYPTING_CALLS = {"reveal_record", "decrypt"}


def _calls(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name):
                names.add(func.id)
            elif isinstance(func, ast.Attribute):
                names.add(func.attr)
    return names


def decrypting_modules() -> set[str]:
    found = set()
    for path in (REPO / "gateway").rglob("*.py"):
        rel = path.relative_to(REPO).as_posix()
        if rel in DEFINITIONS or rel.startswith(KEY_MANAGEMENT):
            continue
        if _calls(path) & DECRYPTING_CALLS:
            found.add(rel)
    return found


def test_only_the_enforcement_point_decrypts_records() -> None:
    offenders = decrypting_modules() - {ENFORCEMENT_POINT}
    # The audit sealer decrypts audit payloads, not records: it lives in audit/, outside gateway/.
    assert not offenders, f"record content decrypted outside {ENFORCEMENT_POINT}: {offenders}"


def test_the_enforcement_point_does_decrypt() -> None:
    assert ENFORCEMENT_POINT in decrypting_modules()


def test_the_checker_would_catch_a_route_that_decrypts(tmp_path: Path) -> None:
    rogue = tmp_path / "rogue.py"
    rogue.write_text("def handler(doc, key):\n    return reveal_record(doc, data_key=key)\n")
    assert _calls(rogue) & DECRYPTING_CALLS == {"reveal_record"}
