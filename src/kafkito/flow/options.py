"""A flow from the client library's config: the Reader's keys, and the flow's own `flow:` keys.

`Flow.from_config` is this function; it is kept apart because it only maps and checks keys.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kafkito.flow.policy import RetryPolicy
from kafkito.flow.records import FlowError

if TYPE_CHECKING:
    from kafkito.flow.runner import Flow


def flow_from_config(
    cls: type[Flow],
    handler: Callable[..., Any],
    config: str | Path | Mapping[str, Any],
    **overrides: Any,
) -> Flow:
    """`Flow.from_config` (its docstring says the keys and the layout of the config)."""
    import yaml

    from kafkito.client.config import ReaderConfig
    from kafkito.client.embedded import resolve_bootstrap

    if isinstance(config, Mapping):
        data = dict(config)
    else:
        text = config if isinstance(config, str) and "\n" in config else Path(config).read_text()
        data = yaml.safe_load(text) or {}
        if not isinstance(data, dict):
            raise FlowError("a flow config must be a mapping of keys to values")
    options = dict(data.pop("flow", None) or {})
    reader = ReaderConfig.from_dict(data)
    known = {
        "retry",
        "concurrency",
        "max_in_flight",
        "ordering",
        "batch_size",
        "batch_timeout",
        "dead_letter",
        "shutdown_grace",
        "revoke_grace",
        "backpressure_wait",
        "name",
        "exactly_once",
        "transactional_id",
    }
    for key in options:
        if key not in known:
            raise FlowError(f"flow.{key}: unknown key (known: {', '.join(sorted(known))})")
    kw: dict[str, Any] = {}
    if "retry" in options:
        kw["retry"] = RetryPolicy.from_config(options["retry"])
    for key in ("concurrency", "max_in_flight", "batch_size"):
        if key in options:
            kw[key] = int(options[key])
    for key in ("ordering", "name", "transactional_id"):
        if key in options:
            kw[key] = options[key]
    if "exactly_once" in options:
        kw["exactly_once"] = bool(options["exactly_once"])
    if "dead_letter" in options:
        kw["dead_letter"] = bool(options["dead_letter"])
    for key, target in (
        ("batch_timeout", "batch_timeout_s"),
        ("shutdown_grace", "shutdown_grace_s"),
        ("revoke_grace", "revoke_grace_s"),
        ("backpressure_wait", "backpressure_wait_s"),
    ):
        if key in options:
            from kafkito.client.config import parse_duration_s

            kw[target] = parse_duration_s(options[key])
    if reader.topic is None or reader.group_id is None:
        raise FlowError("a flow config needs `topic` and `group_id`")
    bootstrap = resolve_bootstrap(reader.brokers)
    settings = {k: v for k, v in reader.base_settings(bootstrap).items()}
    settings.update(reader.settings)
    settings.setdefault("auto.offset.reset", reader.initial_offsets)
    kw.update(settings=settings, commit_interval_s=reader.commit_interval)
    kw.update(overrides)
    return cls(reader.topic, handler, group_id=reader.group_id, **kw)
