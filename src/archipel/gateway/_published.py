"""Routes published by the control plane: the inference services it runs.

The control plane answers ``GET /v1/routes`` with, per model, the replicas of
the services it is running now (see docs/controlplane.md), in the same shape
as the ``models`` section of ``gateway.yaml``. :class:`PublishedRoutes` polls
it every ``interval`` seconds with ``If-None-Match``, so an unchanged answer
costs one empty 304, and hands each changed, valid document to a callback.
The gateway merges it with the models of its file (:func:`merge_published`)
and rebuilds its route table with the policy engine, exactly as at load: the
request path still does no policy reasoning, and a published replica is
judged by its provider, region and country like any other.

Each published replica names its owner (the control-plane tenant that runs
it) and carries the credential issued to that service alone. Who may use it
is decided here, by ``control_plane.take`` (:class:`~archipel.gateway._config.Take`):
a replica whose owner no rule names is left out (:func:`ignored`), and a taken
one serves only the gateway tenants its rules name. Without ``take``, the
gateway takes the services of its token's own tenant, for every tenant. A
published replica is sent its own key, or the ``control_plane.key_env`` key
if it is the token's own tenant's and came without one, and never any other:
the answer cannot name a key of the gateway's (``key_env``, ``key_file``).

A control plane that cannot be reached, or that answers something invalid,
changes nothing: the gateway keeps serving the last routes it had, logs the
outage once, and says so on ``/metrics``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from pydantic import Field, ValidationError

from archipel.core import StrictModel, field_problems
from archipel.gateway import _json
from archipel.gateway._config import (
    ControlPlane,
    GatewayConfig,
    ModelSpec,
    PublishedReplica,
    Take,
)

log = logging.getLogger("archipel.gateway")


class _PublishedModel(StrictModel):
    replicas: tuple[PublishedReplica, ...] = Field(min_length=1)
    owned_by: str = "archipel"


@dataclass(frozen=True, slots=True)
class Published:
    """A valid ``GET /v1/routes`` answer: who asked (the token's tenant), and the models."""

    tenant: str | None = None  # None: nothing was published yet
    models: Mapping[str, _PublishedModel] = field(default_factory=dict)

    def replicas(self) -> Iterator[tuple[str, PublishedReplica]]:
        for model, spec in self.models.items():
            for r in spec.replicas:
                yield model, r


OnChange = Callable[[Published], Awaitable[None]]


def parse_published(document: Any) -> Published:
    """Validate a ``GET /v1/routes`` answer; ``ValueError`` names what is wrong."""
    if not isinstance(document, Mapping) or not isinstance(document.get("models"), Mapping):
        raise ValueError("the answer must be an object with a `models` object")
    tenant = document.get("tenant")
    if not isinstance(tenant, str) or not tenant:
        raise ValueError("tenant: the answer must name the token's tenant")
    out: dict[str, _PublishedModel] = {}
    for name, spec in document["models"].items():
        try:
            out[str(name)] = _PublishedModel.model_validate(spec)
        except ValidationError as exc:
            raise ValueError(f"models.{name}.{field_problems(exc)[0]}") from None
    return Published(tenant, out)


def _rules(config: GatewayConfig, published: Published) -> tuple[Take, ...]:
    spec = config.control_plane
    if spec is not None and spec.take is not None:
        return spec.take
    if published.tenant is None:
        return ()
    return (Take.model_validate({"from": published.tenant}),)  # the default: our own only


def _serves(rules: tuple[Take, ...], model: str, r: PublishedReplica) -> frozenset[str] | None:
    """The gateway tenants ``r`` may serve: None for all, empty for none (not taken)."""
    serves: set[str] = set()
    for rule in rules:
        if rule.from_ != r.tenant or (rule.models is not None and model not in rule.models):
            continue
        if rule.tenants is None:
            return None
        serves.update(rule.tenants)
    return frozenset(serves)


def ignored(config: GatewayConfig, published: Published) -> list[tuple[str, str]]:
    """The published replicas no ``take`` rule takes: (replica id, owner tenant), in order."""
    rules = _rules(config, published)
    return [
        (f"{model}/{r.name}", r.tenant)
        for model, r in published.replicas()
        if _serves(rules, model, r) == frozenset()
    ]


def merge_published(config: GatewayConfig, published: Published) -> GatewayConfig:
    """The file's models plus the published replicas the ``take`` rules take.

    A published model the file also declares gets both sets of replicas (the
    file's first; a published replica whose name the file already uses is left
    out). Each taken replica keeps its own key and is told which tenants it
    serves; ``control_plane.key_env`` is the key of the token's own tenant's
    replicas that came without one. Whatever key the answer names is ignored.
    """
    if not published.models:
        return config
    key_env = config.control_plane.key_env if config.control_plane is not None else None
    rules = _rules(config, published)
    models = dict(config.models)
    for name, spec in published.models.items():
        replicas = []
        for r in spec.replicas:
            serves = _serves(rules, name, r)
            if serves == frozenset():
                continue
            own = r.tenant == published.tenant and r.key is None
            fallback = key_env if own else None
            replicas.append(
                r.model_copy(update={"serves": serves, "key_env": fallback, "key_file": None})
            )
        if not replicas:
            continue
        if name in models:
            mine = models[name]
            names = {r.name for r in mine.replicas}
            extra = tuple(r for r in replicas if r.name not in names)
            models[name] = mine.model_copy(update={"replicas": mine.replicas + extra})
        else:
            models[name] = ModelSpec(replicas=tuple(replicas), owned_by=spec.owned_by)
    return config.model_copy(update={"models": models})


class PublishedRoutes:
    """Polls the control plane's routes; ``on_change`` gets each new valid answer."""

    def __init__(self, spec: ControlPlane, token: str | None, on_change: OnChange) -> None:
        self.spec = spec
        self.on_change = on_change
        self.url = spec.url.rstrip("/") + "/v1/routes"
        self._headers = {"Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self.up = False  # the last poll got an answer (200 or 304)
        self.polls = {"changed": 0, "unchanged": 0, "failed": 0}
        self._etag: str | None = None
        self._outage: str | None = None

    async def run(self) -> None:
        """Poll until cancelled: at once, then every ``interval`` seconds."""
        timeout = aiohttp.ClientTimeout(total=self.spec.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                try:
                    await self.poll(session)
                except Exception:  # a bug here must not end the polling for good
                    log.exception("gateway: polling the control plane's routes failed")
                await asyncio.sleep(self.spec.interval)

    async def poll(self, session: aiohttp.ClientSession) -> bool:
        """One poll; True when new routes were handed over."""
        headers = dict(self._headers)
        if self._etag is not None:
            headers["If-None-Match"] = self._etag
        try:
            async with session.get(self.url, headers=headers) as resp:
                if resp.status == 304:
                    self._answered()
                    self.polls["unchanged"] += 1
                    return False
                body = await resp.read()
                if resp.status != 200:
                    raise ValueError(f"HTTP {resp.status}: {body[:200].decode(errors='replace')}")
                published = parse_published(_json.loads(body))
                etag = resp.headers.get("ETag")
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            self._failed(exc)
            return False
        self._answered()
        self._etag = etag
        self.polls["changed"] += 1
        await self.on_change(published)
        return True

    def _answered(self) -> None:
        self.up = True
        if self._outage is not None:
            log.warning("gateway: the control plane answers again at %s", self.url)
            self._outage = None

    def _failed(self, exc: BaseException) -> None:
        self.up = False
        self.polls["failed"] += 1
        self._etag = None  # ask for the whole answer once it is back
        reason = f"{type(exc).__name__}: {exc}"
        if self._outage is None:
            log.warning(
                "gateway: cannot read routes from the control plane at %s (%s); "
                "serving the last routes it published",
                self.url,
                reason,
            )
        self._outage = reason
