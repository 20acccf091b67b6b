"""A real browser (Debian's headless Chromium, driven by Playwright) on the demo's web pages.

The dashboard loads and its charts update over time; the console lists topics and shows
messages. Screenshots are saved under artifacts/ as test artifacts.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from kafkito.demo import Demo, DemoOptions

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason="chromium is installed by scripts/bootstrap.sh"
)


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("demo")
    demo = Demo(
        DemoOptions(rate=300, port=0, lake_dir=str(tmp / "lake"), data_dir=str(tmp / "data"))
    )
    report = demo.start()
    try:
        yield report.url
    finally:
        demo.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield instance
        instance.close()


def test_dashboard_loads_and_its_charts_update(demo_url: str, browser: object) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(demo_url)
    page.wait_for_function("Number(document.body.dataset.updates || 0) >= 2", timeout=20_000)
    first = int(page.inner_text("#total-views").replace(",", ""))
    assert page.locator("#rates-chart canvas").count() == 1, "the rate chart is drawn"
    page.wait_for_function(
        f"Number(document.getElementById('total-views').textContent.replace(/,/g, '')) > {first}",
        timeout=20_000,
    )
    page.wait_for_function(
        "document.querySelectorAll('#top-pages .row').length >= 3", timeout=20_000
    )
    assert page.locator("#lag-chart canvas").count() == 1, "the lag chart is drawn"
    widths = page.eval_on_selector_all("#top-pages .fill", "els => els.map(e => e.style.width)")
    percents = [float(w.rstrip("%")) for w in widths]
    assert percents[0] == 100 and percents == sorted(percents, reverse=True), "bars by views"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    assert errors == [], errors
    page.close()


def test_console_lists_topics_and_shows_messages(demo_url: str, browser: object) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
    page.goto(demo_url + "console")
    names = page.locator("table a").all_inner_texts()
    assert {"page_views", "clicks"} <= set(names)
    page.click("text=page_views")
    page.wait_for_selector("#messages")
    values = page.locator("#messages pre.value").all_inner_texts()
    assert values, "the message browser shows messages"
    assert any('"event_id"' in v for v in values), "JSON values are rendered as JSON"
    page.screenshot(path=str(ARTIFACTS / "console-topic.png"), full_page=True)
    page.goto(demo_url + "console/groups/analytics")
    assert "lag" in page.inner_text("main")
    page.screenshot(path=str(ARTIFACTS / "console-group.png"), full_page=True)
    page.close()
