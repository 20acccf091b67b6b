"""KIP-848 consumer groups, the request checks: a heartbeat's fields (Kafka's messages), the
member epoch it carries, and the subscription regex (refused when it could stall the loop).

Pure: each raises Refused (consumer_model.py) with Kafka's code and message, or returns.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from kafkito.broker.coordinator.assignors import ASSIGNORS, Assignment
from kafkito.broker.coordinator.consumer_model import (
    LEAVE_EPOCH,
    STATIC_LEAVE_EPOCH,
    ConsumerMember,
    Refused,
)
from kafkito.errors import ErrorCode

MAX_REGEX_CHARS = 1000
"""A bound on subscribed_topic_regex (Kafka has none; RE2/J runs in linear time anyway)."""
REGEX_MATCHES_MAX = 100_000
"""Entries of the (pattern, topic) -> matched cache before it is cleared."""


def valid_regex(pattern: str) -> re.Pattern[str]:
    """Compile a subscription regex, refusing what could stall the event loop.

    Kafka matches with RE2/J, which runs in linear time and refuses backreferences and
    lookaround; Python's `re` backtracks, so a hostile pattern such as `(a+)+$` would take
    exponential time on one topic name. Refused with INVALID_REGULAR_EXPRESSION, as RE2/J does
    for its own refusals: backreferences, lookaround, conditionals, and (kafkito only) a
    repeat inside a repeat, the shape of exponential backtracking.
    """
    # the parser's own tree: no public API has it (stdlib, CPython 3.11+; untyped)
    sre_constants: Any = importlib.import_module("re._constants")
    sre_parser: Any = importlib.import_module("re._parser")

    refused = {
        sre_constants.GROUPREF,
        sre_constants.GROUPREF_EXISTS,
        sre_constants.ASSERT,
        sre_constants.ASSERT_NOT,
    }
    repeats = {sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT}

    def invalid(reason: str) -> Refused:
        return Refused(
            ErrorCode.invalid_regular_expression,
            f"SubscribedTopicRegex {pattern} is invalid: {reason}",
        )

    def walk(tree: Any, in_repeat: bool) -> None:
        for op, av in tree:
            if op in refused:
                raise invalid("backreferences, lookaround and conditionals are not supported")
            if op in repeats:
                if in_repeat:
                    raise invalid("a repeat inside a repeat may backtrack without end")
                walk(av[2], True)
            elif op is sre_constants.SUBPATTERN:
                walk(av[3], in_repeat)
            elif op is sre_constants.BRANCH:
                for branch in av[1]:
                    walk(branch, in_repeat)
            elif op is sre_constants.ATOMIC_GROUP:
                walk(av, in_repeat)

    if len(pattern) > MAX_REGEX_CHARS:
        raise invalid(f"longer than {MAX_REGEX_CHARS} characters")
    try:
        compiled = re.compile(pattern)
        walk(sre_parser.parse(pattern), False)
    except re.error as exc:
        raise invalid(str(exc)) from exc
    return compiled


def validate_heartbeat(
    api_version: int,
    group_id: str,
    member_id: str,
    member_epoch: int,
    instance_id: str | None,
    rack_id: str | None,
    rebalance_timeout_ms: int,
    subscribed: tuple[str, ...] | None,
    regex: str | None,
    server_assignor: str | None,
    owned: Assignment | None,
) -> None:
    """Kafka's throwIfConsumerGroupHeartbeatRequestIsInvalid, with its messages."""

    def bad(message: str) -> Refused:
        return Refused(ErrorCode.invalid_request, message)

    if not group_id:
        raise bad("GroupId can't be empty.")
    if instance_id is not None and not instance_id:
        raise bad("InstanceId can't be empty.")
    if rack_id is not None and not rack_id:
        raise bad("RackId can't be empty.")
    if api_version >= 1 and not member_id:
        raise bad("MemberId can't be empty.")
    if member_epoch > 0 or member_epoch == LEAVE_EPOCH:
        if not member_id:
            raise bad("MemberId can't be empty.")
    elif member_epoch == 0:
        if rebalance_timeout_ms == -1:
            raise bad("RebalanceTimeoutMs must be provided in first request.")
        if owned is None or owned:
            raise bad("TopicPartitions must be empty when (re-)joining.")
        if subscribed is None and regex is None:
            raise bad(
                "Either SubscribedTopicNames or SubscribedTopicRegex must be non-null when "
                "(re-)joining."
            )
    elif member_epoch == STATIC_LEAVE_EPOCH:
        if instance_id is None:
            raise bad("InstanceId can't be null.")
    else:
        raise bad("MemberEpoch is invalid.")
    if server_assignor is not None and server_assignor not in ASSIGNORS:
        raise Refused(
            ErrorCode.unsupported_assignor,
            f"ServerAssignor {server_assignor} is not supported. "
            f"Supported assignors: {', '.join(ASSIGNORS)}.",
        )
    if regex:
        valid_regex(regex)


def check_epoch(member: ConsumerMember, received: int, owned: Assignment | None) -> None:
    """Kafka's throwIfMemberEpochIsInvalid. The previous epoch is accepted when the member
    owns a subset of its assignment: the answer that bumped its epoch may have been lost."""
    if received > member.epoch or (
        received < member.epoch
        and (received != member.previous_epoch or owned is None or not owned <= member.assigned)
    ):
        raise Refused(
            ErrorCode.fenced_member_epoch,
            f"The consumer group member has a greater member epoch ({received}) than the one "
            f"known by the group coordinator ({member.epoch}). The member must abandon all its "
            "partitions and rejoin."
            if received > member.epoch
            else f"The consumer group member has a smaller member epoch ({received}) than the "
            f"one known by the group coordinator ({member.epoch}). The member must abandon all "
            "its partitions and rejoin.",
        )
