"""Submit a sweep of 20 jobs and wait for all of them, with the blocking façade.

    SIMFARM_URL=http://gateway:8765 python examples/sweep_sync.py

Without ``SIMFARM_URL`` the script starts a private farm (redis-server, gateway and one
worker) for its own duration: ``Client(embedded=True)``.
"""

from __future__ import annotations

import os
import sys

from simfarm import Client

FREQUENCIES_GHZ = [1.0 + 0.5 * i for i in range(20)]
# Stand-in for a solver run: prints the wavelength in mm for one frequency.
SOLVER = "import sys; f = float(sys.argv[1]); print(f'{299.792458 / f:.2f}')"


def main() -> int:
    with Client(embedded=not os.environ.get("SIMFARM_URL")) as client:
        jobs = [
            client.submit(
                {"name": f"sweep-{f:.1f}GHz", "argv": [sys.executable, "-c", SOLVER, str(f)]},
                priority=6,
            )
            for f in FREQUENCIES_GHZ
        ]
        print(f"submitted {len(jobs)} jobs; waiting for all of them")
        finished = client.wait_all([job.id for job in jobs], timeout=600)
        for job in finished:
            output = " ".join(client.logs(job.id))
            print(f"{job.spec.name:<14} {job.state.value:<9} wavelength {output} mm")
        failed = [job for job in finished if job.state.value != "completed"]
        print(f"{len(finished) - len(failed)} completed, {len(failed)} not")
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
