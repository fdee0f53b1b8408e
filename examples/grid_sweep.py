"""A parametric sweep with the blocking façade: one parent, a 2 x 3 grid of children,
at most 2 running at once, and a summary job that starts once every child ended.

    SIMFARM_URL=http://gateway:8765 python examples/grid_sweep.py

Without ``SIMFARM_URL`` it starts a private farm for its own duration. With HFSS, put
the variables into the template's ``hfss`` section instead (e.g. ``"setup_name":
"{setup}"``) or stage one project per child (see docs/files-and-sweeps.md).
"""

from __future__ import annotations

import os
import sys

from simfarm import Client

# Stand-in for a solver: the resonance of a patch of width w (mm) on substrate er.
SOLVER = (
    "import math, os\n"
    "w, er = float(os.environ['SIMFARM_VAR_WIDTH']), float(os.environ['SIMFARM_VAR_ER'])\n"
    "print(f'{299.792458 / (2 * w * math.sqrt(er)):.3f}')\n"
)


def main() -> int:
    with Client(embedded=not os.environ.get("SIMFARM_URL")) as client:
        sweep = client.submit_sweep({
            "name": "patch widths",
            "template": {"name": "patch w={width} er={er}", "argv": [sys.executable, "-c", SOLVER]},
            "grid": {"width": [10, 12.5, 15], "er": [2.2, 4.4]},
            "throttle": 2,
        })
        print(f"sweep {sweep.id}: {sweep.size} children, at most {sweep.throttle} at once")
        summary = client.submit({"name": "summary", "argv": [sys.executable, "-c", "print('done')"],
                                 "depends_on": {"after_any": [sweep.id]}})
        client.wait_all([c.job_id for c in sweep.children] + [summary.id], timeout=600)
        sweep = client.get_sweep(sweep.id)
        for child in sweep.children:
            output = " ".join(client.logs(child.job_id))
            print(f"[{child.index}] width={child.variation['width']:<5} er={child.variation['er']}"
                  f"  {child.state:<9} f0 = {output} GHz")
        print(f"sweep {sweep.state}: {sweep.counts['completed']} of {sweep.size} completed; "
              f"summary {client.get(summary.id).state.value}")
        return 0 if sweep.state == "completed" else 1


if __name__ == "__main__":
    sys.exit(main())
