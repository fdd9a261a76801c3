"""`/metrics` of a gateway with several workers: every worker's figures in one answer.

A scrape reaches whichever worker accepts the connection. Each worker also
answers on a private Unix socket (:meth:`WorkerSlot.socket`) with its own
figures; the worker that took the scrape asks every worker, itself included,
concurrently, labels each sample with ``worker="<index>"`` (as Prometheus'
multiprocess convention does) and answers with the families merged by name.
A worker that does not answer in time (being restarted) is left out of that
scrape and counted in ``archipel_gateway_workers_missing``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import aiohttp
from aiohttp import web
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry
from prometheus_client.samples import Sample

from archipel.gateway._workers import WorkerSlot

PATH = "/metrics/worker"


class PeerMetrics:
    """Serves this worker's figures on its socket and gathers all workers' on a scrape."""

    def __init__(self, slot: WorkerSlot, own: CollectorRegistry, timeout: float = 2.0) -> None:
        self.slot = slot
        self.own = own
        self.timeout = timeout
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(PATH, self._handle_own)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        path = self.slot.socket(self.slot.index)
        path.unlink(missing_ok=True)  # left by a worker this one replaces
        await web.UnixSite(self._runner, str(path)).start()

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle_own(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=generate_latest(self.own), content_type="text/plain")

    async def handle_metrics(self, request: web.Request) -> web.StreamResponse:
        texts = await asyncio.gather(*(self._fetch(i) for i in range(self.slot.count)))
        registry = CollectorRegistry()
        registry.register(_Merged(texts))
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def _fetch(self, index: int) -> str | None:
        if index == self.slot.index:
            return generate_latest(self.own).decode()
        connector = aiohttp.UnixConnector(path=str(self.slot.socket(index)))
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        try:
            async with (
                aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
                session.get(f"http://worker{PATH}") as resp,
            ):
                return await resp.text() if resp.status == 200 else None
        except (aiohttp.ClientError, TimeoutError, OSError):
            return None


class _Merged:
    """The workers' exposition texts as one set of families, each sample labelled."""

    def __init__(self, texts: list[str | None]) -> None:
        self.texts = texts

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for index, text in enumerate(self.texts):
            if text is None:
                continue
            for family in text_string_to_metric_families(text):
                merged = families.setdefault(
                    family.name, Metric(family.name, family.documentation, family.type)
                )
                merged.samples.extend(_labelled(family.samples, str(index)))
        yield from families.values()
        missing = GaugeMetricFamily(
            "archipel_gateway_workers_missing",
            "Workers that did not answer this scrape (being restarted, or stuck).",
        )
        missing.add_metric([], sum(1 for t in self.texts if t is None))
        yield missing


def _labelled(samples: list[Sample], worker: str) -> Iterator[Sample]:
    for s in samples:
        yield Sample(s.name, {**s.labels, "worker": worker}, s.value, s.timestamp, s.exemplar)
