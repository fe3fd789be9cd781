"""`lightguard keys ...`: API keys and their per-key limits (the same database as the server)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

from service.cli.database import migrated_sessions
from service.settings import Settings

if TYPE_CHECKING:
    from service.usecases.keys import KeyService

err = Console(stderr=True)
out = Console()
keys_app = typer.Typer(help="API keys (admin: everything; classify: classify and moderations).", no_args_is_help=True)


RateLimitOption = Annotated[
    str | None,
    typer.Option(
        help="Texts per period, e.g. 100/second or 5000/minute;100000/day; `none`: unlimited (default: the"
        " service's LIGHTGUARD_RATE_LIMIT)."
    ),
]
ConcurrencyOption = Annotated[
    int | None, typer.Option(min=1, help="Requests in flight at most (default: LIGHTGUARD_MAX_CONCURRENCY).")
]


@contextmanager
def _keys() -> Iterator[KeyService]:
    """A KeyService on the configured database (migrated first), committed on success; a ServiceError exits 1."""
    from service.db.engine import session_scope
    from service.usecases.keys import KeyService

    with migrated_sessions(Settings()) as sessions, session_scope(sessions) as session:
        yield KeyService(session)


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="admin or classify.")] = "classify",
    name: Annotated[str, typer.Option(help="A label for the listing.")] = "",
    rate_limit: RateLimitOption = None,
    max_concurrency: ConcurrencyOption = None,
) -> None:
    """Create an API key and print it once (only its hash is stored)."""
    from service.usecases.quotas import KeyLimits

    if role not in ("admin", "classify"):
        raise typer.BadParameter("--role must be admin or classify")
    checked: Literal["admin", "classify"] = "admin" if role == "admin" else "classify"
    with _keys() as keys:
        key, token = keys.create(checked, name, limits=KeyLimits(rate_limit, max_concurrency))
        key_id = key.id
    out.print(token)
    err.print(f"key {key_id} ({checked}) created: store it now, it is not shown again")


@keys_app.command("limits")
def keys_limits(
    key_id: Annotated[int, typer.Argument(help="Key id from `lightguard keys list`.")],
    rate_limit: RateLimitOption = None,
    max_concurrency: ConcurrencyOption = None,
    default: Annotated[bool, typer.Option("--default", help="Set both back to the service defaults.")] = False,
) -> None:
    """Set a key's rate and concurrency limits (options left out stay as they are)."""
    from service.usecases.quotas import KeyLimits

    if default and (rate_limit is not None or max_concurrency is not None):
        raise typer.BadParameter("--default sets both limits back to the defaults: give it alone")
    with _keys() as keys:
        key = keys.get(key_id)
        limits = (
            KeyLimits()
            if default
            else KeyLimits(
                key.rate_limit if rate_limit is None else rate_limit,
                key.max_concurrency if max_concurrency is None else max_concurrency,
            )
        )
        keys.set_limits(key_id, limits)
    out.print(f"key {key_id}: rate {limits.rate_limit or 'default'}, concurrency {limits.max_concurrency or 'default'}")


@keys_app.command("list")
def keys_list() -> None:
    """List keys (prefix, role, limits, created, revoked)."""
    table = Table("id", "prefix", "role", "name", "rate limit", "concurrency", "created", "revoked")
    with _keys() as keys:
        for k in keys.all_keys():
            table.add_row(
                str(k.id),
                k.prefix + "…",
                k.role,
                k.name,
                k.rate_limit or "default",
                "default" if k.max_concurrency is None else str(k.max_concurrency),
                k.created_at.isoformat(timespec="seconds"),
                k.revoked_at.isoformat(timespec="seconds") if k.revoked_at else "",
            )
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[int, typer.Argument(help="Key id from `lightguard keys list`.")]) -> None:
    """Revoke a key (it stops working at once)."""
    with _keys() as keys:
        keys.revoke(key_id)
    out.print(f"key {key_id} revoked")
