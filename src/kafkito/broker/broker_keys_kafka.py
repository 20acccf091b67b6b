"""Apache Kafka 4.1's broker config keys that kafkito does not list (configs.py lists the ones
that mean something on one kafkito node): what AlterConfigs and IncrementalAlterConfigs do
with them on a BROKER resource.

Clients send some of these: librdkafka's own test 0081 sets
`sasl.kerberos.min.time.before.relogin`, which Kafka accepts. So, as Kafka:

* `STORED_BROKER_KEYS`: keys Kafka changes at run time (its DescribeConfigs shows them not
  read-only) and kafkito has no mechanism for (Kerberos, SSL engine details, thread pools,
  tiered storage, the cleaner's buffers). Accepted after a type check with Kafka's message,
  stored in the dynamic broker configs (persisted, described with their source and synonyms),
  and without effect. `scope` is where Kafka takes them: "any" (a node or cluster-wide),
  "node" (a node only: "Cannot update these configs at default cluster level") or "listener"
  (keystores and passwords: only with a listener prefix, which kafkito does not serve, so
  refused at both scopes with Kafka's message).
* `KAFKA_STATIC_BROKER_KEYS`: keys Kafka lists read-only (and the connection limits and
  listener map, which kafkito fixes when the listener starts): INVALID_REQUEST "Cannot update
  these configs dynamically", as for kafkito's own static keys.

Any other name stays INVALID_CONFIG (Kafka stores unknown names for plugins; docs/broker.md).

Generated from a Kafka 4.1.1 node's DescribeConfigs (read_only, config_type, the DEFAULT
synonym) and, for `scope`, its answers to a validate-only IncrementalAlterConfigs of each key
at a node and cluster-wide; regenerate the same way for a newer Kafka.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from kafkito.broker.configs import ConfigType

__all__ = [
    "KAFKA_STATIC_BROKER_KEYS",
    "STORED_BROKER_KEYS",
    "StoredBrokerKey",
    "stored_value_error",
]


@dataclass(frozen=True, slots=True)
class StoredBrokerKey:
    """One of Kafka's dynamic broker keys that kafkito stores without acting on it."""

    name: str
    type: ConfigType
    default: str | None
    """Kafka's default (its DEFAULT_CONFIG synonym), None when Kafka has none."""
    scope: Literal["any", "node", "listener"]


