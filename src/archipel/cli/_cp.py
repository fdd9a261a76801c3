"""Control-plane commands: ``archipel server`` and its clients (run, ps, status, logs, cancel)."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer

DEFAULT_SERVER = "http://127.0.0.1:8470"
ENV_SERVER = "ARCHIPEL_SERVER"
ENV_TOKEN = "ARCHIPEL_TOKEN"
#: the largest workdir shipped with a run, packed (the server's --max-workdir default)
MAX_WORKDIR_BYTES = 64 << 20

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


def _token_file() -> Path:
    from archipel.cli._config import data_dir

    return data_dir() / "token"


def _warn(message: str) -> None:
    typer.echo(f"warning: {message}", err=True)


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


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def server(
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="SQLAlchemy URL (default: SQLite in the data directory), e.g. postgresql+psycopg://user@host/db.",
        ),
    ] = None,
    sites: Annotated[
        Path | None,
        typer.Option(
            "--sites", metavar="FILE", help="Sites YAML (default: one local site on this machine)."
        ),
    ] = None,
    policy: Annotated[
        Path | None,
        typer.Option("--policy", metavar="FILE", help="Policy YAML (default: the shipped policy)."),
    ] = None,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8470,
    interval: Annotated[
        float, typer.Option("--interval", help="Seconds between reconcile rounds.", min=0.05)
    ] = 1.0,
    max_body: Annotated[
        int,
        typer.Option(
            "--max-body", metavar="BYTES", help="Largest request body (413 over it).", min=1
        ),
    ] = 1 << 20,
    body_timeout: Annotated[
        float,
        typer.Option(
            "--body-timeout", help="Seconds for a request body to arrive (408).", min=0.01
        ),
    ] = 10.0,
    header_timeout: Annotated[
        float,
        typer.Option("--header-timeout", help="Seconds for request headers to arrive.", min=0.01),
    ] = 10.0,
    keep_alive: Annotated[
        int, typer.Option("--keep-alive", help="Seconds an idle connection is kept.", min=1)
    ] = 5,
    token_cache: Annotated[
        float,
        typer.Option(
            "--token-cache",
            help="Seconds a verified token is remembered: a revoked token stops working "
            "within this time (0: at once, one database read per request).",
            min=0,
        ),
    ] = 5.0,
    max_runs_per_round: Annotated[
        int,
        typer.Option(
            "--max-runs-per-round",
            help="Waiting runs one reconcile round places or re-checks at most, in turns "
            "across tenants.",
            min=1,
        ),
    ] = 100,
    max_active_runs: Annotated[
        int,
        typer.Option(
            "--max-active-runs", help="Unfinished runs one tenant may have at once.", min=1
        ),
    ] = 1000,
    max_replicas: Annotated[
        int, typer.Option("--max-replicas", help="Replicas in one submission at most.", min=1)
    ] = 64,
    max_gpus: Annotated[
        int,
        typer.Option(
            "--max-gpus", help="GPUs one tenant's unfinished runs may ask for in all.", min=1
        ),
    ] = 512,
    max_workdir: Annotated[
        int,
        typer.Option(
            "--max-workdir",
            metavar="BYTES",
            help="Largest workdir archive a run may upload (413 over it).",
            min=1,
        ),
    ] = MAX_WORKDIR_BYTES,
) -> None:
    """Run the control plane: the HTTP API and the reconciler that runs your workloads.

    Exit status 2 when the port is in use or the input is bad."""
    import logging

    import uvicorn

    from archipel.cli._app import _guard, _policy, _snapshot
    from archipel.cli._config import data_dir, read_yaml_documents
    from archipel.controlplane import Reconciler, SitePlacer, Store, build_sites, parse_sites
    from archipel.controlplane._api import create_app
    from archipel.controlplane._http import Limits, header_timeout_protocol
    from archipel.controlplane._lease import ReconcileLease
    from archipel.controlplane._quotas import Quotas

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    home = data_dir()
    # what the server creates (state, attempt folders, checkpoints, logs) is its own
    # unless it hands it over: a site's run_as user gets only its attempts' folders
    os.umask(0o077)

    def setup() -> tuple[Any, Any, Any]:
        doc = read_yaml_documents(sites)[0] if sites else _DEFAULT_SITES
        specs = parse_sites(doc, str(sites or "default sites"))
        # run_as users pass through these folders to their own (0711: no listing)
        mode = 0o711 if any(s.run_as for s in specs) else 0o700
        for folder in (home, home / "sites", home / "checkpoints"):
            _private_folder(folder, mode)
        url = db or f"sqlite:///{home / 'state.db'}"
        store = Store(url)
        store.token_cache_seconds = token_cache
        store.migrate()
        built = build_sites(specs, home)
        placer = SitePlacer(specs, _snapshot(), _policy(policy))
        reconciler = Reconciler(
            store, built, placer, home / "checkpoints", max_runs_per_round=max_runs_per_round
        )
        token_path = _token_file()
        if _private_file(token_path):
            typer.echo(f"an admin token for tenant `default` is in {token_path}")
        else:
            token = store.create_token("default", "admin")
            try:
                _write_private(token_path, token + "\n")
                typer.echo(f"an admin token for tenant `default` was written to {token_path}")
            except FileExistsError:  # a replica sharing this data directory wrote it first
                store.revoke_token(token.split("_")[1])
                typer.echo(f"an admin token for tenant `default` is in {token_path}")
        limits = Limits(
            max_body_bytes=max_body,
            body_seconds=body_timeout,
            header_seconds=header_timeout,
            keep_alive_seconds=keep_alive,
            max_workdir_bytes=max_workdir,
        )
        quotas = Quotas(active_runs=max_active_runs, replicas=max_replicas, gpus=max_gpus)
        return store, reconciler, create_app(store, reconciler, limits=limits, quotas=quotas)

    listener = bind_or_exit(host, port)
    store, reconciler, app = _guard(setup)
    stop = threading.Event()
    # replicas on one database: only the holder of the lease reconciles (docs/deploy.md)
    lease = ReconcileLease(store.engine)

    def loop() -> None:
        log = logging.getLogger("archipel.reconciler")
        while not stop.is_set():
            try:
                if not lease.held():
                    stop.wait(interval)
                    continue
                report = reconciler.step()
                if report.transitions or report.conflicts:
                    log.info(
                        "round: %d transitions, %d launched, %d failed by a fault, %d lost to "
                        "another control plane, sites down: %s, %.3f s",
                        report.transitions,
                        report.launched,
                        report.faults,
                        report.conflicts,
                        ", ".join(report.unhealthy_sites) or "none",
                        report.seconds,
                    )
            except Exception:  # a bad round must not stop the loop: log it, try again
                log.exception("reconcile round failed")
            stop.wait(interval)

    worker = threading.Thread(target=loop, name="reconciler", daemon=True)
    worker.start()
    config = uvicorn.Config(
        app,
        log_level="warning",
        http=header_timeout_protocol(header_timeout),
        timeout_keep_alive=keep_alive,
    )
    typer.echo(
        f"archipel control plane on http://{host}:{port} (state: {store.url.split('@')[-1]})"
    )
    try:
        uvicorn.Server(config).run(sockets=[listener])
    finally:
        stop.set()
        worker.join(timeout=5)
        lease.release()
        store.close()


def bind_or_exit(host: str, port: int) -> Any:
    """A socket listening on ``host:port``; one line on stderr and exit 2 when it cannot be.

    Binding comes first, so that "listening" is printed only once it is true.
    """
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        _fail(f"cannot listen on {host}: {exc.strerror or exc}; check --host")
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        import errno

        if exc.errno == errno.EADDRINUSE:
            _fail(f"port {port} on {host} is in use; pick another with --port")
        _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}; check --host and --port")
    sock.set_inheritable(True)
    return sock


def _default_token() -> str | None:
    """``$ARCHIPEL_TOKEN``, else the admin token ``archipel server`` wrote on this machine."""
    path = _token_file()
    return os.environ.get(ENV_TOKEN) or (path.read_text().strip() if path.exists() else None)


def _client(server_url: str | None, token: str | None) -> Any:
    import httpx

    url = server_url or os.environ.get(ENV_SERVER) or DEFAULT_SERVER
    secret = token or _default_token()
    if not secret:
        _fail(
            f"no API token: pass --token, set {ENV_TOKEN}, or start `archipel server` once "
            "on this machine (it writes an admin token)"
        )
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {secret}"}, timeout=30)


def _call(client: Any, method: str, path: str, expect_json: bool = True, **kwargs: Any) -> Any:
    import httpx

    try:
        r = client.request(method, path, **kwargs)
    except httpx.TransportError as exc:
        _fail(
            f"cannot reach the control plane at {client.base_url}: {exc}. "
            "Start it with `archipel server`.",
            3,
        )
    if r.status_code >= 400:
        detail = (
            r.json().get("detail")
            if r.headers.get("content-type", "").startswith("application/json")
            else r.text
        )
        if isinstance(detail, list):
            detail = "\n  - " + "\n  - ".join(str(d) for d in detail)
        _fail(f"{r.status_code}: {detail}", 2 if r.status_code < 500 else 3)
    return r.json() if expect_json else None


ServerOpt = Annotated[
    str | None,
    typer.Option(
        "--server", help=f"Control plane URL (default ${ENV_SERVER} or {DEFAULT_SERVER})."
    ),
]
TokenOpt = Annotated[
    str | None,
    typer.Option("--token", help=f"API token (default ${ENV_TOKEN} or the local admin token)."),
]


#: the exit status of `archipel run` for each way a run ends (2: bad input, 3: a fault)
EXIT_FOR_END = {"succeeded": 0, "running": 0, "failed": 1, "cancelled": 4}
#: what is never shipped with a workdir: version control, environments, caches
_NOT_SHIPPED = frozenset({".git", ".hg", ".svn", ".venv", "venv", "__pycache__", "node_modules"})


def pack_workdir(folder: Path, limit: int = MAX_WORKDIR_BYTES) -> bytes:
    """``folder`` as a ``.tar.gz``: its files and folders (no links, no special files), and
    none of :data:`_NOT_SHIPPED`. The same files give the same bytes (so the same hash)."""
    import gzip
    import io
    import tarfile

    from archipel.core import InputError

    if not folder.is_dir():
        raise InputError(f"run.workdir: {folder} is not a folder; name an existing folder")
    raw = io.BytesIO()
    packed = 0
    with (
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for root, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if d not in _NOT_SHIPPED)
            for name in sorted(files):
                path = Path(root, name)
                if path.is_symlink() or not path.is_file():
                    continue
                packed += path.stat().st_size
                if packed > limit:
                    raise InputError(
                        f"run.workdir: {folder} holds more than {limit >> 20} MiB of files, "
                        "more than is shipped with a run; set run.workdir to a smaller folder "
                        "with only the code the command needs"
                    )
                info = tar.gettarinfo(str(path), arcname=str(path.relative_to(folder)))
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                try:
                    with path.open("rb") as fh:
                        tar.addfile(info, fh)
                except OSError as exc:
                    raise InputError(
                        f"run.workdir: cannot read {path} ({exc.strerror or exc}); set "
                        "run.workdir to a folder with only the code the command needs"
                    ) from None
    return raw.getvalue()


def _ship_workdir(client: Any, file: Path, workload: Any) -> Any:
    """Pack and upload the workload's workdir; the workload to submit, naming its hash.

    ``run.workdir`` is relative to the spec file's folder, which is the default.
    """
    import hashlib

    from archipel.core import InputError

    spec = workload.run
    if spec is None:
        return workload
    folder = file.resolve().parent / (spec.workdir or ".")
    try:
        archive = pack_workdir(folder)
    except InputError as exc:
        _fail(f"{file}: {exc}")
    digest = hashlib.sha256(archive).hexdigest()
    _call(
        client,
        "PUT",
        f"/v1/workdirs/{digest}",
        content=archive,
        headers={"Content-Type": "application/gzip"},
        expect_json=False,
    )
    run = spec.model_copy(update={"workdir": None, "workdir_sha256": digest})
    return workload.model_copy(update={"run": run})


def run(
    file: Annotated[Path, typer.Argument(help="Workload spec YAML with a `run.command`.")],
    wait: Annotated[
        bool,
        typer.Option(
            "--wait/--no-wait",
            help="Follow the run until it ends (a service: until it is running).",
        ),
    ] = True,
    server_url: ServerOpt = None,
    token: TokenOpt = None,
) -> None:
    """Submit a workload and show its progress until it ends (a service: until it runs).

    The command starts in a copy of the workdir: `run.workdir`, relative to the spec
    file's folder, which is the default (.git, .venv, __pycache__ and links are left out;
    64 MiB at most).

    Exit status: 0 succeeded (a service: running), 1 failed, 4 cancelled, 2 bad input,
    3 the control plane cannot be reached or failed; with --no-wait, 0 once submitted.
    """
    from archipel.cli._config import load_workloads

    try:
        workloads = load_workloads(file)
    except Exception as exc:
        _fail(str(exc))
        return
    client = _client(server_url, token)
    code = 0
    for w in workloads:
        w = _ship_workdir(client, file, w)
        body = _call(
            client,
            "POST",
            "/v1/runs",
            json=w.model_dump(mode="json", by_alias=True, exclude_none=True),
        )
        runs = [body]
        if body.get("group"):  # a service with replicas: one run per replica
            runs = _call(client, "GET", "/v1/runs", params={"group": body["group"]})
        for r in runs:
            typer.echo(f"{r['id']}  {r['name']}  submitted")
        if wait:
            until = ("running",) if w.serve is not None else ()
            ends = _follow_state(client, [r["id"] for r in runs], len(runs) > 1, until)
            code = max([code, *(EXIT_FOR_END.get(state, 3) for state in ends)])
    if code:
        raise typer.Exit(code)


def _follow_state(
    client: Any, run_ids: list[str], labelled: bool = False, until: tuple[str, ...] = ()
) -> list[str]:
    """Print each run's new history entries until every run has ended (or is in ``until``).

    ``labelled`` prefixes each line with the run's name (the replicas of a group).
    Returns the state each run was left in.
    """
    seen = dict.fromkeys(run_ids, 0)
    ends: list[str] = []
    while seen:
        for run_id in list(seen):
            body = _call(client, "GET", f"/v1/runs/{run_id}")
            label = f"{body['name']:<16} " if labelled else ""
            for e in body["events"][seen[run_id] :]:
                typer.echo(f"  {label}{e['to_state']:<10} {e['detail'] or e['event']}")
            seen[run_id] = len(body["events"])
            if body["state"] in ("succeeded", "failed", "cancelled", *until):
                del seen[run_id]
                ends.append(body["state"])
        if seen:
            time.sleep(0.5)
    return ends


def ps(
    server_url: ServerOpt = None,
    token: TokenOpt = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List your runs."""
    runs = _call(_client(server_url, token), "GET", "/v1/runs")
    if as_json:
        typer.echo(json.dumps(runs, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(header_style="bold")
    for col in ("id", "name", "state", "site", "restarts", "message"):
        table.add_column(col)
    for r in runs:
        table.add_row(
            r["id"],
            r["name"],
            r["state"],
            r["site"] or "-",
            f"{r['restarts']}/{r['max_restarts']}",
            r["message"] or "",
        )
    Console().print(table)


def status(
    run_id: Annotated[str, typer.Argument()],
    server_url: ServerOpt = None,
    token: TokenOpt = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """A run with its attempts and its whole history."""
    body = _call(_client(server_url, token), "GET", f"/v1/runs/{run_id}")
    if as_json:
        typer.echo(json.dumps(body, indent=2))
        return
    typer.echo(
        f"{body['id']}  {body['name']}  {body['state']}  site={body['site'] or '-'}  "
        f"restarts={body['restarts']}/{body['max_restarts']}"
    )
    for a in body["attempts"]:
        typer.echo(
            f"  attempt {a['number']} on {a['site']}: {a['state']}"
            + (f" (exit {a['exit_code']})" if a["exit_code"] is not None else "")
            + (f" - {a['reason']}" if a["reason"] else "")
        )
    typer.echo("history:")
    for e in body["events"]:
        typer.echo(
            f"  {e['at'][:19]}  {e['from_state'] or '-':>10} -> {e['to_state']:<10} "
            f"{e['detail'] or e['event']}"
        )


def logs(
    run_id: Annotated[str, typer.Argument()],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new output.")
    ] = False,
    server_url: ServerOpt = None,
    token: TokenOpt = None,
) -> None:
    """Print a run's output (its current attempt)."""
    client = _client(server_url, token)
    offset, attempt = 0, None
    while True:
        body = _call(client, "GET", f"/v1/runs/{run_id}/logs", params={"offset": offset})
        if body["attempt_id"] != attempt:  # a new attempt (after recovery): start over
            attempt, offset = body["attempt_id"], 0
            if body["attempt_id"] is not None and body["next_offset"] != len(body["data"]):
                continue
        sys.stdout.write(body["data"])
        sys.stdout.flush()
        offset = body["next_offset"]
        if not follow or body["state"] in ("succeeded", "failed", "cancelled"):
            return
        time.sleep(0.5)


def cancel(
    run_id: Annotated[
        str, typer.Argument(help="A run id (r-...), or a group id (g-...): every replica of it.")
    ],
    server_url: ServerOpt = None,
    token: TokenOpt = None,
) -> None:
    """Cancel a run and its attempt, or every replica of a service."""
    client = _client(server_url, token)
    ids = [run_id]
    if run_id.startswith("g-"):
        ids = [r["id"] for r in _call(client, "GET", "/v1/runs", params={"group": run_id})]
        if not ids:
            _fail(f"no group {run_id!r} among your runs")
    for rid in ids:
        body = _call(client, "POST", f"/v1/runs/{rid}/cancel")
        typer.echo(f"{body['id']}  {body['name']}  {body['state']}")


def register(app: typer.Typer) -> None:
    """Add the control-plane commands to the ``archipel`` app."""
    app.command()(server)
    app.command()(run)
    app.command()(ps)
    app.command()(status)
    app.command()(logs)
    app.command()(cancel)
    app.command()(gateway)
    app.add_typer(token_app, name="token")


def gateway(
    config: Annotated[
        Path,
        typer.Option(
            "--config",
            metavar="FILE",
            help="Gateway YAML: listen address, tenants, models and their replicas, "
            "and optionally a control plane to take more routes from (docs/gateway.md).",
        ),
    ],
    policy: Annotated[
        Path | None,
        typer.Option("--policy", metavar="FILE", help="Policy YAML (default: the shipped policy)."),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            max=256,
            help="Worker processes sharing the listen address, under one supervisor that "
            "restarts them and forwards SIGHUP (docs/gateway.md#worker-processes).",
        ),
    ] = 1,
) -> None:
    """Serve the OpenAI-compatible inference gateway: each tenant's requests go only to the
    replicas its data class allows, with failover, spillover, rate limits and metering.

    Send the process SIGHUP to reload --config and --policy without dropping a request.
    Exit status 2 when the listen port is in use or the input is bad."""
    import logging

    from archipel.cli._app import _guard, _policy, _snapshot
    from archipel.cli._config import read_yaml_documents
    from archipel.core import InputError
    from archipel.gateway import (
        GatewayConfig,
        JsonlMeter,
        RouteTable,
        WorkerSlot,
        build_route_table,
        describe_routes,
        parse_gateway_config,
        resolve_control_plane_token,
        resolve_upstream_keys,
        serve,
        serve_workers,
    )

    def read_text(path: str) -> str:
        return (config.parent / path).read_text("utf-8")

    def build(cfg: GatewayConfig) -> RouteTable:
        # policy and upstream keys are read again each time: a reload or new routes from
        # the control plane see the files and the environment as they are now
        keys = resolve_upstream_keys(cfg, os.environ, read_text)
        return build_route_table(cfg, _policy(policy), _snapshot(), keys)

    def load() -> GatewayConfig:
        docs = read_yaml_documents(config)
        if len(docs) != 1:
            raise InputError(f"{config}: a gateway config holds exactly one YAML document")
        return parse_gateway_config(docs[0], str(config))

    cfg = _guard(load)
    table = _guard(lambda: build(cfg))
    token = _guard(lambda: resolve_control_plane_token(cfg, os.environ, read_text))
    if token is None and cfg.control_plane is not None:
        token = _default_token()  # as `archipel run` finds it
    listener = bind_or_exit(cfg.listen.host, cfg.listen.port)
    for line in describe_routes(table):
        typer.echo(line, err=True)
    typer.echo(f"archipel gateway on http://{cfg.listen.host}:{cfg.listen.port}", err=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    def run(slot: WorkerSlot | None) -> None:
        now, routes = (cfg, table) if slot is None or not slot.replacement else current()
        meter = JsonlMeter(config.parent / now.metering.path, now.metering.queue_size)
        serve(now, routes, meter, load, build, token, listener, slot)

    def current() -> tuple[GatewayConfig, RouteTable]:
        # a replaced worker takes the files as they are (the others may have reloaded);
        # files that no longer load leave it on what the supervisor read at start
        try:
            fresh = load()
            return fresh, build(fresh)
        except InputError as exc:
            logging.getLogger("archipel.gateway").error("reload failed in a new worker: %s", exc)
            return cfg, table

    if workers == 1:
        run(None)
    else:
        raise typer.Exit(serve_workers(workers, run, cfg.shutdown_timeout))


token_app = typer.Typer(
    help="Create and revoke API tokens (on the server's machine).", no_args_is_help=True
)


@token_app.command("create")
def token_create(
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant the token acts for.")],
    role: Annotated[str, typer.Option("--role", help="viewer, submitter or admin.")] = "submitter",
    db: Annotated[
        str | None,
        typer.Option("--db", help="The server's database URL (default: its SQLite file)."),
    ] = None,
) -> None:
    """Create a token and print it once (only its hash is stored)."""
    from archipel.cli._config import data_dir
    from archipel.controlplane import ROLES, Store
    from archipel.core import InputError

    if role not in ROLES:
        _fail(f"--role must be one of {', '.join(ROLES)}")
    store = Store(db or f"sqlite:///{data_dir() / 'state.db'}")
    store.migrate()
    try:
        typer.echo(store.create_token(tenant, role))
    except InputError as exc:
        _fail(f"--tenant: {exc}")
    finally:
        store.close()


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id: the part after `arch_`.")],
    db: Annotated[str | None, typer.Option("--db", help="The server's database URL.")] = None,
) -> None:
    """Revoke a token; a running server refuses it within its --token-cache seconds (5)."""
    from archipel.cli._config import data_dir
    from archipel.controlplane import Store

    store = Store(db or f"sqlite:///{data_dir() / 'state.db'}")
    store.migrate()
    found = store.revoke_token(token_id)
    store.close()
    if not found:
        _fail(f"no active token {token_id!r}")
    typer.echo(
        f"revoked {token_id}: running servers refuse it within their --token-cache "
        "seconds (5 by default)"
    )
