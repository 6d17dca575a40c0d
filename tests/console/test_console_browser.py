"""The auditor console in a real headless Chromium (Debian's, driven by Playwright): sign in,
filter, verify an entry in the browser, catch a rogue DBA's edit, ask "who looked at this?".

Screenshots go to tests/artifacts/console/ (test artefacts); one per page is copied to docs/images/
when missing there or when GATEWAY_UPDATE_DOC_IMAGES=1.
Skips when Chromium is absent, except under CI where the browser is required.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.console.conftest import PHONE_ASKED, ServedNode

CHROMIUM = os.environ.get("GATEWAY_CHROMIUM", "/usr/bin/chromium")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts" / "console"
DOC_IMAGES = ROOT / "docs" / "images"

pytestmark = pytest.mark.timeout(120)


def _require_browser() -> None:
    if not Path(CHROMIUM).exists():
        if IN_CI:
            pytest.fail(f"Chromium is required under CI but {CHROMIUM} is missing")
        pytest.skip(f"Chromium not installed at {CHROMIUM} (make system-deps)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        if IN_CI:
            pytest.fail("playwright (Python package) is required under CI")
        pytest.skip("playwright is not installed")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def auditor_page(served_node: ServedNode, browser: object) -> Iterator[object]:
    """A browser page signed in as the demo auditor (one sign-in for the module). The node is
    set up first: its seeding runs an event loop, which Playwright's sync API forbids later."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(served_node.url + "/console/")
    # The console sent us to the issuer's development sign-in page.
    assert "/oauth/authorize" in page.url
    page.get_by_label("Dana Price", exact=False).check()
    shoot(page, "signin")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(served_node.url + "/console/")
    yield page
    context.close()


def shoot(page: object, name: str, *, doc: bool = True) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"console-{name}.png"
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    # The auditor guide's images are refreshed on request, so a test run leaves the tree clean.
    target = DOC_IMAGES / f"console-{name}.png"
    if doc and (not target.exists() or os.environ.get("GATEWAY_UPDATE_DOC_IMAGES") == "1"):
        DOC_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)


def settled_badge(page: object) -> str:
    """Wait until the page's verification finished; return its state (verified/failed/...)."""
    page.wait_for_selector("#badge:not(.pending)")  # type: ignore[attr-defined]
    badge = page.get_by_test_id("verify-badge")  # type: ignore[attr-defined]
    state = str(badge.get_attribute("data-state"))
    steps = page.locator("#verify-steps").inner_text()  # type: ignore[attr-defined]
    print(f"badge={state}: {badge.inner_text()}\n{steps}")
    return state


def test_auditor_signs_in_and_sees_the_access_log(auditor_page: object) -> None:
    page = auditor_page
    assert page.get_by_test_id("signed-in-user").inner_text().startswith("Dana Price")  # type: ignore[attr-defined]
    rows = page.locator("table.entries tbody tr")  # type: ignore[attr-defined]
    assert rows.count() >= 14
    assert page.locator("text=analyst.msht").count() > 0  # type: ignore[attr-defined]
    shoot(page, "access-log")


def test_filter_by_user_and_operation(auditor_page: object, served_node: ServedNode) -> None:
    page = auditor_page
    page.goto(served_node.url + "/console/")  # type: ignore[attr-defined]
    page.get_by_label("User").fill("analyst.cl")  # type: ignore[attr-defined]
    page.get_by_label("Operation").select_option("consult")  # type: ignore[attr-defined]
    page.get_by_role("button", name="Apply filter").click()  # type: ignore[attr-defined]
    page.wait_for_url("**user=analyst.cl**")  # type: ignore[attr-defined]
    rows = page.locator("table.entries tbody tr")  # type: ignore[attr-defined]
    indexes = sorted(int(rows.nth(i).get_attribute("data-index")) for i in range(rows.count()))
    assert indexes == sorted(served_node.seeded.no_hits)
    shoot(page, "access-log-filtered", doc=False)