STORED_BROKER_KEYS: dict[str, StoredBrokerKey] = {
    k.name: k
    for k in (
        StoredBrokerKey(
            "principal.builder.class",
            "class",
            "org.apache.kafka.common.security.authenticator.DefaultKafkaPrincipalBuilder",
            "node",
        ),
        StoredBrokerKey("num.recovery.threads.per.data.dir", "int", "2", "any"),
        StoredBrokerKey("ssl.keystore.type", "string", "JKS", "listener"),
        StoredBrokerKey("sasl.mechanism.inter.broker.protocol", "string", "GSSAPI", "node"),
        StoredBrokerKey("ssl.endpoint.identification.algorithm", "string", "https", "node"),
        StoredBrokerKey(
            "remote.log.manager.fetch.max.bytes.per.second", "long", "9223372036854775807", "any"
        ),
        StoredBrokerKey("num.replica.fetchers", "int", "1", "any"),
        StoredBrokerKey("log.cleaner.threads", "int", "1", "any"),
        StoredBrokerKey("sasl.kerberos.service.name", "string", None, "node"),
        StoredBrokerKey("ssl.provider", "string", None, "node"),
        StoredBrokerKey("producer.id.expiration.ms", "int", "86400000", "any"),
        StoredBrokerKey("ssl.cipher.suites", "list", "", "node"),
        StoredBrokerKey(
            "remote.log.manager.copy.max.bytes.per.second", "long", "9223372036854775807", "any"
        ),
        StoredBrokerKey("remote.fetch.max.wait.ms", "int", "500", "any"),
        StoredBrokerKey("remote.log.reader.threads", "int", "10", "any"),
        StoredBrokerKey("sasl.kerberos.ticket.renew.window.factor", "double", "0.8", "node"),
        StoredBrokerKey("transaction.partition.verification.enable", "boolean", "true", "any"),
        StoredBrokerKey("background.threads", "int", "10", "any"),
        StoredBrokerKey(
            "remote.log.index.file.cache.total.size.bytes", "long", "1073741824", "any"
        ),
        StoredBrokerKey("remote.log.manager.copier.thread.pool.size", "int", "10", "any"),
        StoredBrokerKey("sasl.login.refresh.min.period.seconds", "short", "60", "node"),
        StoredBrokerKey("sasl.kerberos.kinit.cmd", "string", "/usr/bin/kinit", "node"),
        StoredBrokerKey(
            "log.cleaner.io.max.bytes.per.second", "double", "1.7976931348623157E308", "any"
        ),
        StoredBrokerKey("num.network.threads", "int", "3", "any"),
        StoredBrokerKey("ssl.keystore.key", "password", None, "listener"),
        StoredBrokerKey("sasl.login.refresh.window.jitter", "double", "0.05", "node"),
        StoredBrokerKey(
            "metric.reporters", "list", "org.apache.kafka.common.metrics.JmxReporter", "any"
        ),
        StoredBrokerKey("ssl.engine.factory.class", "class", None, "node"),
        StoredBrokerKey("ssl.truststore.password", "password", None, "listener"),
        StoredBrokerKey("sasl.kerberos.principal.to.local.rules", "list", "DEFAULT", "node"),
        StoredBrokerKey("num.io.threads", "int", "8", "any"),
        StoredBrokerKey("sasl.login.refresh.buffer.seconds", "short", "300", "node"),
        StoredBrokerKey("ssl.truststore.type", "string", "JKS", "listener"),
        StoredBrokerKey("ssl.client.auth", "string", "none", "node"),
        StoredBrokerKey("ssl.secure.random.implementation", "string", None, "node"),
        StoredBrokerKey("sasl.kerberos.ticket.renew.jitter", "double", "0.05", "node"),
        StoredBrokerKey("ssl.trustmanager.algorithm", "string", "PKIX", "node"),
        StoredBrokerKey("sasl.jaas.config", "password", None, "node"),
        StoredBrokerKey("sasl.kerberos.min.time.before.relogin", "long", "60000", "node"),
        StoredBrokerKey("ssl.keystore.certificate.chain", "password", None, "listener"),
        StoredBrokerKey("ssl.enabled.protocols", "list", "TLSv1.2,TLSv1.3", "node"),
        StoredBrokerKey("remote.log.manager.expiration.thread.pool.size", "int", "10", "any"),
        StoredBrokerKey("ssl.keymanager.algorithm", "string", "SunX509", "node"),
        StoredBrokerKey("log.cleaner.dedupe.buffer.size", "long", "134217728", "any"),
        StoredBrokerKey("log.cleaner.io.buffer.size", "int", "524288", "any"),
        StoredBrokerKey("ssl.truststore.certificates", "password", None, "listener"),
        StoredBrokerKey("log.cleaner.backoff.ms", "long", "15000", "any"),
        StoredBrokerKey("ssl.truststore.location", "string", None, "listener"),
        StoredBrokerKey("ssl.keystore.password", "password", None, "listener"),
        StoredBrokerKey("sasl.login.refresh.window.factor", "double", "0.8", "node"),
        StoredBrokerKey("ssl.key.password", "password", None, "listener"),
        StoredBrokerKey("ssl.protocol", "string", "TLSv1.3", "node"),
        StoredBrokerKey("ssl.keystore.location", "string", None, "listener"),
        StoredBrokerKey("remote.list.offsets.request.timeout.ms", "long", "30000", "any"),
        StoredBrokerKey("sasl.enabled.mechanisms", "list", "GSSAPI", "node"),
        StoredBrokerKey("log.cleaner.io.buffer.load.factor", "double", "0.9", "any"),
    )
}

