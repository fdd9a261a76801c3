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

A control plane that cannot be reached, or that answers something invalid,
changes nothing: the gateway keeps serving the last routes it had, logs the
outage once, and says so on ``/metrics``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
from pydantic import ValidationError

from archipel.gateway import _json
from archipel.gateway._config import ControlPlane, GatewayConfig, ModelSpec

log = logging.getLogger("archipel.gateway")

Published = dict[str, ModelSpec]
OnChange = Callable[[Published], Awaitable[None]]


def parse_published(document: Any) -> Published:
    """Validate a ``GET /v1/routes`` answer; ``ValueError`` names what is wrong."""
    if not isinstance(document, Mapping) or not isinstance(document.get("models"), Mapping):
        raise ValueError("the answer must be an object with a `models` object")
    out: Published = {}
    for name, spec in document["models"].items():
        try:
            out[str(name)] = ModelSpec.model_validate(spec)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ValueError(f"models.{name}.{where}: {first['msg']}") from None
    return out


def merge_published(config: GatewayConfig, published: Mapping[str, ModelSpec]) -> GatewayConfig:
    """The file's models plus the published ones.

    A published model the file also declares gets both sets of replicas (the
    file's first; a published replica whose name the file already uses is left
    out). Published replicas get ``control_plane.key_env`` as their upstream
    key, if one is configured.
    """
    if not published:
        return config
    key_env = config.control_plane.key_env if config.control_plane is not None else None
    models = dict(config.models)
    for name, spec in published.items():
        replicas = tuple(
            r if key_env is None else r.model_copy(update={"key_env": key_env, "key_file": None})
            for r in spec.replicas
        )
        if name in models:
            mine = models[name]
            taken = {r.name for r in mine.replicas}
            extra = tuple(r for r in replicas if r.name not in taken)
            models[name] = mine.model_copy(update={"replicas": mine.replicas + extra})
        else:
            models[name] = spec.model_copy(update={"replicas": replicas})
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
