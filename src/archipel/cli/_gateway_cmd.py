"""``archipel gateway``: reads the gateway's files and serves it (see docs/gateway.md)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from archipel.cli._cp import _default_token
from archipel.cli._server import bind_or_exit

if TYPE_CHECKING:
    from archipel.gateway import GatewayConfig, RouteTable

ConfigOpt = Annotated[
    Path,
    typer.Option(
        "--config",
        metavar="FILE",
        help="Gateway YAML: listen address, tenants, models and their replicas, "
        "and optionally a control plane to take more routes from (docs/gateway.md).",
    ),
]
PolicyOpt = Annotated[
    Path | None,
    typer.Option("--policy", metavar="FILE", help="Policy YAML (default: the shipped policy)."),
]
WorkersOpt = Annotated[
    int,
    typer.Option(
        "--workers",
        min=1,
        max=256,
        help="Worker processes sharing the listen address, under one supervisor that "
        "restarts them and forwards SIGHUP (docs/gateway.md#worker-processes).",
    ),
]
LedgerOpt = Annotated[
    str | None,
    typer.Option(
        "--ledger",
        metavar="URL",
        help="Feed the usage log into this ledger (a SQLAlchemy URL, or 'default': the "
        "control plane's SQLite file in the data directory) as the gateway runs.",
    ),
]
LedgerIntervalOpt = Annotated[
    float,
    typer.Option(
        "--ledger-interval",
        help="Seconds between two ingests of the usage log into --ledger.",
        min=0.05,
    ),
]


class GatewayFiles:
    """The gateway's configuration and policy files, read anew on every (re)load."""

    def __init__(self, config: Path, policy: Path | None) -> None:
        self.config = config
        self.policy = policy

    def read_text(self, path: str) -> str:
        """A file the configuration names, relative to the configuration's folder."""
        return (self.config.parent / path).read_text("utf-8")

    def load(self) -> GatewayConfig:
        from archipel.cli._config import read_yaml_documents
        from archipel.core import InputError
        from archipel.gateway import parse_gateway_config

        docs = read_yaml_documents(self.config)
        if len(docs) != 1:
            raise InputError(f"{self.config}: a gateway config holds exactly one YAML document")
        return parse_gateway_config(docs[0], str(self.config))

    def build(self, cfg: GatewayConfig) -> RouteTable:
        """The route table of ``cfg``; the policy and upstream keys are read again each
        time: a reload or new routes from the control plane see the files and the
        environment as they are now."""
        from archipel.cli._common import load_catalog, load_policy
        from archipel.gateway import build_route_table, resolve_upstream_keys

        keys = resolve_upstream_keys(cfg, os.environ, self.read_text)
        return build_route_table(cfg, load_policy(self.policy), load_catalog(), keys)

    def current(self, cfg: GatewayConfig, table: RouteTable) -> tuple[GatewayConfig, RouteTable]:
        """The files as they are now, for a worker that replaces one that died (the others
        may have reloaded since); files that no longer load leave it on ``cfg`` and ``table``."""
        import logging

        from archipel.core import InputError

        try:
            fresh = self.load()
            return fresh, self.build(fresh)
        except InputError as exc:
            logging.getLogger("archipel.gateway").error("reload failed in a new worker: %s", exc)
            return cfg, table


def gateway(
    config: ConfigOpt,
    policy: PolicyOpt = None,
    workers: WorkersOpt = 1,
    ledger: LedgerOpt = None,
    ledger_interval: LedgerIntervalOpt = 10.0,
) -> None:
    """Serve the OpenAI-compatible inference gateway: each tenant's requests go only to the
    replicas its data class allows, with failover, spillover, rate limits and metering.

    Send the process SIGHUP to reload --config and --policy without dropping a request.
    With --ledger, the usage log is ingested into the ledger every --ledger-interval
    seconds and at shutdown, by the supervisor, off the request path.
    Exit status 2 when the listen port is in use or the input is bad."""
    import logging

    from archipel.cli._common import guard
    from archipel.gateway import (
        JsonlMeter,
        WorkerSlot,
        describe_routes,
        resolve_control_plane_token,
        serve,
        serve_workers,
    )

    files = GatewayFiles(config, policy)
    cfg = guard(files.load)
    table = guard(lambda: files.build(cfg))
    token = guard(lambda: resolve_control_plane_token(cfg, os.environ, files.read_text))
    if token is None and cfg.control_plane is not None:
        token = _default_token()  # as `archipel run` finds it
    # One worker listens on this socket. Several: the supervisor only reserves the address
    # (bound, never listening) and each worker listens on a socket of its own on it, so the
    # kernel spreads new connections over the workers by their addresses; on one shared
    # socket, the first worker to wake would accept a whole burst of connections alone.
    several = workers != 1
    listener = bind_or_exit(cfg.listen.host, cfg.listen.port, listen=not several,
                            reuse_port=several)  # fmt: skip
    for line in describe_routes(table):
        typer.echo(line, err=True)
    typer.echo(f"archipel gateway on http://{cfg.listen.host}:{cfg.listen.port}", err=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    def run(slot: WorkerSlot | None) -> None:
        now, routes = (
            (cfg, table) if slot is None or not slot.replacement else files.current(cfg, table)
        )
        meter = JsonlMeter(config.parent / now.metering.path, now.metering.queue_size)
        sock = listener
        if slot is not None:  # a worker: its own socket on the address
            listener.close()
            sock = bind_or_exit(cfg.listen.host, cfg.listen.port, reuse_port=True)
        serve(now, routes, meter, files.load, files.build, token, sock, slot)

    with feeding(ledger, config.parent / cfg.metering.path, ledger_interval):
        if workers == 1:
            run(None)
        else:
            code = serve_workers(workers, run, cfg.shutdown_timeout)
    if workers != 1:
        raise typer.Exit(code)


@contextmanager
def feeding(url: str | None, usage: Path, seconds: float) -> Iterator[None]:
    """While the block runs, ingest ``usage`` into the ledger at ``url`` every ``seconds``
    in a background thread, and once more when it ends (nothing without ``url``).

    The log is the one the gateway starts with: a reload that moves
    ``metering.path`` is not followed (restart the gateway to feed the new file).
    """
    if url is None:
        yield
        return
    from archipel.cli._common import guard
    from archipel.cli._feeds import Every, hold_across_fork, ingest_log
    from archipel.cli._ledger import open_ledger

    # the columnar store's folder, as `ledger ingest --store` takes it (a SQLite ledger
    # has a default beside its file; another database needs one)
    folder = os.environ.get("ARCHIPEL_LEDGER_DIR")
    store = Path(folder) if folder else None
    ledger = guard(lambda: open_ledger(None if url == "default" else url, store))
    feed = Every("ledger-feed", seconds, lambda: ingest_log(ledger, usage))
    hold_across_fork(feed.lock)  # a worker is never forked in the middle of an ingest
    feed.start()
    try:
        yield
    finally:
        feed.stop()
        ledger.close()
