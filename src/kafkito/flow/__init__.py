"""The consume flow: decode, validate, handle, retry, dead-letter, commit; ordered per key.

from kafkito.flow import Flow, Reject, RetryLater, RetryPolicy

def handle(click: Click) -> None:       # the annotation picks the decoder: a pydantic model
    ...                                 # or msgspec Struct, bytes (raw), str (UTF-8), dict (JSON)

Flow("clicks", handle, group_id="analytics", retry=RetryPolicy.delays([1, 5, 30])).run()
"""

from kafkito.flow.codecs import DecodeError, ValidationFailed
from kafkito.flow.metrics import FlowMetrics
from kafkito.flow.outcomes import BatchFailed, Out, Reject, RetryLater
from kafkito.flow.policy import PolicyError, RetryPolicy
from kafkito.flow.runner import Flow, FlowError, Record

__all__ = [
    "BatchFailed",
    "DecodeError",
    "Flow",
    "FlowError",
    "FlowMetrics",
    "Out",
    "PolicyError",
    "Record",
    "Reject",
    "RetryLater",
    "RetryPolicy",
    "ValidationFailed",
]
