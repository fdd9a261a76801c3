"""``archipel server``: wires the control plane together and serves it.

The command composes what :mod:`archipel.controlplane` provides (store, sites,
placer, reconciler, HTTP API), then runs the reconciler's loop
(:meth:`Reconciler.run_forever`) in a thread beside the HTTP server, and stops
both on the way out.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from archipel.cli._common import fail
from archipel.cli._cp import MAX_WORKDIR_BYTES, _token_file, _warn

if TYPE_CHECKING:
    from fastapi import FastAPI

    from archipel.cli._simulations import SimulationWorker
    from archipel.console import FleetPlanner, GatewayMetrics, Spend
    from archipel.controlplane import Reconciler, SiteSpec, Store
    from archipel.core import CatalogSnapshot
    from archipel.ledger import Ledger, Report
    from archipel.placement import Planner
    from archipel.policy import Policy

#: the longest the solver may take over a fleet uploaded in the console (the CLI's default is
#: 60 s; the example lab solves in under a second)
_FLEET_SECONDS = 20.0
#: how long the server waits, on its way out, for a reconcile round under way to end
_STOP_SECONDS = 5.0

_DEFAULT_SITES: dict[str, Any] = {
    "sites": [
        {
            "name": "local",
            "backend": "local",
            "provider": "self",
            "region": "localhost",
            "accelerators": "cpu:1",
            "slots": max(1, os.cpu_count() or 1),
        }
    ]
}

# -- the options (help texts as `archipel server --help` shows them) ------------

DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="SQLAlchemy URL (default: SQLite in the data directory), e.g. postgresql+psycopg://user@host/db.",
    ),
]
SitesOpt = Annotated[
    Path | None,
    typer.Option(
        "--sites", metavar="FILE", help="Sites YAML (default: one local site on this machine)."
    ),
]
PolicyOpt = Annotated[
    Path | None,
    typer.Option("--policy", metavar="FILE", help="Policy YAML (default: the shipped policy)."),
]
FinOpsOpt = Annotated[
    Path | None,
    typer.Option(
        "--finops",
        metavar="FILE",
        help="FinOps YAML (docs/commitments.md): serve /v1/ledger/commitments, budgets, alerts "
        "and metrics, to admins.",
    ),
]
HostOpt = Annotated[str, typer.Option("--host")]
PortOpt = Annotated[int, typer.Option("--port")]
IntervalOpt = Annotated[
    float, typer.Option("--interval", help="Seconds between reconcile rounds.", min=0.05)
]
MaxBodyOpt = Annotated[
    int,
    typer.Option("--max-body", metavar="BYTES", help="Largest request body (413 over it).", min=1),
]
BodyTimeoutOpt = Annotated[
    float,
    typer.Option("--body-timeout", help="Seconds for a request body to arrive (408).", min=0.01),
]
HeaderTimeoutOpt = Annotated[
    float,
    typer.Option("--header-timeout", help="Seconds for request headers to arrive.", min=0.01),
]
KeepAliveOpt = Annotated[
    int, typer.Option("--keep-alive", help="Seconds an idle connection is kept.", min=1)
]
TokenCacheOpt = Annotated[
    float,
    typer.Option(
        "--token-cache",
        help="Seconds a verified token is remembered: a revoked token stops working "
        "within this time (0: at once, one database read per request).",
        min=0,
    ),
]
MaxRunsOpt = Annotated[
    int,
    typer.Option(
        "--max-runs-per-round",
        help="Waiting runs one reconcile round places or re-checks at most, in turns "
        "across tenants.",
        min=1,
    ),
]
MaxActiveOpt = Annotated[
    int,
    typer.Option("--max-active-runs", help="Unfinished runs one tenant may have at once.", min=1),
]
MaxReplicasOpt = Annotated[
    int, typer.Option("--max-replicas", help="Replicas in one submission at most.", min=1)
]
MaxGpusOpt = Annotated[
    int,
    typer.Option("--max-gpus", help="GPUs one tenant's unfinished runs may ask for in all.", min=1),
]
MaxWorkdirOpt = Annotated[
    int,
    typer.Option(
        "--max-workdir",
        metavar="BYTES",
        help="Largest workdir archive a run may upload (413 over it).",
        min=1,
    ),
]
MaxWorkdirTotalOpt = Annotated[
    int,
    typer.Option(
        "--max-workdir-total",
        metavar="BYTES",
        help="What one tenant's kept workdir archives may add up to (429 past it).",
        min=1,
    ),
]

GatewayMetricsOpt = Annotated[
    str | None,
    typer.Option(
        "--gateway-metrics",
        metavar="URL",
        help="The inference gateway's metrics (e.g. http://127.0.0.1:8080/metrics): the "
        "console shows each service replica's traffic, errors, health and circuit from it.",
    ),
]

LedgerOpt = Annotated[
    str | None,
    typer.Option(
        "--ledger",
        metavar="URL",
        help="SQLAlchemy URL of the ledger that ended attempts are metered into "
        "(default: the server's own database; 'off': none).",
    ),
]
LedgerIntervalOpt = Annotated[
    float,
    typer.Option(
        "--ledger-interval",
        help="Seconds between moves of ended attempts into the ledger.",
        min=0.05,
    ),
]

#: the longest a workdir retention option may ask for: a century, in hours
MAX_HOURS = 100 * 365 * 24
WorkdirGraceOpt = Annotated[
    float,
    typer.Option(
        "--workdir-grace",
        metavar="HOURS",
        help="Keep a workdir archive this long after the last run naming it ended.",
        min=0,
        max=MAX_HOURS,
    ),
]
WorkdirTtlOpt = Annotated[
    float,
    typer.Option(
        "--workdir-ttl",
        metavar="HOURS",
        help="Keep a workdir archive no run names this long after its upload (or last use).",
        min=0,
        max=MAX_HOURS,
    ),
]


@dataclass(frozen=True, slots=True)
class Settings:
    """What ``archipel server`` was asked for (its options)."""

    db: str | None
    sites: Path | None
    policy: Path | None
    host: str
    port: int
    interval: float
    max_body: int
    body_timeout: float
    header_timeout: float
    keep_alive: int
    token_cache: float
    max_runs_per_round: int
    max_active_runs: int
    max_replicas: int
    max_gpus: int
    max_workdir: int
    max_workdir_total: int
    workdir_grace: float
    workdir_ttl: float
    ledger: str | None = None
    ledger_interval: float = 5.0
    finops: Path | None = None
    gateway_metrics: str | None = None


def server(
    db: DbOpt = None,
    sites: SitesOpt = None,
    policy: PolicyOpt = None,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8470,
    interval: IntervalOpt = 1.0,
    max_body: MaxBodyOpt = 1 << 20,
    body_timeout: BodyTimeoutOpt = 10.0,
    header_timeout: HeaderTimeoutOpt = 10.0,
    keep_alive: KeepAliveOpt = 5,
    token_cache: TokenCacheOpt = 5.0,
    max_runs_per_round: MaxRunsOpt = 100,
    max_active_runs: MaxActiveOpt = 1000,
    max_replicas: MaxReplicasOpt = 64,
    max_gpus: MaxGpusOpt = 512,
    max_workdir: MaxWorkdirOpt = MAX_WORKDIR_BYTES,
    max_workdir_total: MaxWorkdirTotalOpt = 1 << 30,
    workdir_grace: WorkdirGraceOpt = 24.0,
    workdir_ttl: WorkdirTtlOpt = 24.0,
    ledger: LedgerOpt = None,
    ledger_interval: LedgerIntervalOpt = 5.0,
    finops: FinOpsOpt = None,
    gateway_metrics: GatewayMetricsOpt = None,
) -> None:
    """Run the control plane: the HTTP API and the reconciler that runs your workloads.

    Exit status 2 when the port is in use or the input is bad."""
    settings = Settings(**locals())  # first: the options, and nothing else, are local yet
    import logging

    from archipel.cli._common import guard

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # what the server creates (state, attempt folders, checkpoints, logs) is its own
    # unless it hands it over: a site's run_as user gets only its attempts' folders
    os.umask(0o077)
    from archipel.controlplane._lease import ReconcileLease

    listener = bind_or_exit(host, port, listen=False)
    # the ledger's handle first: opening the SQLite file to check its mode once the store
    # is connected to it would drop the store's locks on it (POSIX locks are per process)
    into = guard(lambda: _ledger(settings))
    store, reconciler, app, simulations = guard(lambda: _build(settings))
    listener.listen(_BACKLOG)  # the admin token and the store are ready: clients may come
    # replicas on one database: only the holder of the lease reconciles (docs/deploy.md)
    lease = ReconcileLease(store.engine)
    simulations.start()
    try:
        with metering(store, into, settings), reconciling(reconciler, interval, lease.held):
            _serve(app, listener, settings, store.url)  # both stopped before the store closes
    finally:
        simulations.stop()
        lease.release()
        store.close()


def _ledger(settings: Settings) -> Ledger | None:
    """The ledger ended attempts are metered into (not connected yet), or ``None``."""
    from archipel.ledger import Ledger

    url = _ledger_url(settings)
    return None if url is None else Ledger(url)


@contextmanager
def metering(store: Store, ledger: Ledger | None, settings: Settings) -> Iterator[None]:
    """Ended attempts move from the store's outbox into the ledger while the block runs,
    every ``--ledger-interval`` seconds and once more on the way out (docs/ledger.md)."""
    from archipel.cli._common import guard

    if ledger is None:
        yield
        return
    from archipel.cli._feeds import Every, move_endings

    guard(ledger.migrate)
    feed = Every("ledger-feed", settings.ledger_interval, lambda: move_endings(store, ledger))
    feed.start()
    try:
        yield
    finally:
        feed.stop()
        ledger.close()


def _build(settings: Settings) -> tuple[Store, Reconciler, FastAPI, SimulationWorker]:
    """The store (migrated), the sites, the reconciler, the HTTP API, ready to serve, and the
    console's simulation worker (not started)."""
    from archipel.cli._common import load_catalog, load_policy
    from archipel.cli._config import data_dir
    from archipel.controlplane import Reconciler, SitePlacer, build_sites
    from archipel.controlplane._api import create_app
    from archipel.controlplane._http import Limits
    from archipel.controlplane._quotas import Quotas
    from archipel.controlplane._workdirs import Retention

    home = data_dir()
    specs = _site_specs(settings.sites, home)
    store = _open_store(settings)
    built = build_sites(specs, home)
    placer = SitePlacer(specs, load_catalog(), load_policy(settings.policy))
    reconciler = Reconciler(
        store,
        built,
        placer,
        home / "checkpoints",
        max_runs_per_round=settings.max_runs_per_round,
        retention=Retention(
            grace=timedelta(hours=settings.workdir_grace),
            ttl=timedelta(hours=settings.workdir_ttl),
        ),
        workdir_quota=settings.max_workdir_total,
    )
    _admin_token(store)
    limits = Limits(
        max_body_bytes=settings.max_body,
        body_seconds=settings.body_timeout,
        header_seconds=settings.header_timeout,
        keep_alive_seconds=settings.keep_alive,
        max_workdir_bytes=settings.max_workdir,
    )
    quotas = Quotas(
        active_runs=settings.max_active_runs,
        replicas=settings.max_replicas,
        gpus=settings.max_gpus,
    )
    from archipel.cli._simulations import MAX_UNFINISHED, TIME_LIMIT, SimulationWorker, check
    from archipel.console import PREFIX, Simulator, mount

    # simulations uploaded in the console run one at a time, in a process of their own
    worker = SimulationWorker(store.simulations, settings.policy)
    simulator = Simulator(check, worker.wake, MAX_UNFINISHED, TIME_LIMIT.total_seconds() / 60)
    planner = _plan_planner(placer.catalog, placer.policy)
    app = create_app(store, reconciler, limits=limits, quotas=quotas, open_prefixes=(PREFIX,))
    # the console authenticates its callers itself (a session cookie signed with this key)
    mount(
        app,
        store,
        reconciler,
        key=_console_key(home),
        clock=time.time,
        planner=planner,
        spend=_spend(settings, placer.catalog),
        simulator=simulator,
        fleet=_fleet_planner(planner),
        gateway=_gateway_metrics(settings.gateway_metrics),
    )
    if settings.finops is not None:
        from archipel.cli._ledger_commitments import mount_finops

        # the ledger the server meters into, as the console's spend view reads it
        mount_finops(app, settings.finops, _ledger_url(settings) or store.url)
    return store, reconciler, app, worker


