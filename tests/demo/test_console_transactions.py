"""The console's transactions view (page and JSON API) over transactions made by real
transactional producers (kafkito.testing.transactions), and the same page in a headless
Chromium (screenshot in artifacts/console-transactions.png)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from test_dashboard_browser import ARGS, ARTIFACTS, CHROMIUM

from kafkito.console.app import create_app
from kafkito.testing.transactions import OPEN_TIMEOUT_MS, three_transactions


def test_transactions_page_and_api(broker: str) -> None:
    client = TestClient(create_app({"bootstrap.servers": broker}))
    assert client.get("/api/transactions").json() == {"open": 0, "total": 0, "transactions": []}
    with three_transactions(broker) as scene:
        view = client.get("/api/transactions").json()
        assert (view["open"], view["total"]) == (1, 3)
        first, *rest = view["transactions"]  # open ones first
        assert (first["transactional_id"], first["state"], first["open"]) == (
            scene.open_id,
            "Ongoing",
            True,
        )
        assert first["partitions"] == [f"{scene.topic}[0]"]
        assert first["timeout_ms"] == OPEN_TIMEOUT_MS
        assert 0 <= first["age_ms"] < 60_000
        assert 0 < first["expires_in_ms"] <= OPEN_TIMEOUT_MS
        assert {(r["transactional_id"], r["state"], r["open"]) for r in rest} == {
            (scene.committed_id, "CompleteCommit", False),
            (scene.aborted_id, "CompleteAbort", False),
        }
        producers = client.get(f"/api/topics/{scene.topic}/producers").json()
        assert sorted((p["partition"], p["txn_start_offset"] is not None) for p in producers) == [
            (0, False),
            (0, True),
            (1, False),
            (1, False),
        ]
        assert client.get("/api/topics/nope/producers").status_code == 404

        page = client.get(f"/console/transactions?topic={scene.topic}")
        assert page.status_code == 200
        assert scene.open_id in page.text and "Ongoing" in page.text
        assert f"{scene.topic}[0]" in page.text and "id='producers'" in page.text
        assert "<span id='open-count'>1</span>" in page.text
        missing = client.get("/console/transactions?topic=nope")
        assert missing.status_code == 200  # the transactions still show
        assert "cannot describe the producers of &#x27;nope&#x27;" in missing.text
        assert scene.open_id in missing.text
    assert 'href="/console/transactions"' in client.get("/console").text


@pytest.fixture
def url(broker: str) -> Iterator[str]:
    import uvicorn

    app = create_app({"bootstrap.servers": broker})
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the console did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no chromium")
def test_transactions_in_a_browser(broker: str, url: str) -> None:
    from playwright.sync_api import sync_playwright

    with three_transactions(broker) as scene, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page: Any = browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{url}/console")
            page.click("text=Transactions")
            page.wait_for_selector("#transactions")
            first = page.locator("#transactions tr[data-open='1']")
            assert first.count() == 1
            assert scene.open_id in first.inner_text()
            page.fill("input[name=topic]", scene.topic)
            page.click("text=Show producers")
            page.wait_for_selector(f"#producers[data-topic='{scene.topic}']")
            cells = page.locator("#producers tr td:last-child").all_inner_texts()
            assert sorted(cells) == ["", "", "", "0"]  # one open transaction, from offset 0
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "console-transactions.png"), full_page=True)
            assert errors == [], errors
        finally:
            browser.close()
