"""`gateway import`: a file of records into a node, over HTTP (client credentials) or straight
into the local node; rejected lines and stops go to the report, failed chunks are sent again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from audit.entry import decode_entry
from gateway import cli
from gateway.app import create_app
from gateway.node import open_audit_store
from gateway.node_offline import verify_local_log
from gateway.records.importer import (
    LOCAL_CLIENT_ID,
    ImportStopped,
    ImportSummary,
    chunks,
    import_over_http,
    run_import_local,
)
from gateway.settings import Settings
from schemas.examples import example_record
from tests.gateway.conftest import NODE_URL, NodeClient, register_client
from tests.hardening.conftest import NodeProcess, free_port, node_env


def person(record_id: str, family: str = "Okonkwo") -> dict[str, Any]:
    record = example_record("person", id=record_id, owner_force="20")
    record["body"]["names"][0]["family_name"] = family
    return record


def write_ndjson(path: Path, items: list[Any]) -> Path:
    path.write_bytes(
        b"".join((i if isinstance(i, bytes) else json.dumps(i).encode()) + b"\n" for i in items)
    )
    return path


class FlakyTransport(httpx.BaseTransport):
    """Passes requests to the node, but fails chosen bulk uploads in chosen ways first."""

    def __init__(
        self,
        inner: httpx.BaseTransport,
        failures: list[str],
        token_failures: tuple[str, ...] = (),
    ) -> None:
        self.inner = inner
        self.failures = list(failures)  # per bulk request, in order: "ok", "503", "drop-after"...
        self.token_failures = list(token_failures)  # per token request: "ok" or "503"
        self.bulk_keys: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if (
            request.url.path == "/oauth/token"
            and self.token_failures
            and self.token_failures.pop(0) == "503"
        ):
            return httpx.Response(503, json={"title": "starting"})
        if request.url.path != "/v1/records/bulk":
            return self.inner.handle_request(request)
        self.bulk_keys.append(request.headers["Idempotency-Key"])
        plan = self.failures.pop(0) if self.failures else "ok"
        if plan == "connect":
            raise httpx.ConnectError("connection refused", request=request)
        if plan == "503":
            return httpx.Response(503, headers={"Retry-After": "7"}, json={"title": "busy"})
        if plan == "401":
            return httpx.Response(401, json={"title": "token expired"})
        if plan == "garbage":
            return httpx.Response(200, content=b"<html>proxy error</html>")
        response = self.inner.handle_request(request)
        if plan == "drop-after":
            # The node stored the chunk, but its answer never arrived.
            response.read()
            raise httpx.ReadError("connection reset", request=request)
        return response


def _import(
    node: NodeClient, path: Path, transport: httpx.BaseTransport | None = None, **kwargs: Any
) -> Any:
    waits: list[float] = []
    summary = import_over_http(
        path,
        url=NODE_URL,
        client_id=node.client_id,
        secret=node.secret,
        transport=transport or node.http._transport,
        sleep=waits.append,
        **kwargs,
    )
    return summary, waits


def _read(node: NodeClient, record_id: str) -> httpx.Response:
    return node.http.get(f"/v1/records/{record_id}", headers=node.auth("records:read"))


def test_http_import_reports_rejected_lines_by_their_line_in_the_file(
    node: NodeClient, tmp_path: Path
) -> None:
    bad = person("P-BAD")
    bad["grading"] = {"source": "Z"}
    path = write_ndjson(
        tmp_path / "export.ndjson",
        [person("P-1"), person("P-2"), b"", person("P-3"), b"{not json", bad, person("P-4")],
    )
    summary, waits = _import(node, path, lines_per_chunk=3)
    assert (summary.lines, summary.accepted, summary.rejected) == (7, 4, 2)
    assert summary.created == 4 and summary.complete and waits == []
    # Line numbers count every line of the file (the blank one too), across chunks of three.
    assert [r["line"] for r in summary.rejections] == [5, 6]
    assert summary.rejections[1]["errors"][0]["pointer"].startswith("/grading")
    for record_id in ("P-1", "P-2", "P-3", "P-4"):
        assert _read(node, record_id).status_code == 200
    report = tmp_path / "report.json"
    summary.write_report(report)
    written = json.loads(report.read_text())
    assert written["complete"] is True and written["stopped_at_line"] is None
    assert [r["line"] for r in written["rejections"]] == [5, 6]


def test_a_new_export_under_the_same_file_name_is_imported(
    node: NodeClient, tmp_path: Path
) -> None:
    """Each run sends its own keys: a changed file under a name already imported is loaded
    (not refused as a reused Idempotency-Key), and what is already held comes back unchanged."""
    path = tmp_path / "daily.ndjson"
    write_ndjson(path, [person("P-1"), person("P-2")])
    first, _ = _import(node, path)
    assert (first.created, first.replaced, first.unchanged) == (2, 0, 0)
    write_ndjson(path, [person("P-1"), person("P-2", family="Adeyemi")])
    second, _ = _import(node, path)
    assert second.complete
    assert (second.created, second.replaced, second.unchanged) == (0, 1, 1)
    assert _read(node, "P-2").json()["body"]["names"][0]["family_name"] == "Adeyemi"
    # The very same file again, a third run: nothing is stored twice.
    third, _ = _import(node, path)
    assert (third.created, third.replaced, third.unchanged) == (0, 0, 2)


def test_a_chunk_whose_answer_was_lost_is_sent_again_and_replayed(
    node: NodeClient, tmp_path: Path
) -> None:
    """The node stored chunk 2 but the connection dropped before its answer: the resend carries
    the same key, so the node replays its first report (created, not unchanged)."""
    path = write_ndjson(tmp_path / "f.ndjson", [person(f"P-{i}") for i in range(6)])
    flaky = FlakyTransport(node.http._transport, ["ok", "drop-after", "ok", "ok"])
    summary, waits = _import(node, path, transport=flaky, lines_per_chunk=2, backoff=0.5)
    assert summary.complete and summary.retries == 1 and waits == [0.5]
    assert (summary.created, summary.unchanged, summary.accepted) == (6, 0, 6)
    keys = flaky.bulk_keys
    assert len(keys) == 4 and keys[1] == keys[2] and len(set(keys)) == 3


def test_busy_and_unreachable_nodes_are_waited_for_then_the_import_goes_on(
    node: NodeClient, tmp_path: Path
) -> None:
    path = write_ndjson(tmp_path / "f.ndjson", [person(f"P-{i}") for i in range(4)])
    flaky = FlakyTransport(node.http._transport, ["ok", "connect", "503", "401", "ok"])
    summary, waits = _import(node, path, transport=flaky, lines_per_chunk=2, backoff=1.0)
    # A refused connection waits the backoff (1 s, then doubling); a 503 waits its Retry-After;
    # an expired token is renewed at once, not counted as a retry.
    assert waits == [1.0, 7.0]
    assert summary.complete and summary.retries == 2 and summary.created == 4


def test_an_import_that_cannot_go_on_says_where_it_stopped(
    node: NodeClient, tmp_path: Path
) -> None:
    path = write_ndjson(tmp_path / "f.ndjson", [person(f"P-{i}") for i in range(6)])
    flaky = FlakyTransport(node.http._transport, ["ok", "503", "503", "503"])
    with pytest.raises(ImportStopped) as stopped:
        _import(node, path, transport=flaky, lines_per_chunk=2, retries=2)
    summary = stopped.value.summary
    assert summary.stopped_at_line == 3 and not summary.complete
    assert "503" in (summary.stop_reason or "") and "gave up after 2 retries" in str(stopped.value)
    assert (summary.lines, summary.created) == (2, 2)
    assert _read(node, "P-1").status_code == 200 and _read(node, "P-2").status_code == 404


def test_a_refusal_that_resending_cannot_mend_stops_at_once(
    node: NodeClient, tmp_path: Path
) -> None:
    path = write_ndjson(tmp_path / "f.ndjson", [person("P-1")])
    waits: list[float] = []
    with pytest.raises(ImportStopped) as stopped:
        import_over_http(
            path,
            url=NODE_URL,
            client_id=node.client_id,
            secret="wrong-secret",
            transport=node.http._transport,
            sleep=waits.append,
        )
    assert "token refused (401)" in str(stopped.value) and waits == []
    assert stopped.value.summary.stopped_at_line == 1


def test_a_token_endpoint_that_is_not_ready_is_waited_for(node: NodeClient, tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "f.ndjson", [person("P-1")])
    flaky = FlakyTransport(node.http._transport, [], token_failures=("503", "ok"))
    summary, waits = _import(node, path, transport=flaky)
    assert summary.complete and summary.created == 1 and waits == [1.0]


def test_an_answer_that_is_not_json_stops_the_import(node: NodeClient, tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "f.ndjson", [person("P-1"), person("P-2")])
    flaky = FlakyTransport(node.http._transport, ["ok", "garbage"])
    with pytest.raises(ImportStopped, match="not JSON") as stopped:
        _import(node, path, transport=flaky, lines_per_chunk=1)
    assert stopped.value.summary.stopped_at_line == 2 and stopped.value.summary.created == 1


def test_an_interrupted_import_keeps_what_it_did(
    node: NodeClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C between chunks: the summary passed in holds the chunks stored so far, and the
    command writes it as a report that says where it stopped (exit status 130)."""
    path = write_ndjson(tmp_path / "f.ndjson", [person(f"P-{i}") for i in range(4)])
    summary = ImportSummary()

    def interrupt(_count: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _import(node, path, lines_per_chunk=2, progress=interrupt, summary=summary)
    assert (summary.lines, summary.created) == (2, 2) and summary.seconds > 0

    def interrupted_import(*_args: Any, summary: ImportSummary, **_kwargs: Any) -> None:
        summary.lines, summary.accepted, summary.created = 2, 2, 2
        raise KeyboardInterrupt

    monkeypatch.setattr("gateway.records.importer.import_over_http", interrupted_import)
    result = CliRunner().invoke(
        cli.app, ["import", str(path), "--client-id", "c", "--client-secret", "s"]
    )
    assert result.exit_code == 130, result.output
    report = json.loads((tmp_path / "f.ndjson.report.json").read_text())
    assert (report["complete"], report["stopped_at_line"], report["stop_reason"]) == (
        False,
        3,
        "interrupted",
    )
    assert report["created"] == 2


def _audit_entries(settings: Settings) -> list[Any]:
    store = open_audit_store(settings)
    try:
        return [decode_entry(e) for e in store.read_entries(0, store.size())]
    finally:
        store.close()


def test_local_import_stores_audits_and_names_the_operator(
    any_backend_settings: Settings, tmp_path: Path
) -> None:
    settings = any_backend_settings
    bad = person("P-BAD")
    bad["owner_force"] = "05"
    path = write_ndjson(
        tmp_path / "export.ndjson", [person(f"P-{i}") for i in range(5)] + [bad, person("P-5")]
    )
    progressed: list[int] = []
    summary = run_import_local(
        path, settings=settings, lines_per_chunk=4, progress=progressed.append
    )
    assert (summary.lines, summary.accepted, summary.rejected, summary.created) == (7, 6, 1, 6)
    assert summary.rejections[0]["line"] == 6 and progressed == [4, 3]
    collects = [e for e in _audit_entries(settings) if str(e.kind) == "collect"]
    assert sum(len(e.records) for e in collects) == 6
    assert {(e.actor.client_id, (e.actor.user_id or "")[:3]) for e in collects} == {
        (LOCAL_CLIENT_ID, "os:")
    }
    assert verify_local_log(settings).ok
    # The records are the node's own, readable and searchable through its API as usual.
    client_id, secret = register_client(settings, "rms", ["records:read"])
    with TestClient(create_app(settings), base_url=NODE_URL) as http:
        token = http.post(
            "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
        ).json()["access_token"]
        read = http.get("/v1/records/P-5", headers={"Authorization": f"Bearer {token}"})
        assert read.status_code == 200 and read.json()["id"] == "P-5"


# --- the command itself, against a node process over real HTTP -------------------------------


@pytest.fixture
def served(node_settings: Settings) -> Iterator[tuple[NodeProcess, str, str]]:
    client_id, secret = register_client(node_settings, "rms", ["records:write", "records:read"])
    port = free_port()
    settings = node_settings.model_copy(update={"node_url": f"http://127.0.0.1:{port}"})
    process = NodeProcess(settings, port)
    process.start()
    try:
        yield process, client_id, secret
    finally:
        process.stop()


def _gateway(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_gateway_import_over_http_to_a_node_process(
    served: tuple[NodeProcess, str, str], tmp_path: Path
) -> None:
    process, client_id, secret = served
    path = write_ndjson(
        tmp_path / "export.ndjson", [person(f"P-{i}") for i in range(5)] + [b"[1, 2]"]
    )
    env = {**os.environ, "GATEWAY_CLIENT_ID": client_id, "GATEWAY_CLIENT_SECRET": secret}
    done = _gateway(["import", str(path), "--url", process.url, "--chunk", "2"], env)
    assert done.returncode == 1, done.stdout + done.stderr  # one line rejected
    assert "1 line(s) rejected" in done.stdout
    report = json.loads((tmp_path / "export.ndjson.report.json").read_text())
    assert (report["accepted"], report["rejected"], report["complete"]) == (5, 1, True)
    assert report["rejections"][0]["line"] == 6
    assert "not a JSON object" in report["rejections"][0]["errors"][0]["detail"]


def test_gateway_import_local_and_its_errors(node_settings: Settings, tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "export.ndjson", [person(f"P-{i}") for i in range(3)])
    env = node_env(node_settings)
    done = _gateway(["import", str(path), "--local"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "(local)" in done.stdout
    report = json.loads((tmp_path / "export.ndjson.report.json").read_text())
    assert (report["accepted"], report["created"], report["complete"]) == (3, 3, True)
    # Neither credentials nor --local: a usage error, nothing sent.
    missing = _gateway(["import", str(path)], {**env, "GATEWAY_CLIENT_ID": ""})
    assert missing.returncode == 2 and "--local" in missing.stderr
    # --local on a node that was never initialised: a clear refusal.
    bare = node_env(node_settings.model_copy(update={"data_dir": tmp_path / "nowhere"}))
    bare["GATEWAY_DATA_DIR"] = str(tmp_path / "nowhere")
    refused = _gateway(["import", str(path), "--local"], bare)
    assert refused.returncode == 2 and "cannot open the node" in refused.stdout


def test_gateway_import_local_beside_a_serving_node(
    served: tuple[NodeProcess, str, str], node_settings: Settings, tmp_path: Path
) -> None:
    """A local import while the node serves uploads: both write one database and one audit log;
    every record lands and the log still verifies."""
    process, client_id, secret = served
    local = write_ndjson(tmp_path / "local.ndjson", [person(f"L-{i}") for i in range(1200)])
    remote = write_ndjson(tmp_path / "remote.ndjson", [person(f"R-{i}") for i in range(1200)])
    env = node_env(node_settings)
    running = subprocess.Popen(
        [sys.executable, "-m", "gateway", "import", str(local), "--local", "--chunk", "100"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    over_http = import_over_http(
        remote, url=process.url, client_id=client_id, secret=secret, lines_per_chunk=100
    )
    out, err = running.communicate(timeout=300)
    assert running.returncode == 0, out + err
    assert over_http.created == 1200
    assert json.loads((tmp_path / "local.ndjson.report.json").read_text())["created"] == 1200
    process.stop()
    collects = [e for e in _audit_entries(node_settings) if str(e.kind) == "collect"]
    by_client: dict[str | None, int] = {}
    for entry in collects:
        by_client[entry.actor.client_id] = by_client.get(entry.actor.client_id, 0) + len(
            entry.records
        )
    assert by_client == {LOCAL_CLIENT_ID: 1200, client_id: 1200}
    assert verify_local_log(node_settings).ok


def test_chunks_are_cut_by_lines_or_bytes_whichever_comes_first(tmp_path: Path) -> None:
    path = tmp_path / "f.ndjson"
    path.write_bytes(b"a" * 99 + b"\n" + b"b" * 9 + b"\n" + b"c" * 9 + b"\n" + b"d" * 9)
    assert [(o, n) for o, _, n in chunks(path, 2, max_bytes=100)] == [(0, 1), (1, 2), (3, 1)]
    assert [(o, n) for o, _, n in chunks(path, 10)] == [(0, 4)]
    # The last line gains the newline it lacked; nothing else changes.
    assert b"".join(body for _, body, _ in chunks(path, 3)) == path.read_bytes() + b"\n"
