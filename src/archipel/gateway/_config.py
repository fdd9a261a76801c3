"""The gateway configuration (``gateway.yaml``), validated with pydantic.

Example::

    version: 1
    listen: {host: 127.0.0.1, port: 8080}
    metering: {path: gateway-usage.jsonl}
    rate_limits: {backend: local}   # or redis, shared by every process with the same prefix
    timeouts: {connect: 2, first_byte: 60, idle: 30}
    requests: {max_body_bytes: 4194304, header_timeout: 75, body_timeout: 30}
    retry: {max_attempts: 3, budget_ratio: 0.2, budget_min_per_second: 5}
    breaker: {failure_threshold: 5, cooldown: 10}
    health_checks: {interval: 10, timeout: 2, unhealthy_after: 2, healthy_after: 1}
    tenants:
      clinic:
        key_sha256: [<hex digest of the API key, see archipel.gateway.hash_key>]
        data_class: health
        limits: {requests_per_minute: 600, tokens_per_minute: 200000}
    models:
      llama-3.1-8b:
        replicas:
          - name: scw-par
            provider: scaleway
            region: fr-par
            country: FR
            base_url: https://api.example.eu/v1
            key_env: SCW_KEY
            weight: 2
            max_concurrency: 64
            pool: primary
            price: {currency: EUR, input_per_million: "0.20", output_per_million: "0.60"}

API keys are never stored in clear: only their SHA-256 digest. Upstream keys
are named (an environment variable or a file) and resolved by the caller, who
passes a mapping to :func:`resolve_upstream_keys`: nothing here reads the
environment or the file system.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from yarl import URL

from archipel.core import ServePrice, StrictModel, validate
from archipel.gateway._errors import GatewayConfigError

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")


def hash_key(api_key: str) -> str:
    """The SHA-256 hex digest of an API key: what ``key_sha256`` lists."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


class Pool(StrEnum):
    """Which pool a replica belongs to: secondary replicas take spillover only."""

    PRIMARY = "primary"
    SECONDARY = "secondary"


class Listen(StrictModel):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)


class Timeouts(StrictModel):
    """Per-phase deadlines in seconds (see docs/gateway.md)."""

    connect: float = Field(2.0, gt=0)
    first_byte: float = Field(60.0, gt=0)  # request sent -> response headers and first chunk
    idle: float = Field(30.0, gt=0)  # between two chunks of a body


class Requests(StrictModel):
    """What the gateway accepts from clients (see docs/gateway.md, *Client requests*)."""

    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)  # a larger body gets 413
    # seconds for a connection to deliver a request's headers, from its opening or the
    # previous answer (aiohttp's keep-alive timeout: also how long an idle connection stays)
    header_timeout: float = Field(75.0, gt=0)
    body_timeout: float = Field(30.0, gt=0)  # seconds to receive the body after the headers


class Retry(StrictModel):
    max_attempts: int = Field(3, ge=1, le=10)  # per request, the first attempt included
    budget_ratio: float = Field(0.2, ge=0, le=1)  # retries earned per request
    budget_min_per_second: float = Field(5.0, ge=0)  # retries always allowed at this rate


class BreakerSettings(StrictModel):
    """The circuit breaker of every replica (see :class:`~archipel.gateway._failover.Breaker`)."""

    failure_threshold: int = Field(5, ge=1)  # consecutive failures that open the circuit
    cooldown: float = Field(10.0, gt=0)  # seconds open before one half-open probe


class HealthChecks(StrictModel):
    """Active checks: each replica's ``health_path`` is fetched every ``interval`` seconds."""

    enabled: bool = True
    interval: float = Field(10.0, gt=0)
    timeout: float = Field(2.0, gt=0)
    unhealthy_after: int = Field(2, ge=1)  # consecutive failed checks that take it out
    healthy_after: int = Field(1, ge=1)  # consecutive passed checks that bring it back


class Balancing(StrictModel):
    ewma_decay: float = Field(10.0, gt=0)  # seconds: time constant of the latency average
    price_weight: float = Field(0.5, ge=0)  # 0 ignores price; 1 = score scales with price


class Shedding(StrictModel):
    retry_after: int = Field(1, ge=1)  # seconds, in 429 answers when every pool is full


class Metering(StrictModel):
    path: str = "gateway-usage.jsonl"
    queue_size: int = Field(65536, ge=1)  # records beyond this are dropped and counted


class RateLimits(StrictModel):
    """Where tenants' rate limits live: in each process, or shared through Redis."""

    backend: Literal["local", "redis"] = "local"
    redis_url: str = Field("redis://127.0.0.1:6379/0", pattern=r"^(redis|rediss|unix)://")
    prefix: str = Field("archipel:gateway:limits", min_length=1)  # same prefix, same limits
    timeout: float = Field(0.25, gt=0)  # seconds per Redis call; then local limits apply
    # redis only: request units a process takes at once (0: ask Redis on every request)
    lease: int = Field(0, ge=0, le=1_000_000)
    lease_seconds: float = Field(1.0, gt=0, le=3600)  # unused leased units then go back
    sync_interval: float = Field(0.05, gt=0, le=60)  # how often token charges are sent

    @model_validator(mode="after")
    def _lease_needs_redis(self) -> RateLimits:
        if self.lease and self.backend != "redis":
            raise ValueError(
                "lease takes units from limits shared through Redis: set backend: redis, "
                "or remove lease"
            )
        return self