def _ledger_url(settings: Settings) -> str | None:
    """The ledger the server meters ended attempts into; None with ``--ledger off``."""
    from archipel.cli._config import default_db_url

    if (settings.ledger or "").lower() == "off":
        return None
    return settings.ledger or settings.db or default_db_url()


def _spend(settings: Settings, catalog: CatalogSnapshot) -> Spend | None:
    """The console's spend view: ``archipel report``'s figures over the ledger the server
    meters into (none with ``--ledger off``), against the ``--finops`` spec if given."""
    from datetime import UTC, date, datetime

    from archipel.cli._ledger_commitments import entries_of, load_finops
    from archipel.cli._report import report_figures
    from archipel.console import Spend
    from archipel.core import parse_finops

    url = _ledger_url(settings)
    if url is None:
        return None
    finops = settings.finops
    spec = load_finops(finops) if finops is not None else parse_finops({}, "<none>")

    def figures(day: date) -> Report:
        return report_figures(spec, lambda: entries_of(url, migrate=False), catalog, today=day)

    return Spend(figures, lambda: datetime.now(UTC).date(), None if finops is None else str(finops))


def _site_specs(sites: Path | None, home: Path) -> list[SiteSpec]:
    """The declared sites, and the server's private folders made ready for them."""
    from archipel.cli._config import read_yaml_documents
    from archipel.controlplane import parse_sites

    doc = read_yaml_documents(sites)[0] if sites else _DEFAULT_SITES
    specs = parse_sites(doc, str(sites or "default sites"))
    # run_as users pass through these folders to their own (0711: no listing)
    mode = 0o711 if any(s.run_as for s in specs) else 0o700
    for folder in (home, home / "sites", home / "checkpoints"):
        _private_folder(folder, mode)
    return specs


