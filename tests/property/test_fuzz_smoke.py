"""A bounded atheris run over every peer-bytes decoder, and a replay of the kept corpus.

The smoke run lasts KAFKITO_FUZZ_SECONDS (50 s by default, so that with the hypothesis
properties the default test run spends at most about a minute fuzzing; nightly runs set
1800). CI calls it with `pytest -m fuzz`. Seeds are valid Produce frames, record batches and
compressed blobs (test_garbage_props.SEEDS); libFuzzer mutates from there.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fuzz_targets import decode_anything
from test_garbage_props import SEEDS

from kafkito.errors import ProtocolError

HERE = Path(__file__).parent
CORPUS = HERE / "fuzz_corpus"


@pytest.mark.fuzz
@pytest.mark.timeout(300)
def test_atheris_smoke(tmp_path: Path) -> None:
    pytest.importorskip("atheris")
    seconds = int(os.environ.get("KAFKITO_FUZZ_SECONDS", "50"))
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    for i, seed in enumerate(SEEDS):
        (seeds / f"seed-{i}").write_bytes(seed)
    work = tmp_path / "corpus"
    work.mkdir()
    dirs = [str(work), str(seeds)] + ([str(CORPUS)] if CORPUS.is_dir() else [])
    proc = subprocess.run(
        [
            sys.executable,
            str(HERE / "fuzz_decoders.py"),
            f"-max_total_time={seconds}",
            "-rss_limit_mb=1024",
            "-timeout=10",
            "-max_len=4096",
            "-print_final_stats=1",
            f"-artifact_prefix={tmp_path}/",
            *dirs,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        check=False,
    )
    crashes = sorted(p.name for p in tmp_path.iterdir() if p.is_file())
    assert proc.returncode == 0 and not crashes, (
        f"fuzzer exit {proc.returncode}, artifacts {crashes}:\n{proc.stderr[-4000:]}"
    )
    assert "stat::number_of_executed_units" in proc.stderr


def test_kept_corpus_replays_cleanly() -> None:
    # Inputs that once crashed a decoder (and the seeds) must now decode or raise cleanly.
    inputs = [*SEEDS, *(p.read_bytes() for p in sorted(CORPUS.glob("*")) if p.is_file())]
    for data in inputs:
        with contextlib.suppress(ProtocolError):
            decode_anything(data)
