"""SASL on the embedded broker: PLAIN and SCRAM-SHA-256/512, server side, and the user store.

`scram` and `plain` are pure message logic (no I/O); `store` keeps salted SCRAM credentials in a
0600 JSON file; `session` is one connection's state machine that the connection loop
(kafkito.broker.server) and the SaslHandshake / SaslAuthenticate handlers drive.
"""

from kafkito.broker.auth.session import SaslFailed, SaslSession, SaslState
from kafkito.broker.auth.store import UserStore, UserStoreError

__all__ = ["SaslFailed", "SaslSession", "SaslState", "UserStore", "UserStoreError"]
