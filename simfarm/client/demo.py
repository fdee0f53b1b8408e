"""The demo behind ``make demo``: embedded service plus a handful of jobs."""

from __future__ import annotations

import sys
from collections.abc import Callable

from simfarm.client.client import Client
from simfarm.client.embedded import EmbeddedService
from simfarm.common.models import JobSpec
from simfarm.common.settings import Settings


def demo_specs(count: int) -> list[JobSpec]:
    """A few short jobs of different kinds and priorities, one of which fails."""
    py = sys.executable
    specs = [
        JobSpec(name="hello", argv=[py, "-c", "print('hello from simfarm')"], priority=5),
        JobSpec(
            name="count",
            argv=[
                py,
                "-c",
                "import time\nfor i in range(5):\n    print('step', i, flush=True)\n"
                "    time.sleep(0.2)",
            ],
            priority=7,
        ),
        JobSpec(name="answer", argv=[py, "-c", "print(6 * 7)"], priority=3),
        JobSpec(name="fails", argv=[py, "-c", "import sys; print('bad input'); sys.exit(3)"]),
    ]
    while len(specs) < count:
        i = len(specs)
        specs.append(JobSpec(name=f"job-{i}", argv=[py, "-c", f"print('job {i} done')"]))
    return specs[:count]


def run_demo(count: int, echo: Callable[[str], None],
             start: Callable[[EmbeddedService], None] = EmbeddedService.start) -> EmbeddedService:
    """Start the embedded service (with ``start``), run ``count`` demo jobs and report
    them. Returns the running service; the caller stops it."""
    settings = Settings()
    service = EmbeddedService(settings)
    echo(f"starting private Redis, gateway and worker (state in {settings.state_dir}) ...")
    start(service)
    echo(f"simfarm is up: {service.url}")
    echo(f"dashboard (one-time sign-in link): {service.login_url}")
    with Client(service.url) as client:
        jobs = [client.submit(spec) for spec in demo_specs(count)]
        for job in jobs:
            echo(f"submitted {job.spec.name:<8} {job.id} priority={job.priority}")
        for job in jobs:
            done = client.wait(job.id, timeout=120)
            output = " / ".join(client.logs(job.id))
            detail = f"exit={done.exit_code}" + (f" reason={done.reason}" if done.reason else "")
            echo(f"{done.spec.name:<8} {done.state.value:<9} {detail:<28} output: {output}")
    return service
