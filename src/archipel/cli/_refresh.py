"""``archipel catalog refresh``: re-read providers' public price sources when online.

The refreshed snapshot goes to the user's data directory, which the other
commands prefer over the shipped snapshot once it exists. The HTTP client comes
from :data:`_client_factory`, so tests can hand the command an
``httpx.MockTransport`` instead of the network.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from archipel import __version__
from archipel.cli._config import refreshed_snapshot_path

if TYPE_CHECKING:
    import httpx

    from archipel.catalog import RefreshResult

#: seconds to wait for a connection: offline, every source fails within this bound
CONNECT_TIMEOUT = 5.0


def _default_client(timeout: float) -> httpx.Client:
    import httpx

    return httpx.Client(
        timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT)),
        headers={"User-Agent": f"archipel/{__version__} (catalog refresh)"},
        follow_redirects=True,
    )


#: builds the command's HTTP client from ``--timeout``; tests replace it
_client_factory: Callable[[float], httpx.Client] = _default_client


def _document(result: RefreshResult, written: str | None) -> dict[str, Any]:
    return {
        "sources": [
            {
                "name": o.name,
                "kind": o.kind,
                "provider": o.provider,
                "status": "ok" if o.ok else "failed",
                "count": o.count,
                "error": o.error,
            }
            for o in result.outcomes
        ],
        "snapshot": written,
        "offers": len(result.snapshot.offers) if result.snapshot and written else None,
    }


def _line(name: str, ok: bool, count: int, kind: str, error: str | None, width: int) -> str:
    if not ok:
        return f"{name:<{width}}  failed  {error}"
    what = "exchange rates" if kind == "fx" else "offers"
    return f"{name:<{width}}  ok      {count:,} {what}"


def _fetch_and_save(
    names: Sequence[str] | None, timeout: float, target: Path, quiet: bool
) -> tuple[RefreshResult, str | None]:
    """Run the refresh, with the host being read on the spinner; save what it built."""
    from archipel.catalog import refresh, save_snapshot
    from archipel.cli._progress import progress
    from archipel.core import CatalogError

    with progress("refreshing the catalog", quiet=quiet) as shown:

        def fetching(request: httpx.Request) -> None:
            shown.update(f"refreshing the catalog: {request.url.host}")

        with _client_factory(timeout) as client:
            client.event_hooks = {
                **client.event_hooks,
                "request": [*client.event_hooks.get("request", []), fetching],
            }
            result = refresh(client, names)
        if result.snapshot is None:
            return result, None
        shown.update(f"writing {len(result.snapshot.offers):,} offers")
        try:
            save_snapshot(result.snapshot, target, result.reports)
        except OSError as exc:
            raise CatalogError(f"cannot write the refreshed snapshot {target}: {exc}") from exc
    return result, str(target)


def _report(result: RefreshResult, written: str | None, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(_document(result, written), indent=2))
        return
    width = max(len(o.name) for o in result.outcomes)
    for o in result.outcomes:
        typer.echo(_line(o.name, o.ok, o.count, o.kind, o.error, width))
    if result.snapshot is not None and written:
        typer.echo(f"wrote {len(result.snapshot.offers):,} offers to {written}")


def catalog_refresh(
    source: Annotated[
        list[str] | None,
        typer.Option(
            "--source",
            help="Only this source (azure, ovhcloud, ecb); repeat or comma-separate. Default: all.",
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option("--timeout", help="Seconds to wait for each answer (default 30).", min=0.1),
    ] = 30.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Re-read providers' public price sources and write a refreshed snapshot.

    Sources that fail keep their provider's shipped offers. Exit status: 0 when
    at least one source refreshed, 2 on bad input, 3 when every source failed
    (the snapshot in use does not change).
    """
    from archipel.cli._app import EXIT_FAULT, _guard, _split

    def run() -> int:
        target = refreshed_snapshot_path()
        result, written = _fetch_and_save(_split(source) or None, timeout, target, as_json)
        _report(result, written, as_json)
        if written:
            return 0
        kept = (
            f"the snapshot refreshed earlier ({target}) stays in use"
            if target.is_file()
            else "the shipped snapshot stays in use"
        )
        typer.echo(f"error: no source could be refreshed; {kept}", err=True)
        return EXIT_FAULT

    code = _guard(run)
    if code:
        raise typer.Exit(code)
