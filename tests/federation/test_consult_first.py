"""The requesting node logs an analyst's outbound query (consult) before it asks anyone: if that
entry cannot be made durable, the search fails closed (503 problem+json) and no partner is asked.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import httpx

from audit.entry import decode_entry
from schemas.enums import S62Operation
from tests.federation.conftest import (
    Federation,
    RoutingTransport,
    member_for,
    node_settings,
    phone,
    running_federation,
    write_manifest,
)

NUMBER = "+447911123456"


class CountingTransport(RoutingTransport):
    """Routes like `RoutingTransport` and counts the requests sent to each host."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls[request.url.host] += 1
        return await super().handle_async_request(request)


def kinds(fed: Federation, force: str) -> list[Any]:
    log = fed.nodes[force].node.audit.log
    log.flush()
    return [decode_entry(raw).kind for raw in log.entries(0, log.size())]


def test_a_search_whose_consult_entry_cannot_be_logged_asks_no_partner(tmp_path: Path) -> None:
    """Node 05's audit store fails: the analyst gets 503 problem+json holding no record, no
    partner receives a single request (so none discloses anything), and 05 logged no consult.
    Once the store works again the same search reaches both partners, which shows the count
    sees partner calls."""
    settings = [node_settings(tmp_path, f) for f in ("05", "20", "01")]
    write_manifest(settings, [member_for(s) for s in settings])
    counting = CountingTransport()

    async def run() -> None:
        async with running_federation(settings, routing=counting) as fed:
            await fed.nodes["20"].load([phone("20", "ph-20-1", NUMBER)])
            await fed.nodes["01"].load([phone("01", "ph-01-1", NUMBER)])
            store = fed.nodes["05"].node.audit.log.store
            before = {force: kinds(fed, force) for force in ("05", "20", "01")}
            counting.calls.clear()

            def broken(*args: Any, **kwargs: Any) -> Any:
                raise RuntimeError("disk gone")

            store.append = broken  # type: ignore[method-assign]
            try:
                response = await fed.nodes["05"].search(mode="records", phone=NUMBER)
            finally:
                del store.append  # the instance attribute goes; the method is back
            assert response.status_code == 503, response.text
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.json()["status"] == 503
            assert NUMBER not in response.text and "ph-20-1" not in response.text
            assert counting.calls == Counter()
            # Nothing asked, nothing answered: no entry anywhere, no consult on 05.
            assert {force: kinds(fed, force) for force in ("05", "20", "01")} == before

            response = await fed.nodes["05"].search(mode="records", phone=NUMBER)
            assert response.status_code == 200, response.text
            assert counting.calls == Counter({"force-20.test": 1, "force-01.test": 1})
            assert S62Operation.CONSULT in kinds(fed, "05")
            assert S62Operation.DISCLOSE in kinds(fed, "20")

    anyio.run(run)
