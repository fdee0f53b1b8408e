"""``simfarm usage``: who used how many core-hours (``GET /api/v1/usage``), as a table,
``--json`` or ``--csv``."""

from __future__ import annotations

import csv
import sys
from typing import cast

import click

from simfarm.client.cli_common import call, client_options, echo_json, make_client
from simfarm.client.cli_table import Column, print_table
from simfarm.common.usage import BUCKETS, DIMENSIONS, Bucket, Dimension, UsageRow

#: the CSV's columns: a row's fields, licences as ``name=seconds;...``
CSV_FIELDS = ["name", "day", "attempts", "core_hours", "core_seconds", "wall_seconds",
              "wait_seconds", "mean_wait_s", "ended", "license_seconds",
              "pool_license_seconds"]


def _pairs(values: dict[str, float] | dict[str, int]) -> str:
    return ";".join(f"{k}={v:g}" for k, v in values.items())


def _csv_row(row: UsageRow) -> list[str]:
    return [row.name, row.day or "", str(row.attempts), f"{row.core_hours:.6f}",
            f"{row.core_seconds:.3f}", f"{row.wall_seconds:.3f}", f"{row.wait_seconds:.3f}",
            f"{row.mean_wait_s:.3f}", _pairs(row.ended), _pairs(row.license_seconds),
            _pairs(row.pool_license_seconds)]


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f}"


def _table_row(row: UsageRow) -> list[str]:
    licences = {**row.license_seconds, **row.pool_license_seconds}
    return [row.name, row.day or "-", str(row.attempts), _hours(row.core_seconds),
            _hours(row.wall_seconds), f"{row.mean_wait_s:.1f}",
            " ".join(f"{k}={v}" for k, v in row.ended.items()) or "-",
            " ".join(f"{k}={v / 3600:.2f}h" for k, v in licences.items()) or "-"]


@click.command()
@click.option("--by", type=click.Choice(DIMENSIONS), default="account", show_default=True,
              help="one row per user, account or node")
@click.option("--since", default="30d", show_default=True,
              help="start: 30d, 12h, 2w (that long ago), epoch seconds or an ISO date")
@click.option("--until", default=None, help="end, as --since (default: now)")
@click.option("--bucket", type=click.Choice(BUCKETS), default="total", show_default=True,
              help="one row per day, per month or for the whole range")
@click.option("--csv", "as_csv", is_flag=True, help="print CSV (one header line)")
@client_options
@click.pass_context
def usage(ctx: click.Context, by: str, since: str, until: str | None, bucket: str,
          as_csv: bool, as_json: bool) -> None:
    """Usage per account, user or node: attempts, core-hours, run time, mean wait, how
    attempts ended and licence-hours, over whole UTC days. Admins see everyone; others
    their own usage."""
    client = make_client(ctx)
    report = call(lambda: client.usage(cast(Dimension, by), since, until,
                                       cast(Bucket, bucket)))
    if as_json:
        echo_json(report)
        return
    rows = [*report.rows, report.total] if report.rows else []
    if as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(CSV_FIELDS)
        writer.writerows(_csv_row(r) for r in report.rows)
        return
    click.echo(f"usage by {report.by} from {report.since} to {report.until} (UTC days"
               f"{'' if report.scope == 'all' else ', yours only'})", err=True)
    if not rows:
        click.echo("no usage recorded in this range", err=True)
        return
    columns = [Column(report.by.upper()), Column("DAY", drop=3), Column("ATTEMPTS"),
               Column("CORE-H"), Column("WALL-H", drop=2), Column("WAIT-S", drop=1),
               Column("ENDED", drop=4), Column("LICENCES", drop=5, flexible=True)]
    print_table(columns, [_table_row(r) for r in rows])


COMMANDS = [usage]
