"""Config objects: the seed's keys from dicts, YAML and env; errors name the key; secrets hidden."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from kafkito.client import ConfigError, ReaderConfig, WriterConfig
from kafkito.client.config import load_client_settings, parse_duration_s

SEED_YAML = """
reader:
  brokers: [127.0.0.1:9092, 127.0.0.1:9093]
  topic: clicks
  group_id: counter
  key: key
  min_bytes: 10
  max_bytes: 1048576
  commit_interval: 2s
  initial_offsets: -1
  client:
    client_id: app-1
    username: app
    password: hunter2-secret
    algorithm: SHA512
    timeout: 1500ms
    tls:
      ca_file: /etc/ca.pem
    retry:
      1: 1
      2: 2s
      3: 500ms
"""


def test_seed_yaml_loads_with_every_key_mapped(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text(SEED_YAML)
    config = ReaderConfig.from_yaml(path, section="reader")
    assert config.brokers == ["127.0.0.1:9092", "127.0.0.1:9093"]
    assert config.client.retry_delays_s == [1.0, 2.0, 0.5]
    settings = config.to_librdkafka(",".join(config.brokers))
    assert settings["bootstrap.servers"] == "127.0.0.1:9092,127.0.0.1:9093"
    assert settings["group.id"] == "counter"
    assert settings["fetch.min.bytes"] == 10
    assert settings["fetch.max.bytes"] == 1048576
    assert settings["auto.commit.interval.ms"] == 2000
    assert settings["auto.offset.reset"] == "latest"
    assert settings["client.id"] == "app-1"
    assert settings["socket.timeout.ms"] == 1500
    assert settings["security.protocol"] == "SASL_SSL"
    assert settings["sasl.mechanism"] == "SCRAM-SHA-512"
    assert settings["sasl.username"] == "app"
    assert settings["sasl.password"] == "hunter2-secret"
    assert settings["ssl.ca.location"] == "/etc/ca.pem"
    assert settings["enable.ssl.certificate.verification"] is True
    assert settings["ssl.endpoint.identification.algorithm"] == "https"
    # at-least-once: offsets stored by the Reader after the handler, never automatically
    assert settings["enable.auto.offset.store"] is False
    assert settings["enable.auto.commit"] is True


@pytest.mark.parametrize(
    ("client", "expected"),
    [
        ({}, {"security.protocol": "PLAINTEXT"}),
        (
            {"username": "u", "password": "p", "algorithm": "PLAIN"},
            {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN"},
        ),
        (
            {"username": "u", "password": "p", "algorithm": "scram-sha-256"},
            {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-256"},
        ),
        ({"username": "u", "password": "p"}, {"sasl.mechanism": "SCRAM-SHA-512"}),
        (
            {"tls": {}},
            {"security.protocol": "SSL", "enable.ssl.certificate.verification": True},
        ),
        (
            {"tls": {"insecure_skip_verify": True, "cert_file": "c", "key_file": "k"}},
            {
                "enable.ssl.certificate.verification": False,
                "ssl.endpoint.identification.algorithm": "none",
                "ssl.certificate.location": "c",
                "ssl.key.location": "k",
            },
        ),
    ],
)
def test_security_maps_to_librdkafka(
    client: dict[str, object], expected: dict[str, object]
) -> None:
    settings = WriterConfig.from_dict({"client": client}).to_librdkafka("h:1")
    assert {k: settings.get(k) for k in expected} == expected


def test_writer_defaults_are_safe_and_overridable() -> None:
    settings = WriterConfig().to_librdkafka("h:1")
    assert settings["acks"] == "all"
    assert settings["enable.idempotence"] is True
    assert int(settings["max.in.flight.requests.per.connection"]) <= 5
    custom = WriterConfig.from_dict({"settings": {"linger.ms": 50, "acks": "1"}})
    assert custom.to_librdkafka("h:1")["linger.ms"] == 50
    assert custom.to_librdkafka("h:1")["acks"] == "1"


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"topik": "x"}, "topik"),
        ({"client": {"pasword": "x"}}, "client.pasword"),
        ({"client": {"tls": {"ca": "x"}}}, "client.tls.ca"),
        ({"min_bytes": "lots"}, "min_bytes"),
        ({"min_bytes": 0}, "min_bytes"),
        ({"commit_interval": "soon"}, "commit_interval"),
        ({"client": {"timeout": -1}}, "client.timeout"),
        ({"client": {"retry": {0: 1}}}, "client.retry"),
        ({"client": {"algorithm": "MD5"}}, "client.algorithm"),
        ({"initial_offsets": "middle"}, "initial_offsets"),
    ],
)
def test_unknown_or_ill_typed_key_is_named(data: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        ReaderConfig.from_dict(data)
    assert info.value.key is not None
    assert info.value.key.startswith(key.split(".")[0])
    assert key in str(info.value)


def test_conflicts_are_named() -> None:
    with pytest.raises(ConfigError, match=r"client\.username"):
        WriterConfig.from_dict({"client": {"password": "p"}}).to_librdkafka("h:1")
    with pytest.raises(ConfigError, match=r"settings\.enable\.auto\.offset\.store"):
        ReaderConfig.from_dict({"settings": {"enable.auto.offset.store": True}}).to_librdkafka("h")


def test_env_loading_with_nesting_and_unknown_names() -> None:
    env = {
        "KAFKITO_BROKERS": "a:1,b:2",
        "KAFKITO_GROUP_ID": "007",
        "KAFKITO_CLIENT__TIMEOUT": "5s",
        "KAFKITO_CLIENT__PASSWORD": "123",
        "KAFKITO_CLIENT__USERNAME": "u",
        "KAFKITO_CLIENT__RETRY": "{1: 1s, 2: 2s}",
        "KAFKITO_DATA_DIR": "/not/a/config/key",
        "OTHER": "ignored",
    }
    config = ReaderConfig.from_env(environ=env)
    assert config.brokers == ["a:1", "b:2"]
    assert config.group_id == "007"  # strings stay strings
    assert config.client.timeout == 5.0
    assert config.client.password is not None
    assert config.client.password.get_secret_value() == "123"
    assert config.client.retry_delays_s == [1.0, 2.0]
    with pytest.raises(ConfigError, match="KAFKITO_GRUOP_ID"):
        ReaderConfig.from_env(environ={"KAFKITO_GRUOP_ID": "x"})


def test_secrets_never_printed(caplog: pytest.LogCaptureFixture) -> None:
    secret = "hunter2-secret"
    config = ReaderConfig.from_dict({"client": {"username": "u", "password": secret}})
    assert secret not in repr(config)
    assert secret not in str(config)
    assert secret not in repr(config.client)
    # an ill-typed neighbour's error does not echo the input either
    with pytest.raises(ConfigError) as info:
        ReaderConfig.from_dict({"client": {"username": "u", "password": secret, "timeout": secret}})
    assert secret not in str(info.value)
    with pytest.raises(ConfigError) as info:
        ReaderConfig.from_dict({"client": {"password": {"nested": secret}}})
    assert secret not in str(info.value)
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("kafkito.test").info("config %s %r", config, config)
    assert secret not in caplog.text


@pytest.mark.parametrize(
    ("text", "seconds"), [(5, 5.0), (0.25, 0.25), ("250ms", 0.25), ("3s", 3.0), ("2m", 120.0)]
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize("bad", ["", "5 weeks", "-1s", True, None, [1]])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration_s(bad)


def test_load_client_settings_for_tools(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text(SEED_YAML + "  settings: {linger.ms: 7}\n")
    settings = load_client_settings(path)
    assert settings["bootstrap.servers"] == "127.0.0.1:9092,127.0.0.1:9093"
    assert settings["sasl.mechanism"] == "SCRAM-SHA-512"
    assert settings["linger.ms"] == 7
    assert "group.id" not in settings  # connection settings only
    (tmp_path / "bare.yml").write_text("client: {client_id: tool}\n")
    assert "bootstrap.servers" not in load_client_settings(tmp_path / "bare.yml")
