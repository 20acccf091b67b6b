"""ApiVersions (key 18), v0-4.

v0: api_keys. v1: throttle_time_ms. v3: flexible, client software name/version, supported and
finalized features (we advertise none). An unsupported *request* version is answered in the v0
layout with UNSUPPORTED_VERSION by the core (KIP-511), before decoding.
Clients use whatever is advertised, so the list comes from the handler registry itself.
"""

from __future__ import annotations

from typing import Any

from kafkito.broker.dispatch import RequestContext, advertised_versions, handler
from kafkito.errors import ErrorCode
from kafkito.protocol.responses import ApiVersionsResponse, ApiVersionsResponseApiVersion


@handler(18, versions=range(0, 5))
async def api_versions(request: Any, ctx: RequestContext) -> ApiVersionsResponse:
    keys: list[ApiVersionsResponseApiVersion] = [
        {"api_key": k, "min_version": lo, "max_version": hi} for k, lo, hi in advertised_versions()
    ]
    return {
        "error_code": ErrorCode.none,
        "api_keys": keys,
        "throttle_time": 0,
        "finalized_features_epoch": -1,
        "zk_migration_ready": False,
    }
