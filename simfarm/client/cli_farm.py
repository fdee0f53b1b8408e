"""Farm commands: ``workers`` (nodes, free resources, jobs) and ``limits`` (show or change
a node's local limits at run time)."""

from __future__ import annotations

import json
import time
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from simfarm.client.cli_common import (
    age,
    call,
    client_options,
    echo_json,
    make_client,
    parse_pairs,
)
from simfarm.common.models import NodeInfo


def _gib(mb: int) -> str:
    return f"{mb / 1024:.1f}G"


def workers_table(nodes: list[NodeInfo]) -> Table:
    """One row per node: liveness, free/total cores, memory and disk, labels, jobs."""
    table = Table(box=None, header_style="bold")
    for column in ("NODE", "STATUS", "CORES", "MEMORY", "DISK", "JOBS", "SEEN", "LABELS"):
        table.add_column(column)
    now = time.time()
    for node in nodes:
        if not node.alive:
            status = "[red]lost[/]"
        elif node.held_reason:
            status = f"[yellow]held: {node.held_reason}[/]"
        else:
            status = "[green]up[/]"
        table.add_row(
            node.name,
            status,
            f"{node.cores_free}/{node.cores_total}",
            f"{_gib(node.memory_mb_free)}/{_gib(node.memory_mb_total)}",
            f"{_gib(node.disk_mb_free)}/{_gib(node.disk_mb_total)}",
            f"{len(node.jobs)}/{node.max_jobs}",
            age(now - node.last_seen) + " ago" if node.last_seen else "-",
            " ".join(f"{k}={v}" for k, v in sorted(node.labels.items())),
        )
    return table


@click.command()
@client_options
@click.pass_context
def workers(ctx: click.Context, as_json: bool) -> None:
    """List worker nodes with their free resources and running jobs."""
    client = make_client(ctx)
    nodes = call(client.workers)
    if as_json:
        echo_json(nodes)
        return
    if not nodes:
        click.echo("no worker nodes registered; start one with `simfarm worker`", err=True)
        return
    Console().print(workers_table(nodes))


UNSET = "unset (no limit)"


def _value(text: str) -> Any:
    try:
        return json.loads(text)  # numbers, true/false, null
    except ValueError:
        return text


@click.command()
@click.argument("node")
@click.option("--set", "changes", multiple=True, metavar="NAME=VALUE",
              help="change a limit, e.g. --set max_jobs=2 --set max_cpu_percent=80 (repeat)")
@client_options
@click.pass_context
def limits(ctx: click.Context, node: str, changes: tuple[str, ...], as_json: bool) -> None:
    """Show a node's local limits, or change them at run time with --set (null unsets).

    \b
    max_jobs             most jobs at once (unset: the worker's slots; 0 holds the node)
    max_cpu_percent      take no new job while CPU use is above this
    max_memory_percent   take no new job while memory use is above this
    min_free_memory_mb   take no new job while free memory is below this
    min_free_disk_mb     take no new job while free scratch disk is below this
    """
    client = make_client(ctx)
    updates = {k: _value(v) for k, v in parse_pairs(changes, "--set").items()}
    current = call(lambda: client.set_limits(node, **updates) if updates else client.limits(node))
    if as_json:
        echo_json(current)
        return
    for key, value in current.items():
        click.echo(f"{key:<22} {UNSET if value is None else value}")


COMMANDS = [workers, limits]
