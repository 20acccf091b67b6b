"""Issue #17, as a user meets the CLI: each mistake of the issue ends in one line on stderr
with the documented exit code, no traceback, within the time the docs promise.

The real `kafkito` command runs in a child process against real brokers: an embedded broker
with auto-creation off (module-wide), and a SASL broker for the wrong password. The 20 s
bound on each mistake is a hang guard over the promised 10 s, not a timing goal.
"""

from __future__ import annotations

import base64
import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kafkito import Broker
from kafkito.broker.auth.store import UserStore
from kafkito.storage.recovery import CLEAN_SHUTDOWN_MARKER

EXIT_USAGE, EXIT_UNREACHABLE, EXIT_NOT_FOUND, EXIT_AUTH = 2, 3, 4, 5
HANG_GUARD_S = 20.0


def run(
    *args: str,
    stdin: bytes = b"",
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> tuple[subprocess.CompletedProcess[bytes], float]:
    """`python -m kafkito ARGS` as a user runs it; returns (result, seconds it took)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKITO_") or "__" in k}
    full_env.update(env or {})
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "kafkito", *args],
        input=stdin,
        capture_output=True,
        env=full_env,
        timeout=60,
        cwd=cwd,
        check=False,
    )
    return done, time.monotonic() - started


def assert_one_line_error(
    done: subprocess.CompletedProcess[bytes], took_s: float, code: int, *words: str
) -> str:
    """The documented code, one `kafkito: error:` line naming `words`, no traceback."""
    err = done.stderr.decode()
    assert done.returncode == code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("kafkito: error: "), err
    assert "Traceback" not in err and "KafkaError{" not in err, err
    for word in words:
        assert word in lines[0], err
    assert took_s < HANG_GUARD_S, f"took {took_s:.1f}s: {err}"
    return lines[0]


@pytest.fixture(scope="module")
def strict_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An embedded broker that does not create topics on first use (a 2-partition topic
    'two' exists), with a 10 kB record limit."""
    data = tmp_path_factory.mktemp("strict")
    with Broker(
        port=0, data_dir=str(data), auto_create_topics=False, message_max_bytes=10_000
    ) as bootstrap:
        created, _ = run("-b", bootstrap, "topics", "create", "two", "--partitions", "2")
        assert created.returncode == 0, created.stderr
        yield bootstrap


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A SASL_PLAINTEXT broker with user carol; yields (bootstrap, a dir for config files)."""
    where = tmp_path_factory.mktemp("sasl")
    users = UserStore(str(where / "users.json"))
    users.set_password("carol", "right-pw", mechanisms=("SCRAM-SHA-512",), iterations=4096)
    users.save()
    with Broker(
        port=0,
        data_dir=str(where / "data"),
        security_protocol="SASL_PLAINTEXT",
        sasl_users_file=str(where / "users.json"),
    ) as bootstrap:
        yield bootstrap, where


def config_file(where: Path, bootstrap: str, password: str) -> str:
    path = where / f"client-{password}.yaml"
    path.write_text(f"brokers: [{bootstrap}]\nclient:\n  username: carol\n  password: {password}\n")
    return str(path)


# -- item 1: the local broker stops cleanly after every command --------------------------


def test_every_command_on_the_local_broker_ends_without_a_traceback(tmp_path: Path) -> None:
    env = {"KAFKITO_DATA_DIR": str(tmp_path / "data")}
    commands: list[tuple[tuple[str, ...], bytes]] = [
        (("produce", "greetings"), b"hello\n"),
        (("consume", "greetings", "-n", "1"), b""),
        (("topics", "create", "other", "--partitions", "2"), b""),
        (("topics", "describe", "other"), b""),
        (("groups", "list"), b""),
        (("bench", "-n", "50", "--size", "10", "--topic", "benched"), b""),
    ]
    for args, stdin in commands:
        done, _ = run(*args, stdin=stdin, env=env, cwd=tmp_path)
        err = done.stderr.decode()
        assert done.returncode == 0, (args, err)
        assert "Traceback" not in err and "cannot schedule" not in err, (args, err)
        assert (tmp_path / "data" / CLEAN_SHUTDOWN_MARKER).exists(), (args, err)


# -- item 2: global options in any position ------------------------------------------------


def test_global_options_work_after_the_command(strict_broker: str) -> None:
    after, _ = run("topics", "list", "--json", "--brokers", strict_broker)
    assert after.returncode == 0, after.stderr
    rows = [json.loads(line) for line in after.stdout.splitlines()]
    assert {"topic": "two", "partitions": 2} in rows
    before, _ = run("--json", "--brokers", strict_broker, "topics", "list")
    assert [json.loads(line) for line in before.stdout.splitlines()] == rows
    between, _ = run("topics", "-b", strict_broker, "--json", "list")
    assert [json.loads(line) for line in between.stdout.splitlines()] == rows
    produced, _ = run("produce", "two", "-p", "1", "-b", strict_broker, stdin=b"v1\n")
    assert produced.returncode == 0, produced.stderr
    assert b"produced 1 record to two" in produced.stdout + produced.stderr  # not "1 records"
    # --json on consume prints JSON objects, given before the command or after it
    for args in (("--json", "consume", "two"), ("consume", "two", "--json")):
        consumed, _ = run(*args, "-p", "1", "-b", strict_broker)
        record = json.loads(consumed.stdout.splitlines()[0])
        assert (record["partition"], record["offset"], record["value"]) == (1, 0, "v1")


# -- item 3: mistakes end fast with the documented code ------------------------------------


def test_nothing_listening_is_exit_3_within_the_timeout() -> None:
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    done, took = run("produce", "x", "-b", f"127.0.0.1:{port}", stdin=b"a\n")
    assert_one_line_error(done, took, EXIT_UNREACHABLE, "broker unreachable", "raise --timeout")
    assert took < 12.0, f"took {took:.1f}s"  # default --timeout 8 s, plus start-up
    quick, took = run("topics", "list", "--timeout", "1", "-b", f"127.0.0.1:{port}")
    assert_one_line_error(quick, took, EXIT_UNREACHABLE, "unreachable")


def test_producing_mistakes_each_have_their_code(strict_broker: str) -> None:
    b = ("-b", strict_broker)
    missing, took = run("produce", "no-such-topic", *b, stdin=b"a\n")
    assert_one_line_error(missing, took, EXIT_NOT_FOUND, "'no-such-topic'", "does not exist")
    no_partition, took = run("produce", "two", "-p", "7", *b, stdin=b"a\n")
    assert_one_line_error(no_partition, took, EXIT_NOT_FOUND, "no partition 7")
    invalid, took = run("produce", "bad name!", *b, stdin=b"a\n")
    assert_one_line_error(invalid, took, EXIT_USAGE, "invalid topic name")
    too_large, took = run("produce", "two", *b, stdin=b"x" * 2_000_000 + b"\n")
    assert_one_line_error(too_large, took, EXIT_USAGE, "too large")  # refused by the client
    over_broker, took = run("produce", "two", *b, stdin=b"x" * 50_000 + b"\n")
    assert_one_line_error(over_broker, took, EXIT_USAGE, "too large")  # by the broker (10 kB)
    negative, took = run("topics", "create", "neg", "--partitions", "-3", *b)
    assert_one_line_error(negative, took, EXIT_USAGE, "--partitions")
    # nothing of the refused input was written
    listed, _ = run("--json", "topics", "describe", "two", *b)
    assert all(json.loads(line).get("records", 0) == 0 for line in listed.stdout.splitlines())


def test_a_wrong_password_is_exit_5_at_once(sasl_broker: tuple[str, Path]) -> None:
    bootstrap, where = sasl_broker
    wrong = config_file(where, bootstrap, "wrong-pw")
    for args, stdin in (
        (("produce", "s"), b"a\n"),
        (("consume", "s"), b""),
        (("topics", "list"), b""),
    ):
        # A timeout far above "at once": a refusal that waited for it would take over 30 s,
        # while process start-up on a loaded machine stays well under 15.
        done, took = run(*args, "--config", wrong, "--timeout", "30", stdin=stdin)
        line = assert_one_line_error(done, took, EXIT_AUTH, "authentication failed")
        assert "wrong-pw" not in line
        assert took < 15.0, f"{args}: took {took:.1f}s"  # not the timeout: refused at once
    right = config_file(where, bootstrap, "right-pw")
    ok, _ = run("produce", "s", "--config", right, stdin=b"a\n")
    assert ok.returncode == 0, ok.stderr


def test_librdkafka_logs_stay_quiet_unless_debug() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    quiet, _ = run("health", "--timeout", "1", "-b", f"127.0.0.1:{port}")
    assert len(quiet.stderr.decode().strip().splitlines()) == 1, quiet.stderr
    loud, _ = run("health", "--timeout", "1", "-b", f"127.0.0.1:{port}", "--debug")
    assert b"Traceback" in loud.stderr
    assert len(loud.stderr.decode().splitlines()) > 3


# -- item 4: the broker on a busy port, the demo without its extra ------------------------


def test_broker_on_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done, took = run("broker", "--port", str(port), "--data-dir", str(tmp_path / "d"))
    assert_one_line_error(done, took, EXIT_USAGE, f"port {port}", "in use", "--port")


def test_demo_without_its_extra_names_the_extra(tmp_path: Path) -> None:
    # As if pyarrow and duckdb were not installed: a None in sys.modules makes `import`
    # raise ModuleNotFoundError and find_spec answer None.
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\nsys.modules['pyarrow'] = None\nsys.modules['duckdb'] = None\n"
    )
    pythonpath = os.pathsep.join([str(blocker), os.environ.get("PYTHONPATH", "")])
    done, took = run("demo", "--duration", "1", env={"PYTHONPATH": pythonpath})
    assert_one_line_error(done, took, EXIT_USAGE, "pip install 'kafkito[demo]'")


def test_demo_on_a_busy_port_hints_at_port() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done, took = run("demo", "--port", str(port), "--duration", "1")
    assert_one_line_error(done, took, EXIT_USAGE, "--port")


# -- item 5: binary data, byte for byte -----------------------------------------------------


@pytest.mark.parametrize("encoding", ["base64", "hex"])
def test_random_bytes_round_trip_exactly(strict_broker: str, encoding: str) -> None:
    rng = random.Random(17)
    print("seed 17")
    records = [
        (rng.randbytes(rng.randint(1, 16)), rng.randbytes(rng.randint(0, 300))) for _ in range(50)
    ]
    enc = {"base64": lambda b: base64.b64encode(b), "hex": lambda b: b.hex().encode()}[encoding]
    dec = {"base64": base64.b64decode, "hex": bytes.fromhex}[encoding]
    lines = b"".join(enc(k) + b"\t" + enc(v) + b"\n" for k, v in records)
    topic = ("-b", strict_broker)
    name = f"bin-{encoding}"
    created, _ = run("topics", "create", name, *topic)
    assert created.returncode == 0, created.stderr
    produced, _ = run(
        "produce", name, "-K", "\t", "--input-format", encoding, "--key-input-format",
        encoding, *topic, stdin=lines,
    )  # fmt: skip
    assert produced.returncode == 0, produced.stderr
    consumed, _ = run(
        "consume", name, "--format", "kv", "--output-format", encoding,
        "--key-output-format", encoding, *topic,
    )  # fmt: skip
    assert consumed.returncode == 0, consumed.stderr
    got = []
    for line in consumed.stdout.splitlines():
        key, value = line.split(b"\t")
        got.append((dec(key.decode()), dec(value.decode())))
    assert got == records


def test_raw_bytes_and_json_format_keep_every_byte(strict_broker: str) -> None:
    rng = random.Random(71)
    values = [bytes(b for b in rng.randbytes(40) if b != 0x0A) for _ in range(20)]  # a line each
    values.append("héllo wörld".encode())
    b = ("-b", strict_broker)
    assert run("topics", "create", "bin-raw", *b)[0].returncode == 0
    produced, _ = run("produce", "bin-raw", *b, stdin=b"".join(v + b"\n" for v in values))
    assert produced.returncode == 0, produced.stderr
    raw, _ = run("consume", "bin-raw", *b)
    assert raw.stdout.split(b"\n")[:-1] == values
    as_json, _ = run("consume", "bin-raw", "--format", "json", *b)
    for line, value in zip(as_json.stdout.splitlines(), values, strict=True):
        record = json.loads(line)
        if record.get("value_encoding") == "base64":
            assert base64.b64decode(record["value"]) == value
        else:
            assert record["value"].encode() == value  # text stays text, never replaced
    assert "\ufffd" not in as_json.stdout.decode()
    bad, took = run("produce", "bin-raw", "--input-format", "base64", *b, stdin=b"@@@\n")
    assert_one_line_error(bad, took, EXIT_USAGE, "line 1", "base64")


def test_one_record_written_raw_is_exactly_its_bytes(strict_broker: str) -> None:
    """docs/cli.md: `consume -n 1 --output-format raw > photo.jpg` gives the exact bytes (a
    value with newlines and a trailing newline included); several records are separated by
    newlines, with none after the last."""
    rng = random.Random(5)
    print("seed 5")
    photo = rng.randbytes(3000) + b"\n"
    b = ("-b", strict_broker)
    assert run("topics", "create", "bin-photo", *b)[0].returncode == 0
    encoded = base64.b64encode(photo) + b"\n"
    produced, _ = run("produce", "bin-photo", "--input-format", "base64", *b, stdin=encoded)
    assert produced.returncode == 0, produced.stderr
    one, _ = run("consume", "bin-photo", "-n", "1", "--output-format", "raw", *b)
    assert one.returncode == 0, one.stderr
    assert one.stdout == photo
    assert run("topics", "create", "bin-two", *b)[0].returncode == 0
    assert run("produce", "bin-two", *b, stdin=b"a\nb\n")[0].returncode == 0
    assert run("consume", "bin-two", "--output-format", "raw", *b)[0].stdout == b"a\nb"
    assert run("consume", "bin-two", *b)[0].stdout == b"a\nb\n"  # the default: one per line


# -- item 6: validation ----------------------------------------------------------------------


def test_bad_numbers_and_templates_are_refused(strict_broker: str) -> None:
    b = ("-b", strict_broker)
    for args, words in (
        (("consume", "two", "-n", "-1"), ("--count",)),
        (("bench", "-n", "-5"), ("--count",)),
        (("produce", "two", "--rate", "-1"), ("--rate",)),
        (("consume", "two", "--template", "{nokey}"), ("{nokey}", "{value}")),
        (("consume", "two", "--from", "999"), ("past the end", "999")),
    ):
        done, took = run(*args, *b, stdin=b"a\n")
        assert_one_line_error(done, took, EXIT_USAGE, *words)


def test_a_misspelled_environment_variable_is_named(tmp_path: Path) -> None:
    done, took = run("topics", "list", env={"KAFKITO_BROKER": "127.0.0.1:9"}, cwd=tmp_path)
    assert_one_line_error(done, took, EXIT_USAGE, "KAFKITO_BROKER", "KAFKITO_BROKERS")
    assert not (tmp_path / ".kafkito").exists()  # no local broker was started instead


# -- item 7: help text ---------------------------------------------------------------------


def test_consume_help_has_no_literal_backslash_b() -> None:
    done, _ = run("consume", "--help")
    text = done.stdout.decode()
    assert "\\b" not in text
    examples = text.split("Examples:")[1].split("Options:")[0]
    assert sum(1 for line in examples.splitlines() if "kafkito consume" in line) >= 4
    bare, _ = run()  # `kafkito` alone shows the help, not an error line
    assert bare.stderr.startswith(b"Usage: kafkito") or bare.stdout.startswith(b"Usage: kafkito")
    assert b"kafkito: error" not in bare.stderr


# -- the console command ---------------------------------------------------------------------


def test_console_command_serves_on_loopback_and_read_only_refuses(strict_broker: str) -> None:
    import re
    import urllib.error
    import urllib.request

    proc = subprocess.Popen(
        [sys.executable, "-m", "kafkito", "console", "--port", "0", "--read-only"],
        stderr=subprocess.PIPE,
        env={**os.environ, "KAFKITO_BROKERS": strict_broker},
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline().decode()
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert found and "(read-only)" in line, line
        base = found.group(0)
        deadline = time.monotonic() + HANG_GUARD_S
        while True:
            try:
                with urllib.request.urlopen(base + "api/topics", timeout=5) as answer:
                    assert "two" in {t["name"] for t in json.loads(answer.read())}
                    break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "the console did not answer"
                time.sleep(0.1)
        request = urllib.request.Request(
            base + "api/topics",
            data=b'{"name": "sneaky"}',
            headers={"content-type": "application/json"},
            method="POST",
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        assert refused.value.code == 403
    finally:
        proc.terminate()
        proc.wait(10)


# -- the same answers from Apache Kafka --------------------------------------------------------


def test_the_same_answers_on_apache_kafka(kafka_reference: Any, topic_name: str) -> None:
    """Apache Kafka creates topics on first use (its default): the first write waits through
    LEADER_NOT_AVAILABLE; the mistakes answer as on kafkito."""
    b = ("-b", kafka_reference.bootstrap)
    rng = random.Random(23)
    values = [rng.randbytes(rng.randint(0, 200)) for _ in range(30)]
    lines = b"".join(base64.b64encode(v) + b"\n" for v in values)
    produced, _ = run("produce", topic_name, "--input-format", "base64", *b, stdin=lines)
    assert produced.returncode == 0, produced.stderr
    consumed, _ = run("consume", topic_name, "--output-format", "base64", *b)
    assert [base64.b64decode(v) for v in consumed.stdout.split()] == values
    no_partition, took = run("produce", topic_name, "-p", "7", *b, stdin=b"a\n")
    assert_one_line_error(no_partition, took, EXIT_NOT_FOUND, "no partition 7")
    past, took = run("consume", topic_name, "--from", "999", *b)
    assert_one_line_error(past, took, EXIT_USAGE, "past the end", "[0] 30")
    invalid, took = run("produce", "bad name!", *b, stdin=b"a\n")
    assert_one_line_error(invalid, took, EXIT_USAGE, "invalid topic name")
    unknown, took = run("consume", "no-such-topic-" + topic_name, *b)
    assert_one_line_error(unknown, took, EXIT_NOT_FOUND, "does not exist")


# -- item 3, the library: a grouped Reader on a missing topic ----------------------------------


@pytest.mark.parametrize("group_id", [None, "readers"])
def test_a_reader_on_a_missing_topic_raises_instead_of_waiting(
    strict_broker: str, group_id: str | None
) -> None:
    from kafkito.client import Reader
    from kafkito.client.errors import UnknownTopicError

    started = time.monotonic()
    with (
        Reader("no-such-topic", group_id=group_id, brokers=strict_broker) as reader,
        pytest.raises(UnknownTopicError, match="'no-such-topic' does not exist"),
    ):
        reader.read(lambda value, headers: None, handle_signals=False)
    assert time.monotonic() - started < HANG_GUARD_S
