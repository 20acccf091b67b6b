"""`kafkito demo --pubsub`: the activity-tracking demo over Pub/Sub (the emulator), end to end:
every valid event counted and stored, every malformed one dead-lettered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

from kafkito.demo import DemoOptions
from kafkito.demo.lake import query
from kafkito.demo.pubsub import PubSubDemo


def test_demo_over_pubsub_counts_stores_and_dead_letters_everything(
    project: str, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    options = DemoOptions(
        pubsub=True,
        pubsub_project=project,
        rate=300,
        port=0,
        lake_dir=str(lake),
        malformed_share=0.05,
        seed=5,
    )
    demo = PubSubDemo(options)
    report = demo.start()
    try:
        time.sleep(5)
        deadline = time.monotonic() + 60  # a loaded machine produces slower than `rate`
        while len(report.produced) <= 800 and time.monotonic() < deadline:
            time.sleep(0.2)
        with urllib.request.urlopen(report.url + "api/dashboard", timeout=10) as answer:
            dashboard = json.load(answer)
        assert set(dashboard["lag"]) == {"analytics", "lake"}
    finally:
        report = demo.stop()
    assert report.drained, "the flows did not catch up"
    produced = set(report.produced)
    assert len(produced) > 800 and report.malformed
    assert report.counted_ids == produced, "analytics counted exactly the valid events"
    ids = Counter(row[0] for row in query(lake, "").select("event_id").fetchall())
    assert set(ids) == produced, "the lake holds every valid event"
    analytics = [f for f in demo._flows if f.name.startswith("analytics")]
    lake_flows = [f for f in demo._flows if f.name.startswith("lake")]
    assert sum(f.dead_lettered for f in analytics) == len(report.malformed)
    assert sum(f.dead_lettered for f in lake_flows) == len(report.malformed)


def test_demo_pubsub_without_an_emulator_says_what_to_install(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PUBSUB_EMULATOR_HOST"}
    env["KAFKITO_PUBSUB_EMULATOR"] = str(tmp_path / "no-such-emulator")
    done = subprocess.run(
        [sys.executable, "-m", "kafkito", "demo", "--pubsub", "--port", "0", "--duration", "1"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1, done.stderr
    assert "no-such-emulator is not a file" in done.stderr
