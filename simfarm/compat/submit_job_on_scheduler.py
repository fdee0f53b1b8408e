"""``submit_job_on_scheduler``: queue one HFSS project on a cluster through the job
service (PyEDB's ``submit_job_on_scheduler.py``).

    submit_job_on_scheduler --project-path /shared/board.aedb [--partition default]
                            [--nodes 1] [--cores-per-node 1] [--host H] [--port P]

Same options and defaults as PyEDB's (``--host``/``--port`` also fall back to
``PYEDB_JOB_MANAGER_HOST``/``PYEDB_JOB_MANAGER_PORT``): the job runs ``ansysedt -auto``
on ``--nodes`` nodes of the ``--partition`` queue with ``--cores-per-node`` cores each,
for at most ``--time`` (PyEDB's fixed 24:00:00). As in PyEDB the scheduler is the
service's: the one a worker of the farm is attached to (``GET /api/scheduler_type``);
``--scheduler`` names it instead. The project path must be valid on the cluster.

It returns once the job is queued and prints its id. Exit codes as PyEDB's script:
0 accepted, 1 invalid input or a job the service refuses (also when no worker is
attached to a scheduler), 2 the service cannot be reached or failed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pydantic import ValidationError

from simfarm.client.errors import ApiError, ConnectionFailed
from simfarm.common.hfss import SchedulerOptions, SchedulerType, create_hfss_config
from simfarm.compat import scripts
from simfarm.compat.pyedb_client import PyEDBClient, submit_body

log = logging.getLogger(__name__)

CLUSTERS = [t.value for t in SchedulerType if t is not SchedulerType.NONE]


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = scripts.service_parser("submit_job_on_scheduler",
                                    "Submit an HFSS job to the scheduler back-end service.")
    parser.add_argument("--project-path", required=True, type=Path,
                        help="the .aedb or .aedt project (a path valid on the cluster)")
    parser.add_argument("--partition", default="default",
                        help="partition or queue (default: default)")
    parser.add_argument("--nodes", type=int, default=1, help="cluster nodes (default: 1)")
    parser.add_argument("--cores-per-node", type=int, default=1,
                        help="cores on each node (default: 1)")
    parser.add_argument("--time", default="24:00:00",
                        help="wall time limit, H:MM:SS (default: 24:00:00, as PyEDB)")
    parser.add_argument("--scheduler", choices=CLUSTERS, default=None,
                        help="the cluster scheduler (default: the one the service uses)")
    return parser


def _farm_scheduler(host: str, port: int) -> SchedulerType | int:
    """The scheduler the farm forwards to, or the exit code of why there is none."""
    url = f"http://{host}:{port}"
    try:
        with PyEDBClient(url, timeout=60) as client:
            kind = client.scheduler_type()
    except ConnectionFailed as exc:
        return scripts.fail(f"cannot reach the job manager at {url}: {exc.__cause__ or exc}",
                            scripts.EXIT_UNEXPECTED)
    except ApiError as exc:
        return scripts.fail(f"job manager error {exc.status}: {exc.detail}",
                            scripts.EXIT_UNEXPECTED)
    if kind not in CLUSTERS:
        return scripts.fail(f"no worker of the job manager at {host}:{port} is attached to a "
                            "cluster scheduler; start one (see docs/clusters.md) or name one "
                            "with --scheduler", scripts.EXIT_INVALID)
    return SchedulerType(kind)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``submit_job_on_scheduler`` console script."""
    args = build_parser().parse_args(argv)
    scripts.start_logging(format="%(levelname)s | %(message)s")
    port = scripts.checked_port(args)
    if port is None:
        return scripts.EXIT_INVALID
    if args.nodes <= 0 or args.cores_per_node <= 0:
        return scripts.fail("--nodes and --cores-per-node must be positive", scripts.EXIT_INVALID)
    try:
        options = SchedulerOptions(queue=args.partition, nodes=args.nodes,
                                   cores_per_node=args.cores_per_node, time=args.time)
    except ValidationError as exc:
        return scripts.fail("invalid scheduler options: " + "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()),
            scripts.EXIT_INVALID)
    scheduler = (SchedulerType(args.scheduler) if args.scheduler
                 else _farm_scheduler(args.host, port))
    if not isinstance(scheduler, SchedulerType):
        return scheduler
    config = create_hfss_config(project_path=str(args.project_path.absolute()),
                                scheduler_type=scheduler, scheduler_options=options)
    config.auto = True  # as PyEDB: AEDT takes the hosts the scheduler allocated
    return scripts.send(args.host, port, submit_body(config), unreachable=scripts.EXIT_UNEXPECTED,
                        queued=f" on {scheduler.value} partition {args.partition}")


if __name__ == "__main__":
    sys.exit(main())
