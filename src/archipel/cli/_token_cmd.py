"""``archipel token create|revoke``: API tokens, on the server's machine (its database)."""

from __future__ import annotations

from typing import Annotated

import typer

from archipel.cli._common import fail

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
    from archipel.cli._config import default_db_url
    from archipel.controlplane import ROLES, Store
    from archipel.core import InputError

    if role not in ROLES:
        fail(f"--role must be one of {', '.join(ROLES)}")
    store = Store(db or default_db_url())
    store.migrate()
    try:
        typer.echo(store.create_token(tenant, role))
    except InputError as exc:
        fail(f"--tenant: {exc}")
    finally:
        store.close()


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id: the part after `arch_`.")],
    db: Annotated[str | None, typer.Option("--db", help="The server's database URL.")] = None,
) -> None:
    """Revoke a token; a running server refuses it within its --token-cache seconds (5)."""
    from archipel.cli._config import default_db_url
    from archipel.controlplane import Store

    store = Store(db or default_db_url())
    store.migrate()
    found = store.revoke_token(token_id)
    store.close()
    if not found:
        fail(f"no active token {token_id!r}")
    typer.echo(
        f"revoked {token_id}: running servers refuse it within their --token-cache "
        "seconds (5 by default)"
    )
