"""Public test kit: real brokers for tests (kafkito's embedded one, and Tansu for comparison)."""

from kafkito.testing.brokers import BrokerProcess, free_port, start_tansu, tansu_binary

__all__ = ["BrokerProcess", "free_port", "start_tansu", "tansu_binary"]
