"""OpenAI-compatible inference gateway: tenants, policy-routed replicas, failover, metering.

Composition (done by the CLI, the only reader of files and environment)::

    config = parse_gateway_config(yaml_document, "gateway.yaml")
    keys = resolve_upstream_keys(config, os.environ, read_text)
    table = build_route_table(config, policy, snapshot, keys)
    serve(config, table)
"""

from archipel.gateway._config import (
    GatewayConfig,
    Pool,
    hash_key,
    parse_gateway_config,
    resolve_control_plane_token,
    resolve_upstream_keys,
)
from archipel.gateway._errors import (
    GatewayConfigError,
    GatewayError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from archipel.gateway._failover import (
    TRANSITIONS,
    Breaker,
    BreakerEvent,
    BreakerState,
    Refusal,
    RetryBudget,
    pick,
)
from archipel.gateway._metering import JsonlMeter, MemoryMeter, Meter, UsageRecord
from archipel.gateway._published import PublishedRoutes, merge_published, parse_published
from archipel.gateway._route_table import (
    Match,
    ModelRoute,
    Replica,
    RouteTable,
    build_route_table,
    describe_routes,
)
from archipel.gateway._server import create_app, serve, server_settings
from archipel.gateway._upstream import (
    AiohttpUpstream,
    FakeReply,
    FunctionUpstream,
    Upstream,
    UpstreamResponse,
)
from archipel.gateway._workers import Supervisor, WorkerSlot, serve_workers

__all__ = [
    "AiohttpUpstream",
    "Breaker",
    "BreakerEvent",
    "BreakerState",
    "FakeReply",
    "FunctionUpstream",
    "GatewayConfig",
    "GatewayConfigError",
    "GatewayError",
    "JsonlMeter",
    "Match",
    "MemoryMeter",
    "Meter",
    "ModelRoute",
    "Pool",
    "PublishedRoutes",
    "Refusal",
    "Replica",
    "RetryBudget",
    "RouteTable",
    "Supervisor",
    "TRANSITIONS",
    "Upstream",
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamResponse",
    "UpstreamStatusError",
    "UpstreamTimeoutError",
    "UsageRecord",
    "WorkerSlot",
    "build_route_table",
    "create_app",
    "describe_routes",
    "hash_key",
    "merge_published",
    "parse_gateway_config",
    "parse_published",
    "pick",
    "resolve_control_plane_token",
    "resolve_upstream_keys",
    "serve",
    "serve_workers",
    "server_settings",
]
