"""Every console action in a real browser (Debian's headless Chromium, driven by Playwright):
search, produce, topic create / config edit / delete, offset reset, dead-letter re-publish,
live throughput. The console is served by uvicorn over a real broker; each result is checked
in the cluster with a separate client. Screenshots go to artifacts/console-*.png."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from test_console_actions import dead_letter, fill
from test_dashboard_browser import ARGS, ARTIFACTS, CHROMIUM

from kafkito import Broker
from kafkito.console.app import create_app
from kafkito.flow import letters

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no chromium")
WAIT_MS = 15_000


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with Broker(port=0, data_dir=str(tmp_path_factory.mktemp("console"))) as bootstrap:
        yield bootstrap


@pytest.fixture(scope="module")
def url(cluster: str) -> Iterator[str]:
    import uvicorn

    app = create_app({"bootstrap.servers": cluster})
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


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    page.close()
    assert errors == [], errors


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"console-{name}.png"), full_page=True)


def read_one(bootstrap: str, topic: str, partition: int, offset: int) -> Any:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "browser-check"})
    consumer.assign([TopicPartition(topic, partition, offset)])
    try:
        msg = consumer.poll(10)
    finally:
        consumer.close()
    assert msg is not None and msg.error() is None
    return msg


def test_search_filters_and_expands_rows(url: str, cluster: str, page: Any) -> None:
    from kafkito.client.admin import Admin

    with Admin(settings={"bootstrap.servers": cluster}) as admin:
        admin.create_topic("activity", 2)
    fill(cluster, "activity")
    page.goto(f"{url}/console/topics/activity")
    page.fill("#search input[name=value]", '"click"')
    page.fill("#search input[name=key]", "user-[03]")
    page.check("#search input[name=regex]")
    page.fill("#search input[name=offset_from]", "0")
    page.click("#search button")
    page.wait_for_selector("#found")
    keys = page.locator("#messages tr.msg td:nth-child(4)").all_inner_texts()
    assert keys and set(keys) == {"user-0", "user-3"}  # every 3rd is a click: keys 0 and 3
    assert len(keys) == 20
    first = page.locator("#messages tr.msg").first
    detail = page.locator("#messages tr.detail").first
    assert detail.is_hidden()
    first.click()
    assert detail.is_visible() and '"kind": "click"' in detail.inner_text()
    shot(page, "search")
    # paging: 7 a page, the next-page link continues where the page ended
    page.goto(f"{url}/console/topics/activity?partition=1&offset_from=0&limit=7")
    offsets = page.locator("#messages tr.msg td:nth-child(2)").all_inner_texts()
    page.click("#next-page")
    page.wait_for_selector("#messages")
    more = page.locator("#messages tr.msg td:nth-child(2)").all_inner_texts()
    assert [int(o) for o in offsets + more] == list(range(14))


def test_produce_from_the_page(url: str, cluster: str, page: Any) -> None:
    page.goto(f"{url}/console/topics/activity")
    page.fill("#produce input[name=key]", "from-ui")
    page.select_option("#produce select[name=partition]", "1")
    page.fill("#produce textarea[name=value]", '{"hello": "browser"}')
    page.fill("#produce textarea[name=headers]", "origin=console")
    page.click("#produce button")
    page.wait_for_selector("#produce-result.ok", timeout=WAIT_MS)
    text = page.inner_text("#produce-result")
    offset = int(text.rsplit(" ", 1)[1])
    assert "partition 1" in text
    shot(page, "produce")
    msg = read_one(cluster, "activity", 1, offset)
    assert (msg.key(), msg.value(), msg.headers()) == (
        b"from-ui",
        b'{"hello": "browser"}',
        [("origin", b"console")],
    )


def test_create_edit_config_and_delete_a_topic(url: str, cluster: str, page: Any) -> None:
    page.goto(f"{url}/console")
    page.fill("#create-topic input[name=name]", "scratch")
    page.fill("#create-topic input[name=partitions]", "3")
    page.fill("#create-topic textarea[name=configs]", "retention.ms=7200000")
    page.click("#create-topic button")
    page.wait_for_selector("#topics tr[data-topic=scratch]", timeout=WAIT_MS)
    page.goto(f"{url}/console/topics/scratch")
    page.click("#configs-details summary")
    row = page.locator("#configs tr[data-config='retention.ms']")
    assert "7200000" in row.inner_text()
    row.locator("button.edit-config").click()
    row.locator("input[name=value]").fill("3600000")
    page.once("dialog", lambda dialog: dialog.accept())  # "Set retention.ms = ...?"
    row.locator("button.primary").click()
    page.wait_for_function(
        "(r => r && r.innerText.includes('3600000') && !r.querySelector('input'))"
        "(document.querySelector(\"#configs tr[data-config='retention.ms']\"))",
        timeout=WAIT_MS,
    )
    shot(page, "config-edited")
    from kafkito.client.admin import Admin

    with Admin(settings={"bootstrap.servers": cluster}) as admin:
        assert admin.describe_configs("scratch")["retention.ms"].value == "3600000"
        # delete: the button stays disabled until the name is typed
        button = page.locator("#delete-topic button")
        page.fill("#delete-topic input", "scratc")
        assert button.is_disabled()
        page.fill("#delete-topic input", "scratch")
        assert button.is_enabled()
        shot(page, "delete-confirm")
        button.click()
        page.wait_for_url(f"{url}/console", timeout=WAIT_MS)
        deadline = time.monotonic() + 10
        while "scratch" in {t.name for t in admin.list_topics()}:
            assert time.monotonic() < deadline, "scratch was not deleted"
            time.sleep(0.1)


def test_reset_offsets_previews_then_applies(url: str, cluster: str, page: Any) -> None:
    consumer = Consumer({"bootstrap.servers": cluster, "group.id": "reporting"})
    consumer.commit(
        offsets=[TopicPartition("activity", 0, 30), TopicPartition("activity", 1, 30)],
        asynchronous=False,
    )
    consumer.close()
    page.goto(f"{url}/console/groups/reporting")
    page.wait_for_function(
        "Number(document.getElementById('lag-chart').dataset.samples || 0) >= 2",
        timeout=WAIT_MS,
    )
    assert page.locator("#lag-chart canvas").count() == 1, "the lag chart is drawn"
    page.select_option("#reset-offsets select[name=to]", "offset")
    page.fill("#reset-offsets input[name=value]", "10")
    page.click("#reset-offsets button")
    page.wait_for_selector("#plan", timeout=WAIT_MS)
    plan = page.locator("#plan td.num").all_inner_texts()
    assert plan == ["10", "10"]
    shot(page, "reset-preview")
    admin_check = Consumer({"bootstrap.servers": cluster, "group.id": "reporting"})
    parts = [TopicPartition("activity", 0), TopicPartition("activity", 1)]
    before = [tp.offset for tp in admin_check.committed(parts, timeout=10)]
    assert before == [30, 30], "the preview changed nothing"
    page.click("#apply-reset")
    page.wait_for_selector("#apply-result.ok", timeout=WAIT_MS)
    after = [tp.offset for tp in admin_check.committed(parts, timeout=10)]
    admin_check.close()
    assert after == [10, 10]
    shot(page, "reset-applied")


def test_republish_chosen_dead_letters(url: str, cluster: str, page: Any) -> None:
    producer = Producer({"bootstrap.servers": cluster})
    producer.produce("payments", b"first")
    for i in range(3):
        dead_letter(producer, "payments", i)
    assert producer.flush(10) == 0
    page.goto(f"{url}/console/dead-letters")
    rows = page.locator("#dead-letters tr.dead")
    assert rows.count() == 3
    assert "bad amount in record" in page.inner_text("#dead-letters")
    assert "payments[0]@1" in page.inner_text("#dead-letters")
    button = page.locator("#republish")
    assert button.is_disabled()
    page.locator("#dead-letters tr.dead[data-offset='2'] input.pick").check()
    shot(page, "dead-letters")
    button.click()
    page.wait_for_selector("#republish-result.ok", timeout=WAIT_MS)
    assert "payments[0]@1" in page.inner_text("#republish-result")
    msg = read_one(cluster, "payments", 0, 1)
    assert (msg.key(), msg.value(), msg.headers()) == (b"k2", b"v2\xff", [("trace", b"t2")])
    assert letters.ORIGINAL_TOPIC not in dict(msg.headers() or [])


def test_throughput_per_topic_is_live(url: str, cluster: str, page: Any) -> None:
    page.goto(f"{url}/console")
    stop = threading.Event()

    def keep_writing() -> None:
        producer = Producer({"bootstrap.servers": cluster, "linger.ms": 5})
        while not stop.is_set():
            producer.produce("activity", b"x" * 10, partition=0)
            producer.poll(0)
            time.sleep(0.005)
        producer.flush(10)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        page.wait_for_function(
            "Number(document.querySelector(\"#topics tr[data-topic='activity'] .rate\")"
            ".textContent) > 0",
            timeout=WAIT_MS,
        )
    finally:
        stop.set()
        writer.join(10)
    shot(page, "topics")