def _open_store(settings: Settings) -> Store:
    from archipel.cli._config import default_db_url
    from archipel.controlplane import Store

    store = Store(settings.db or default_db_url())
    store.token_cache_seconds = settings.token_cache
    store.migrate()
    return store


def _admin_token(store: Store) -> None:
    """Write an admin token for tenant ``default`` on first start; say where it is."""
    token_path = _token_file()
    if _private_file(token_path):
        typer.echo(f"an admin token for tenant `default` is in {token_path}")
        return
    token = store.create_token("default", "admin")
    try:
        _write_private(token_path, token + "\n")
        typer.echo(f"an admin token for tenant `default` was written to {token_path}")
    except FileExistsError:  # a replica sharing this data directory wrote it first
        store.revoke_token(token.split("_")[1])
        typer.echo(f"an admin token for tenant `default` is in {token_path}")


def _plan_planner(catalog: CatalogSnapshot, policy: Policy) -> Callable[[], Planner]:
    """The console's plan form's engine: the whole catalog under the server's policy, in
    the policy's currency (as ``archipel plan`` compares), built once on first use."""
    import functools

    from archipel.cli._common import in_comparison_currency
    from archipel.placement import Planner

    @functools.cache
    def planner() -> Planner:
        return Planner(in_comparison_currency(catalog, None, policy), policy)

    return planner


