"""Pub/Sub config: the seed's keys from dicts, YAML and the environment; errors name the key.

No emulator needed: these are pure loaders, except the last test, which checks that the Kafka
config's environment loader is not disturbed by Pub/Sub variables.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kafkito.client.config import ReaderConfig as KafkaReaderConfig
from kafkito.pubsub import ConfigError, ReaderConfig, WriterConfig

SEED_YAML = """
pubsub_writer:
  client:
    project_id: my-project
    credentials: /etc/keys/sa.json
  topic_id: clicks
  topic:
    delay_threshold: 50ms
    count_threshold: 500
    byte_threshold: 2000000
  retry: {1: 1s, 2: 2s}
pubsub_reader:
  client: {project_id: my-project}
  subscription_id: clicks-sub
  subscription:
    max_outstanding_messages: 50
    num_goroutines: 4
  retry: {1: 500ms}
"""


def test_seed_keys_load_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "app.yaml"
    path.write_text(SEED_YAML)
    writer = WriterConfig.from_yaml(path, section="pubsub_writer")
    assert writer.client.project_id == "my-project"
    assert writer.client.credentials == "/etc/keys/sa.json"
    assert writer.topic_id == "clicks"
    assert writer.topic.delay_threshold == pytest.approx(0.05)
    assert writer.topic.count_threshold == 500
    assert writer.topic.byte_threshold == 2_000_000
    assert writer.retry_delays_s == [1.0, 2.0]
    reader = ReaderConfig.from_yaml(SEED_YAML, section="pubsub_reader")
    assert reader.subscription_id == "clicks-sub"
    assert reader.subscription.max_outstanding_messages == 50
    assert reader.subscription.num_goroutines == 4
    assert reader.retry_delays_s == [0.5]
    assert reader.create_if_missing is False and reader.message_ordering is True


def test_names_as_in_the_kafka_config_work_too() -> None:
    assert WriterConfig.from_dict({"topic": "clicks"}).topic_id == "clicks"
    config = ReaderConfig.from_dict({"topic": "clicks", "subscription": "clicks-sub"})
    assert (config.topic_id, config.subscription_id) == ("clicks", "clicks-sub")
    with pytest.raises(ConfigError, match="name different things"):
        WriterConfig.from_dict({"topic": "a", "topic_id": "b"})


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"brokers": ["x:9092"]}, "brokers"),
        ({"client": {"project": "p"}}, "client.project"),
        ({"topic": {"delay_threshold": "soon"}}, "topic.delay_threshold"),
        ({"topic": {"count_threshold": 0}}, "topic.count_threshold"),
        ({"subscription": {"ack_deadline": "5s"}}, "subscription.ack_deadline"),
        ({"retry": {"1": "fast"}}, "retry.1"),
    ],
)
def test_bad_keys_are_errors_that_name_the_key(data: dict[str, object], key: str) -> None:
    config_class = ReaderConfig if "subscription" in data else WriterConfig
    with pytest.raises(ConfigError) as info:
        config_class.from_dict(data)
    assert info.value.key == key
    assert key in str(info.value)


def test_credentials_path_is_never_echoed_and_project_id_is_required(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT", "PUBSUB_PROJECT_ID"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match=r"client\.project_id is required") as info:
        WriterConfig.from_dict({"topic": "t"}).client.resolved_project_id()
    assert info.value.key == "client.project_id"
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "from-env")
    assert WriterConfig.from_dict({}).client.resolved_project_id() == "from-env"
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT")
    key_file = tmp_path / "sa.json"
    key_file.write_text('{"type": "service_account", "project_id": "from-key"}')
    config = WriterConfig.from_dict({"client": {"credentials": str(key_file)}})
    assert config.client.resolved_project_id() == "from-key"
    broken = tmp_path / "broken.json"
    broken.write_text("not json")
    unreadable = WriterConfig.from_dict({"client": {"credentials": str(broken)}})
    with pytest.raises(ConfigError, match="cannot be read") as bad:
        unreadable.client.resolved_project_id()
    assert bad.value.key == "client.credentials"


def test_environment_uses_its_own_prefix_and_leaves_the_kafka_config_alone() -> None:
    env = {
        "KAFKITO_PUBSUB_CLIENT__PROJECT_ID": "0123",  # stays a string, not the number 123
        "KAFKITO_PUBSUB_SUBSCRIPTION_ID": "clicks-sub",
        "KAFKITO_PUBSUB_SUBSCRIPTION__MAX_OUTSTANDING_MESSAGES": "10",
        "KAFKITO_PUBSUB_CREATE_IF_MISSING": "true",
        "KAFKITO_BROKERS": "127.0.0.1:9092",
    }
    config = ReaderConfig.from_env(environ=env)
    assert config.client.project_id == "0123"
    assert config.subscription_id == "clicks-sub"
    assert config.subscription.max_outstanding_messages == 10
    assert config.create_if_missing is True
    kafka = KafkaReaderConfig.from_env(environ=env)  # no "unknown key pubsub_..." error
    assert kafka.brokers == ["127.0.0.1:9092"]
    with pytest.raises(ConfigError, match="KAFKITO_PUBSUB_TOPIC__SPEED") as info:
        WriterConfig.from_env(environ={"KAFKITO_PUBSUB_TOPIC__SPEED": "1"})
    assert info.value.key == "topic.speed"