class Take(StrictModel):
    """Whose published services the gateway takes, and which of its tenants they serve.

    ``from`` is a control-plane tenant (the owner of the services); ``models``
    narrows to some served models (default: all); ``tenants`` narrows to some
    gateway tenants (default: all). A published replica serves a gateway tenant
    only if a rule names its owner, its model and that tenant, and its site
    passes that tenant's data class.
    """

    from_: str = Field(alias="from", min_length=1)
    models: tuple[str, ...] | None = None
    tenants: tuple[str, ...] | None = None


class ControlPlane(StrictModel):
    """Where to read the routes of the services the control plane runs (``GET /v1/routes``)."""

    url: str = Field(pattern=r"^https?://")
    token_env: str | None = None  # an API token of the control plane, from the environment...
    token_file: str | None = None  # ...or a file; it sees its own tenant's services only
    interval: float = Field(5.0, gt=0)  # seconds between polls
    timeout: float = Field(5.0, gt=0)
    # the upstream key of the token's own tenant's services that come without a key of their own
    key_env: str | None = None
    # whose services serve which tenants; None: the token's own tenant's, for every tenant
    take: tuple[Take, ...] | None = None

    @model_validator(mode="after")
    def _one_token(self) -> ControlPlane:
        if self.token_env is not None and self.token_file is not None:
            raise ValueError("give token_env or token_file, not both")
        return self


class Limits(StrictModel):
    requests_per_minute: int | None = Field(None, ge=1)
    tokens_per_minute: int | None = Field(None, ge=1)


class Tenant(StrictModel):
    key_sha256: tuple[str, ...] = Field(min_length=1)
    data_class: str
    limits: Limits = Limits()

    @model_validator(mode="after")
    def _hex_keys(self) -> Tenant:
        for i, digest in enumerate(self.key_sha256):
            if not _HEX64.match(digest):
                raise ValueError(
                    f"key_sha256[{i}] must be 64 lowercase hex digits "
                    "(python -c 'import archipel.gateway as g; print(g.hash_key(\"KEY\"))')"
                )
        return self


class ReplicaSpec(StrictModel):
    name: str = Field(pattern=_NAME.pattern)
    provider: str
    region: str
    country: str | None = None  # ISO 3166-1 alpha-2; unknown fails any site rule
    base_url: str = Field(pattern=r"^https?://")
    upstream_model: str | None = None  # the model's name at the replica, if different
    key_env: str | None = None
    key_file: str | None = None
    weight: float = Field(1.0, gt=0)
    max_concurrency: int = Field(64, ge=1)
    pool: Pool = Pool.PRIMARY
    price: ServePrice = ServePrice()
    health_path: str = Field("/models", pattern=r"^/")  # GET under base_url; 200 = healthy

    @model_validator(mode="after")
    def _check(self) -> ReplicaSpec:
        if self.country is not None and not _COUNTRY.match(self.country):
            raise ValueError("country must be an ISO 3166-1 alpha-2 code such as FR")
        if self.key_env is not None and self.key_file is not None:
            raise ValueError("give key_env or key_file, not both")
        return self

    @field_validator("base_url")
    @classmethod
    def _usable_url(cls, base_url: str) -> str:
        problem = base_url_problem(base_url)
        if problem is not None:
            raise ValueError(problem)
        return base_url


def base_url_problem(base_url: str) -> str | None:
    """What is wrong with a replica's ``base_url`` (``http(s)://host[:port][/path]``), if anything.

    The gateway appends the endpoint's path to it and sends the replica's own key
    in a header, so credentials, a query or a fragment in it cannot work.
    """
    try:
        url = URL(base_url)
        url.port  # noqa: B018 - parses the port: "host:99999" or "host:x" raises here
    except ValueError as exc:
        return f"base_url {base_url!r} is not a valid URL: {exc}"
    if url.scheme not in ("http", "https") or not url.host:
        return f"base_url {base_url!r} must be http(s)://host[:port][/path]"
    if url.user is not None or url.password is not None:
        return (
            "base_url must not carry credentials (user:password@host): name the replica's "
            "key with key_env or key_file, the gateway sends it as a bearer token"
        )
    if url.query_string or url.fragment:
        return f"base_url {base_url!r} must not have a query (?...) or a fragment (#...)"
    return None


