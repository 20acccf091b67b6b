"""The web console: topics, messages, groups and lag, for any Kafka cluster; the demo dashboard."""