KAFKA_STATIC_BROKER_KEYS: frozenset[str] = frozenset(
    {
        "add.partitions.to.txn.retry.backoff.max.ms",
        "add.partitions.to.txn.retry.backoff.ms",
        "alter.config.policy.class.name",
        "alter.log.dirs.replication.quota.window.num",
        "alter.log.dirs.replication.quota.window.size.seconds",
        "authorizer.class.name",
        "auto.leader.rebalance.enable",
        "broker.heartbeat.interval.ms",
        "broker.rack",
        "broker.session.timeout.ms",
        "client.quota.callback.class",
        "connection.failed.authentication.delay.ms",
        "connections.max.reauth.ms",
        "controlled.shutdown.enable",
        "controller.listener.names",
        "controller.quorum.append.linger.ms",
        "controller.quorum.bootstrap.servers",
        "controller.quorum.election.backoff.max.ms",
        "controller.quorum.election.timeout.ms",
        "controller.quorum.fetch.timeout.ms",
        "controller.quorum.request.timeout.ms",
        "controller.quorum.retry.backoff.ms",
        "controller.quorum.voters",
        "controller.quota.window.num",
        "controller.quota.window.size.seconds",
        "controller.socket.timeout.ms",
        "create.topic.policy.class.name",
        "delegation.token.expiry.check.interval.ms",
        "delegation.token.expiry.time.ms",
        "delegation.token.max.lifetime.ms",
        "delegation.token.secret.key",
        "delete.records.purgatory.purge.interval.requests",
        "early.start.listeners",
        "fetch.max.bytes",
        "fetch.purgatory.purge.interval.requests",
        "group.consumer.assignors",
        "group.consumer.heartbeat.interval.ms",
        "group.consumer.max.heartbeat.interval.ms",
        "group.consumer.max.session.timeout.ms",
        "group.consumer.max.size",
        "group.consumer.migration.policy",
        "group.consumer.min.heartbeat.interval.ms",
        "group.consumer.min.session.timeout.ms",
        "group.consumer.session.timeout.ms",
        "group.coordinator.append.linger.ms",
        "group.coordinator.rebalance.protocols",
        "group.coordinator.threads",
        "group.max.session.timeout.ms",
        "group.max.size",
        "group.min.session.timeout.ms",
        "group.share.assignors",
        "group.share.delivery.count.limit",
        "group.share.heartbeat.interval.ms",
        "group.share.max.heartbeat.interval.ms",
        "group.share.max.record.lock.duration.ms",
        "group.share.max.session.timeout.ms",
        "group.share.max.share.sessions",
        "group.share.max.size",
        "group.share.min.heartbeat.interval.ms",
        "group.share.min.record.lock.duration.ms",
        "group.share.min.session.timeout.ms",
        "group.share.partition.max.record.locks",
        "group.share.record.lock.duration.ms",
        "group.share.session.timeout.ms",
        "group.streams.heartbeat.interval.ms",
        "group.streams.max.heartbeat.interval.ms",
        "group.streams.max.session.timeout.ms",
        "group.streams.max.size",
        "group.streams.max.standby.replicas",
        "group.streams.min.heartbeat.interval.ms",
        "group.streams.min.session.timeout.ms",
        "group.streams.num.standby.replicas",
        "group.streams.session.timeout.ms",
        "initial.broker.registration.timeout.ms",
        "inter.broker.listener.name",
        "kafka.metrics.polling.interval.secs",
        "kafka.metrics.reporters",
        "leader.imbalance.check.interval.seconds",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config",
        "listener.security.protocol.map",
        "log.cleaner.enable",
        "log.dir",
        "log.dir.failure.timeout.ms",
        "log.flush.offset.checkpoint.interval.ms",
        "log.flush.scheduler.interval.ms",
        "log.flush.start.offset.checkpoint.interval.ms",
        "max.connection.creation.rate",
        "max.connections.per.ip",
        "max.connections.per.ip.overrides",
        "max.incremental.fetch.session.cache.slots",
        "max.request.partition.size.limit",
        "metadata.log.dir",
        "metadata.log.max.record.bytes.between.snapshots",
        "metadata.log.max.snapshot.interval.ms",
        "metadata.log.segment.bytes",
        "metadata.log.segment.ms",
        "metadata.max.idle.interval.ms",
        "metadata.max.retention.bytes",
        "metadata.max.retention.ms",
        "metrics.num.samples",
        "metrics.recording.level",
        "metrics.sample.window.ms",
        "num.replica.alter.log.dirs.threads",
        "offset.metadata.max.bytes",
        "offsets.commit.timeout.ms",
        "offsets.load.buffer.size",
        "offsets.retention.check.interval.ms",
        "offsets.topic.compression.codec",
        "offsets.topic.num.partitions",
        "offsets.topic.segment.bytes",
        "producer.purgatory.purge.interval.requests",
        "queued.max.requests",
        "quota.window.num",
        "quota.window.size.seconds",
        "remote.log.manager.copy.quota.window.num",
        "remote.log.manager.copy.quota.window.size.seconds",
        "remote.log.manager.fetch.quota.window.num",
        "remote.log.manager.fetch.quota.window.size.seconds",
        "remote.log.manager.task.interval.ms",
        "remote.log.manager.thread.pool.size",
        "remote.log.metadata.custom.metadata.max.bytes",
        "remote.log.metadata.manager.class.name",
        "remote.log.metadata.manager.class.path",
        "remote.log.metadata.manager.impl.prefix",
        "remote.log.metadata.manager.listener.name",
        "remote.log.reader.max.pending.tasks",
        "remote.log.storage.manager.class.name",
        "remote.log.storage.manager.class.path",
        "remote.log.storage.manager.impl.prefix",
        "remote.log.storage.system.enable",
        "replica.fetch.backoff.ms",
        "replica.fetch.max.bytes",
        "replica.fetch.min.bytes",
        "replica.fetch.response.max.bytes",
        "replica.fetch.wait.max.ms",
        "replica.high.watermark.checkpoint.interval.ms",
        "replica.lag.time.max.ms",
        "replica.selector.class",
        "replica.socket.receive.buffer.bytes",
        "replica.socket.timeout.ms",
        "replication.quota.window.num",
        "replication.quota.window.size.seconds",
        "request.timeout.ms",
        "sasl.client.callback.handler.class",
        "sasl.login.callback.handler.class",
        "sasl.login.class",
        "sasl.login.connect.timeout.ms",
        "sasl.login.read.timeout.ms",
        "sasl.login.retry.backoff.max.ms",
        "sasl.login.retry.backoff.ms",
        "sasl.mechanism.controller.protocol",
        "sasl.oauthbearer.assertion.algorithm",
        "sasl.oauthbearer.assertion.claim.aud",
        "sasl.oauthbearer.assertion.claim.exp.seconds",
        "sasl.oauthbearer.assertion.claim.iss",
        "sasl.oauthbearer.assertion.claim.jti.include",
        "sasl.oauthbearer.assertion.claim.nbf.seconds",
        "sasl.oauthbearer.assertion.claim.sub",
        "sasl.oauthbearer.assertion.file",
        "sasl.oauthbearer.assertion.private.key.file",
        "sasl.oauthbearer.assertion.private.key.passphrase",
        "sasl.oauthbearer.assertion.template.file",
        "sasl.oauthbearer.client.credentials.client.id",
        "sasl.oauthbearer.client.credentials.client.secret",
        "sasl.oauthbearer.clock.skew.seconds",
        "sasl.oauthbearer.expected.audience",
        "sasl.oauthbearer.expected.issuer",
        "sasl.oauthbearer.jwks.endpoint.refresh.ms",
        "sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms",
        "sasl.oauthbearer.jwks.endpoint.retry.backoff.ms",
        "sasl.oauthbearer.jwks.endpoint.url",
        "sasl.oauthbearer.jwt.retriever.class",
        "sasl.oauthbearer.jwt.validator.class",
        "sasl.oauthbearer.scope",
        "sasl.oauthbearer.scope.claim.name",
        "sasl.oauthbearer.sub.claim.name",
        "sasl.oauthbearer.token.endpoint.url",
        "sasl.server.callback.handler.class",
        "sasl.server.max.receive.size",
        "security.inter.broker.protocol",
        "security.providers",
        "share.coordinator.append.linger.ms",
        "share.coordinator.load.buffer.size",
        "share.coordinator.snapshot.update.records.per.snapshot",
        "share.coordinator.state.topic.compression.codec",
        "share.coordinator.state.topic.min.isr",
        "share.coordinator.state.topic.num.partitions",
        "share.coordinator.state.topic.replication.factor",
        "share.coordinator.state.topic.segment.bytes",
        "share.coordinator.threads",
        "share.coordinator.write.timeout.ms",
        "share.fetch.purgatory.purge.interval.requests",
        "socket.connection.setup.timeout.max.ms",
        "socket.connection.setup.timeout.ms",
        "socket.listen.backlog.size",
        "socket.receive.buffer.bytes",
        "socket.send.buffer.bytes",
        "ssl.allow.dn.changes",
        "ssl.allow.san.changes",
        "ssl.principal.mapping.rules",
        "telemetry.max.bytes",
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        "transaction.remove.expired.transaction.cleanup.interval.ms",
        "transaction.state.log.load.buffer.size",
        "transaction.state.log.min.isr",
        "transaction.state.log.num.partitions",
        "transaction.state.log.segment.bytes",
        "transaction.two.phase.commit.enable",
        "transactional.id.expiration.ms",
    }
)

_INT_RANGES = {"short": 2**15, "int": 2**31, "long": 2**63}


def stored_value_error(key: StoredBrokerKey, value: str) -> str | None:
    """Why Kafka's ConfigDef would refuse `value` for `key` (its message), or None. Only the
    type is checked: kafkito does not have what Kafka checks beyond it (a thread count within
    half and double the current pool, a class on the classpath)."""
    prefix = f"Invalid value {value} for configuration {key.name}: "
    text = value.strip()
    if key.type in _INT_RANGES:
        bound = _INT_RANGES[key.type]
        try:
            number = int(text)
        except ValueError:
            number = bound  # out of range below
        if not -bound <= number < bound:
            return prefix + f"Not a number of type {key.type.upper()}"
    elif key.type == "double":
        try:
            float(text)
        except ValueError:
            return prefix + "Not a number of type DOUBLE"
    elif key.type == "boolean" and text.lower() not in ("true", "false"):
        return prefix + "Expected value to be either true or false"
    return None
