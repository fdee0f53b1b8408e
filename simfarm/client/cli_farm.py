"""Farm commands: ``workers`` (nodes, free resources, jobs) and ``limits`` (show or change
a node's local limits at run time)."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from simfarm.client.cli_common import (
    age,
    call,
    client_options,
    echo_json,
    make_client,
    parse_pairs,
)
from simfarm.client.cli_table import Column, print_table
from simfarm.common.models import NodeInfo


def _gib(mb: int) -> str:
    return f"{mb / 1024:.1f}G"


def _status_style(status: str) -> str:
    return "red" if status == "lost" else "yellow" if status.startswith("held") else "green"


WORKER_COLUMNS = [
    Column("NODE"),
    Column("STATUS", flexible=True, style=_status_style),
    Column("CORES"),
    Column("MEMORY", drop=3),
    Column("DISK", drop=4),
    Column("JOBS", drop=2),
    Column("SEEN", drop=5),
    Column("LABELS", drop=6),
]


def worker_rows(nodes: list[NodeInfo]) -> list[list[str]]:
    """One row of :data:`WORKER_COLUMNS` per node: liveness, free/total cores, memory
    and disk, jobs/slots, last heartbeat, labels."""
    now = time.time()
    rows = []
    for node in nodes:
        if not node.alive:
            status = "lost"
        elif node.held_reason:
            status = f"held: {node.held_reason}"
        else:
            status = "up"
        rows.append([
            node.name,
            status,
            f"{node.cores_free}/{node.cores_total}",
            f"{_gib(node.memory_mb_free)}/{_gib(node.memory_mb_total)}",
            f"{_gib(node.disk_mb_free)}/{_gib(node.disk_mb_total)}",
            f"{len(node.jobs)}/{node.max_jobs}",
            age(now - node.last_seen) + " ago" if node.last_seen else "-",
            " ".join(f"{k}={v}" for k, v in sorted(node.labels.items())),
        ])
    return rows


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
    print_table(WORKER_COLUMNS, worker_rows(nodes))


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
