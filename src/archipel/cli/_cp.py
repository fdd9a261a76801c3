"""Control-plane commands: the clients of ``archipel server`` (run, ps, status, logs, cancel).

The servers and the token commands are modules of their own (``_server``,
``_gateway_cmd``, ``_token_cmd``); :func:`register` adds them all to the app.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from archipel.cli._common import fail

DEFAULT_SERVER = "http://127.0.0.1:8470"
ENV_SERVER = "ARCHIPEL_SERVER"
ENV_TOKEN = "ARCHIPEL_TOKEN"
#: the largest workdir shipped with a run, packed (the server's --max-workdir default)
MAX_WORKDIR_BYTES = 64 << 20


def _token_file() -> Path:
    from archipel.cli._config import data_dir

    return data_dir() / "token"


def _warn(message: str) -> None:
    typer.echo(f"warning: {message}", err=True)


def _default_token() -> str | None:
    """``$ARCHIPEL_TOKEN``, else the admin token ``archipel server`` wrote on this machine."""
    path = _token_file()
    return os.environ.get(ENV_TOKEN) or (path.read_text().strip() if path.exists() else None)


def _client(server_url: str | None, token: str | None) -> Any:
    import httpx

    url = server_url or os.environ.get(ENV_SERVER) or DEFAULT_SERVER
    secret = token or _default_token()
    if not secret:
        fail(
            f"no API token: pass --token, set {ENV_TOKEN}, or start `archipel server` once "
            "on this machine (it writes an admin token)"
        )
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {secret}"}, timeout=30)


def _call(client: Any, method: str, path: str, expect_json: bool = True, **kwargs: Any) -> Any:
    import httpx

    try:
        r = client.request(method, path, **kwargs)
    except httpx.TransportError as exc:
        fail(
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
        fail(f"{r.status_code}: {detail}", 2 if r.status_code < 500 else 3)
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
        fail(f"{file}: {exc}")
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
        fail(str(exc))
    with _client(server_url, token) as client:
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
    with _client(server_url, token) as client:
        runs = _call(client, "GET", "/v1/runs")
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
    with _client(server_url, token) as client:
        body = _call(client, "GET", f"/v1/runs/{run_id}")
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
    with _client(server_url, token) as client:
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
    with _client(server_url, token) as client:
        ids = [run_id]
        if run_id.startswith("g-"):
            ids = [r["id"] for r in _call(client, "GET", "/v1/runs", params={"group": run_id})]
            if not ids:
                fail(f"no group {run_id!r} among your runs")
        for rid in ids:
            body = _call(client, "POST", f"/v1/runs/{rid}/cancel")
            typer.echo(f"{body['id']}  {body['name']}  {body['state']}")


def register(app: typer.Typer) -> None:
    """Add the control-plane commands to the ``archipel`` app."""
    # imported here: those modules import this one's helpers
    from archipel.cli._gateway_cmd import gateway
    from archipel.cli._server import server
    from archipel.cli._token_cmd import token_app

    app.command()(server)
    app.command()(run)
    app.command()(ps)
    app.command()(status)
    app.command()(logs)
    app.command()(cancel)
    app.command()(gateway)
    app.add_typer(token_app, name="token")
