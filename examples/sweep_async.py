"""Submit a sweep of 20 jobs and wait for all of them, with the asyncio façade.

    SIMFARM_URL=http://gateway:8765 python examples/sweep_async.py

Submissions go out concurrently; ``wait_all`` follows every job on one WebSocket.
Without ``SIMFARM_URL`` the script starts a private farm for its own duration.
"""

from __future__ import annotations

import asyncio
import os
import sys

from simfarm import AsyncClient

FREQUENCIES_GHZ = [1.0 + 0.5 * i for i in range(20)]
SOLVER = "import sys; f = float(sys.argv[1]); print(f'{299.792458 / f:.2f}')"


async def main() -> int:
    async with AsyncClient(embedded=not os.environ.get("SIMFARM_URL")) as client:
        jobs = await asyncio.gather(*(
            client.submit(
                {"name": f"sweep-{f:.1f}GHz", "argv": [sys.executable, "-c", SOLVER, str(f)]},
                priority=6,
            )
            for f in FREQUENCIES_GHZ
        ))
        print(f"submitted {len(jobs)} jobs; waiting for all of them")
        finished = await client.wait_all([job.id for job in jobs], timeout=600)
        for job in finished:
            output = " ".join([line async for line in client.logs(job.id)])
            print(f"{job.spec.name:<14} {job.state.value:<9} wavelength {output} mm")
        failed = [job for job in finished if job.state.value != "completed"]
        print(f"{len(finished) - len(failed)} completed, {len(failed)} not")
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
