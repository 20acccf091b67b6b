"""The console's client-quota page and JSON API against a real broker."""

from __future__ import annotations

from starlette.testclient import TestClient

from kafkito.client.quotas import alter_quotas
from kafkito.console.app import create_app


def test_quotas_page_and_api(broker: str) -> None:
    settings = {"bootstrap.servers": broker}
    client = TestClient(create_app(settings))
    assert client.get("/api/quotas").json() == []
    alter_quotas(settings, {"client-id": "loader"}, {"producer_byte_rate": 1048576})
    alter_quotas(settings, {"user": None}, {"consumer_byte_rate": 2048})
    assert client.get("/api/quotas").json() == [
        {"entity": {"client-id": "loader"}, "key": "producer_byte_rate", "value": 1048576.0},
        {"entity": {"user": None}, "key": "consumer_byte_rate", "value": 2048.0},
    ]
    page = client.get("/console/quotas")
    assert page.status_code == 200
    assert "client-id=loader" in page.text and "1,048,576" in page.text
    assert "user=&lt;default&gt;" in page.text
    assert 'href="/console/quotas"' in client.get("/console").text
