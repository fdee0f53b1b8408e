"""Commands of a farm shared by a team: ``hold`` and ``release`` (jobs or whole sweeps)
``accounts`` and ``share``."""

from __future__ import annotations

import click

from simfarm.client.cli_common import call, client_options, echo_json, make_client, print_jobs
from simfarm.client.cli_table import Column, print_table


@click.command()
@click.argument("ids", nargs=-1, required=True)
@click.option("--reason", default="", help="why (shown as the job's reason)")
@click.option("--sweep", is_flag=True, help="the ids are sweeps: hold every pending child")
@client_options
@click.pass_context
def hold(ctx: click.Context, ids: tuple[str, ...], reason: str, sweep: bool,
         as_json: bool) -> None:
    """Hold pending jobs (or sweeps): they are not started until released, and keep
    their place in line and their priority."""
    client = make_client(ctx)
    if sweep:
        out = [call(lambda i=i: client.hold_sweep(i, reason)) for i in ids]  # type: ignore[misc]
        _print_sweeps(out, "held", as_json)
        return
    print_jobs([call(lambda i=i: client.hold(i, reason)) for i in ids],  # type: ignore[misc]
               as_json)


@click.command()
@click.argument("ids", nargs=-1, required=True)
@click.option("--sweep", is_flag=True, help="the ids are sweeps: release every held child")
@client_options
@click.pass_context
def release(ctx: click.Context, ids: tuple[str, ...], sweep: bool, as_json: bool) -> None:
    """Release held jobs (or sweeps): pending again, where they were in line."""
    client = make_client(ctx)
    if sweep:
        out = [call(lambda i=i: client.release_sweep(i)) for i in ids]  # type: ignore[misc]
        _print_sweeps(out, "released", as_json)
        return
    print_jobs([call(lambda i=i: client.release(i)) for i in ids],  # type: ignore[misc]
               as_json)


def _print_sweeps(rows: list[dict[str, object]], verb: str, as_json: bool) -> None:
    if as_json:
        echo_json(rows[0] if len(rows) == 1 else rows)
        return
    for row in rows:
        click.echo(f"{row['sweep_id']}  {verb} {row['changed']}  held now {row['held']}")


ACCOUNT_COLUMNS = [Column("ACCOUNT"), Column("SHARES"), Column("SHARE"), Column("YOURS"),
                   Column("MEMBERS", flexible=True)]


@click.command()
@client_options
@click.pass_context
def accounts(ctx: click.Context, as_json: bool) -> None:
    """List the accounts jobs charge, their shares and members (* marks your default)."""
    client = make_client(ctx)
    body = call(client.accounts)
    if as_json:
        echo_json(body)
        return
    rows = []
    for a in body["accounts"]:
        members = [*a["users"], *(f"@{g}" for g in a["groups"])]
        yours = ("yes*" if a["default"] else "yes") if a["mine"] else "-"
        rows.append([a["name"], f"{a['shares']:g}", f"{100 * a['share']:.0f} %", yours,
                     " ".join(members) or "-"])
    print_table(ACCOUNT_COLUMNS, rows)


SHARE_COLUMNS = [Column("ACCOUNT"), Column("USER"), Column("SHARES"), Column("SHARE"),
                 Column("USAGE (core-h)"), Column("USED"), Column("FACTOR"),
                 Column("STANDING", flexible=True)]


@click.command()
@client_options
@click.pass_context
def share(ctx: click.Context, as_json: bool) -> None:
    """Fair share: each account's and user's share of the farm, decayed usage, and factor
    (1 unused, 0.5 at its share; the dispatcher favours the highest)."""
    client = make_client(ctx)
    body = call(client.fairshare)
    if as_json:
        echo_json(body)
        return
    users: dict[str, list[dict[str, object]]] = {}
    for u in body["users"]:
        users.setdefault(str(u["account"]), []).append(u)
    rows = []
    for a in body["accounts"]:
        for row in [a, *users.get(a["account"], [])]:
            rows.append([row["account"] if row["user"] is None else "",
                         row["user"] or "-", f"{row['shares']:g}",
                         f"{100 * float(row['share']):.1f} %",
                         f"{float(row['usage_core_s']) / 3600:.2f}",
                         f"{100 * float(row['used']):.1f} %", f"{float(row['factor']):.3f}",
                         "over its share" if row["over"] else "-"])
    print_table(SHARE_COLUMNS, rows)
    click.echo(f"usage halves every {body['half_life_s'] / 3600:g} h")


COMMANDS = [hold, release, accounts, share]