def _fleet_planner(planner: Callable[[], Planner]) -> FleetPlanner:
    """The console's fleet upload: ``archipel fleet plan``'s document on the plan form's
    engine (the server's catalog and policy, in the policy's currency)."""
    from archipel.cli._fleet import plan_uploaded_fleet
    from archipel.console import FleetPlanner

    def plan(text: str) -> dict[str, Any]:
        return plan_uploaded_fleet(planner(), text, time_limit=_FLEET_SECONDS)

    return FleetPlanner(plan, _FLEET_SECONDS)


def _gateway_metrics(url: str | None) -> GatewayMetrics | None:
    """How the console reads the gateway's ``/metrics`` (``--gateway-metrics``): one GET with
    a short timeout; what goes wrong is an :class:`OSError` the services view shows."""
    if url is None:
        return None
    import httpx

    from archipel.console import GatewayMetrics
    from archipel.core import InputError

    if not url.startswith(("http://", "https://")):
        raise InputError(f"--gateway-metrics {url!r}: give an http:// or https:// URL")

    def fetch() -> str:
        try:
            answer = httpx.get(url, timeout=2.0)
            answer.raise_for_status()
        except httpx.HTTPError as exc:
            raise ConnectionError(f"{type(exc).__name__}: {exc}") from exc
        return answer.text

    return GatewayMetrics(url, fetch)