class PublishedReplica(ReplicaSpec):
    """A replica of a service the control plane runs, as ``GET /v1/routes`` describes it.

    ``tenant`` is the control-plane tenant that owns the service, and ``key`` the
    credential issued to that service alone: it is sent to this replica and to no
    other. ``serves`` is decided by the gateway when it takes the replica (see
    :class:`Take`), never by the answer: the gateway tenants it may serve.
    """

    tenant: str = Field(min_length=1)
    key: SecretStr | None = None
    serves: frozenset[str] | None = None  # None: every tenant


class ModelSpec(StrictModel):
    replicas: tuple[ReplicaSpec, ...] = Field(min_length=1)
    owned_by: str = "archipel"

    @model_validator(mode="after")
    def _unique(self) -> ModelSpec:
        seen: set[str] = set()
        for r in self.replicas:
            if r.name in seen:
                raise ValueError(f"replica name {r.name!r} appears twice")
            seen.add(r.name)
        return self


class GatewayConfig(StrictModel):
    """A validated ``gateway.yaml``."""

    version: int = Field(1, ge=1, le=1)
    listen: Listen = Listen()
    timeouts: Timeouts = Timeouts()
    requests: Requests = Requests()
    retry: Retry = Retry()
    breaker: BreakerSettings = BreakerSettings()
    health_checks: HealthChecks = HealthChecks()
    balancing: Balancing = Balancing()
    shedding: Shedding = Shedding()
    metering: Metering = Metering()
    rate_limits: RateLimits = RateLimits()
    shutdown_timeout: float = Field(30.0, gt=0)
    # "auto": uvloop's event loop when uvloop is installed, else asyncio's
    event_loop: Literal["auto", "asyncio", "uvloop"] = "auto"
    control_plane: ControlPlane | None = None
    tenants: dict[str, Tenant] = Field(min_length=1)
    models: dict[str, ModelSpec] = Field(default_factory=dict)  # more: from the control plane

    @model_validator(mode="after")
    def _some_models(self) -> GatewayConfig:
        if not self.models and self.control_plane is None:
            raise ValueError(
                "models: declare at least one model, or a control_plane that publishes them"
            )
        return self

    @model_validator(mode="after")
    def _takes_known_tenants(self) -> GatewayConfig:
        for i, rule in enumerate(self.control_plane.take or () if self.control_plane else ()):
            unknown = sorted(set(rule.tenants or ()) - set(self.tenants))
            if unknown:
                raise ValueError(
                    f"control_plane.take[{i}].tenants: no tenant {', '.join(unknown)} "
                    f"in tenants (known: {', '.join(sorted(self.tenants))})"
                )
        return self

    @model_validator(mode="after")
    def _keys_unique(self) -> GatewayConfig:
        owner: dict[str, str] = {}
        for name, tenant in self.tenants.items():
            for digest in tenant.key_sha256:
                if digest in owner:
                    raise ValueError(f"tenants {owner[digest]} and {name} share an API key")
                owner[digest] = name
        return self


def parse_gateway_config(document: Any, source: str = "<gateway>") -> GatewayConfig:
    """Validate a gateway document (already loaded from YAML); errors name each field."""
    shape = "a mapping with tenants and models"
    return validate(GatewayConfig, document, source, GatewayConfigError, shape)


def resolve_upstream_keys(
    config: GatewayConfig,
    environ: Mapping[str, str],
    read_text: Callable[[str], str],
) -> dict[str, str]:
    """Upstream keys by replica id (``model/replica``), from ``environ`` or files.

    The caller (the CLI) passes the environment and a file reader so that the
    gateway itself reads neither. A named but missing key is an error at
    start-up, never a 401 in the middle of the night.
    """
    keys: dict[str, str] = {}
    problems: list[str] = []
    for model, spec in config.models.items():
        for i, r in enumerate(spec.replicas):
            where = f"models.{model}.replicas[{i}]"
            if r.key_env is not None:
                value = environ.get(r.key_env)
                if not value:
                    problems.append(f"{where}.key_env: environment variable {r.key_env} is unset")
                    continue
                keys[f"{model}/{r.name}"] = value
            elif r.key_file is not None:
                try:
                    keys[f"{model}/{r.name}"] = read_text(r.key_file).strip()
                except OSError as exc:
                    problems.append(f"{where}.key_file: cannot read {r.key_file}: {exc}")
    if problems:
        raise GatewayConfigError("upstream keys", problems)
    return keys


def resolve_control_plane_token(
    config: GatewayConfig,
    environ: Mapping[str, str],
    read_text: Callable[[str], str],
) -> str | None:
    """The control plane token named by ``control_plane.token_env`` or ``token_file``."""
    spec = config.control_plane
    if spec is None:
        return None
    if spec.token_env is not None:
        value = environ.get(spec.token_env)
        if not value:
            raise GatewayConfigError(
                "control plane token",
                [f"control_plane.token_env: environment variable {spec.token_env} is unset"],
            )
        return value
    if spec.token_file is not None:
        try:
            return read_text(spec.token_file).strip()
        except OSError as exc:
            raise GatewayConfigError(
                "control plane token",
                [f"control_plane.token_file: cannot read {spec.token_file}: {exc}"],
            ) from None
    return None