def test_entry_is_verified_in_the_browser(auditor_page: object, served_node: ServedNode) -> None:
    page = auditor_page
    index = served_node.seeded.partner_disclose
    page.goto(f"{served_node.url}/console/entries/{index}")  # type: ignore[attr-defined]
    assert settled_badge(page) == "verified"
    steps = page.locator("#verify-steps").inner_text()  # type: ignore[attr-defined]
    assert "matches the one the federation manifest publishes" in steps
    witnesses = page.locator("#witnesses li.ok")  # type: ignore[attr-defined]
    witnesses.first.wait_for()
    text = witnesses.first.inner_text()
    assert f"force 01 cosigned size {served_node.seeded.witnessed_size}" in text
    assert "cosignature verified" in text and "inside the witnessed tree" in text
    # The auditor sees the unsealed justification and the partner's request id.
    assert "Child seen with this phone" in page.get_by_test_id("sealed").inner_text()  # type: ignore[attr-defined]
    assert "req-01-77" in page.content()  # type: ignore[attr-defined]
    shoot(page, "entry")


def test_who_looked_at_a_phone_number(auditor_page: object, served_node: ServedNode) -> None:
    page = auditor_page
    page.goto(served_node.url + "/console/who")  # type: ignore[attr-defined]
    page.get_by_label("Phone number").fill(PHONE_ASKED)  # type: ignore[attr-defined]
    page.get_by_role("button", name="Search the audit log").click()  # type: ignore[attr-defined]
    results = page.get_by_test_id("who-results")  # type: ignore[attr-defined]
    results.wait_for()
    text = results.inner_text()
    assert "2 entries found" in text
    assert "analyst.msht" in text and "analyst.x01" in text
    assert "Phone seen in an NRM referral" in text
    shoot(page, "who-looked")


def test_integrity_signals_and_charts_pages(auditor_page: object, served_node: ServedNode) -> None:
    page = auditor_page
    page.goto(served_node.url + "/console/integrity")  # type: ignore[attr-defined]
    assert settled_badge(page) == "verified"
    shoot(page, "integrity")
    page.goto(served_node.url + "/console/signals")  # type: ignore[attr-defined]
    assert page.locator('[data-rule="no_hit_run"]').count() == 1  # type: ignore[attr-defined]
    assert page.locator('[data-rule="self_search"]').count() == 1  # type: ignore[attr-defined]
    shoot(page, "signals")
    page.goto(served_node.url + "/console/charts")  # type: ignore[attr-defined]
    assert page.locator("svg.chart").count() == 3  # type: ignore[attr-defined]
    shoot(page, "charts")


def test_export_csv_of_the_current_filter(auditor_page: object, served_node: ServedNode) -> None:
    page = auditor_page
    response = page.request.get(  # type: ignore[attr-defined]
        served_node.url + "/console/export.csv?operation=disclose"
    )
    assert response.status == 200
    lines = response.text().strip().splitlines()
    assert lines[0].startswith("index,time,kind,user_id")
    assert len(lines) == 2 and ",disclose,analyst.x01," in lines[1]


def test_tampered_entry_fails_verification_in_the_page(
    auditor_page: object, served_node: ServedNode
) -> None:
    page = auditor_page
    index = served_node.seeded.phone_consult
    # A rogue DBA: drop the append-only trigger, then change one byte of the stored entry.
    with sqlite3.connect(served_node.settings.data_dir / "audit.db") as db:
        db.execute("DROP TRIGGER audit_entries_no_update")
        (entry,) = db.execute("SELECT entry FROM audit_entries WHERE idx = ?", (index,)).fetchone()
        forged = bytes(entry).replace(b"OP-KESTREL-1", b"OP-KESTREL-2", 1)
        assert forged != bytes(entry)
        db.execute("UPDATE audit_entries SET entry = ? WHERE idx = ?", (forged, index))
    page.goto(f"{served_node.url}/console/entries/{index}")  # type: ignore[attr-defined]
    assert settled_badge(page) == "failed"
    assert "not the signed root" in page.locator("#verify-steps").inner_text()  # type: ignore[attr-defined]
    shoot(page, "entry-tampered")