def _console_key(home: Path) -> bytes:
    """The key that signs the console's sessions: made on first start, kept in the data
    directory (0600) beside the token, so sessions outlive a restart."""
    import contextlib
    import secrets

    path = home / "console.key"
    if not _private_file(path):
        # a replica sharing this data directory may write it first: then that one is used
        with contextlib.suppress(FileExistsError):
            _write_private(path, secrets.token_hex(32) + "\n")
    key = path.read_text().strip()
    if len(key) < 64:
        from archipel.core import InputError

        raise InputError(f"{path} holds no console key; delete it and start the server again")
    return key.encode()


@contextmanager
def reconciling(
    reconciler: Reconciler, interval: float, may_reconcile: Callable[[], bool] | None = None
) -> Iterator[threading.Thread]:
    """The reconciler's loop in a thread while the block runs; stopped when it ends.

    On the way out the round under way, if any, is given a few seconds to end.
    """
    stop = threading.Event()
    worker = threading.Thread(
        target=reconciler.run_forever,
        args=(stop, interval, may_reconcile),
        name="reconciler",
        daemon=True,
    )
    worker.start()
    try:
        yield worker
    finally:
        stop.set()
        worker.join(timeout=_STOP_SECONDS)


def _serve(app: FastAPI, listener: Any, settings: Settings, url: str) -> None:
    """Serve the API on ``listener`` until the process is told to stop."""
    import uvicorn

    from archipel.controlplane._http import header_timeout_protocol

    config = uvicorn.Config(
        app,
        log_level="warning",
        http=header_timeout_protocol(settings.header_timeout),
        timeout_keep_alive=settings.keep_alive,
    )
    typer.echo(
        f"archipel control plane on http://{settings.host}:{settings.port} "
        f"(state: {url.split('@')[-1]})"
    )
    typer.echo(f"console: http://{settings.host}:{settings.port}/ui/ (sign in with an API token)")
    uvicorn.Server(config).run(sockets=[listener])


_BACKLOG = 2048


def bind_or_exit(host: str, port: int, listen: bool = True, reuse_port: bool = False) -> Any:
    """A socket bound to ``host:port`` (and listening, unless ``listen`` is false); one line
    on stderr and exit 2 when it cannot be. ``reuse_port``: other sockets with the option,
    of the same user, may bind the address too, and the kernel spreads new connections
    over those listening (SO_REUSEPORT).

    Binding comes first, so that a port in use is said at once and "listening" is
    printed only once it is true. A caller with more to set up before it can answer
    binds without listening, and listens when ready: until then a client is refused
    rather than queued in front of a server that is not there yet.
    """
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        fail(f"cannot listen on {host}: {exc.strerror or exc}; check --host")
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        if listen:
            sock.listen(_BACKLOG)
    except OSError as exc:
        sock.close()
        import errno

        if exc.errno == errno.EADDRINUSE:
            fail(f"port {port} on {host} is in use; pick another with --port")
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}; check --host and --port")
    sock.set_inheritable(True)
    return sock


def _private_folder(folder: Path, mode: int) -> None:
    """Create ``folder`` with ``mode``; tighten one others could read, with a warning.

    A folder others share (sticky, as ``/tmp``) or own is refused rather than changed.
    """
    from archipel.core import InputError

    folder.mkdir(parents=True, exist_ok=True)
    info = folder.stat()
    if info.st_mode & 0o1000 or info.st_uid != os.geteuid():
        raise InputError(
            f"the data directory {folder} is shared with other users or theirs; give the "
            "server a folder of its own (ARCHIPEL_DATA_DIR)"
        )
    current = info.st_mode & 0o777
    if current == mode:
        return
    folder.chmod(mode)
    if current & ~mode & 0o077:
        _warn(f"{folder} was open to others (mode {current:o}); it is now {mode:o}")


def _private_file(path: Path) -> bool:
    """Whether ``path`` exists; if others could read it, make it 0600 and say so."""
    try:
        current = path.stat().st_mode & 0o777
    except FileNotFoundError:
        return False
    if current & 0o077:
        path.chmod(0o600)
        _warn(
            f"{path} was readable by others (mode {current:o}); it is now 600. Whoever "
            "could read it may hold the token in it: revoke it (`archipel token revoke ID`) "
            "and delete the file to get a new one"
        )
    return True


def _write_private(path: Path, text: str) -> None:
    """Write a new file that only this user can read, from its first byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
