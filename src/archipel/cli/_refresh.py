"""``archipel catalog refresh``: re-read providers' public price sources (being written)."""

from __future__ import annotations

import typer


def catalog_refresh() -> None:
    """Re-read providers' public price sources and write a refreshed snapshot."""
    typer.echo("error: catalog refresh is not available yet", err=True)
    raise typer.Exit(3)
