"""The worker-kill chaos run of issue 19 (not in CI; a 60-job version is in
tests/test_worker_kills.py): 300 half-second recorded jobs on 3 workers, a worker
SIGKILLed every 10 s (started again a second later), Redis SIGKILLed once; once with
``retries=3`` and once with ``retries=0``.

Run: ``PYTHONPATH=. python -m benchmarks.chaos_kills [--jobs 300] [--every 10]``

Prints, for each, lost / overlapping / ran to the end twice / completed but marked failed
(all must be 0) and how many outcomes an orphan guard recorded after its worker died;
exits 1 if any must-be-0 figure is not.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from tests.worker_kills import kill_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--every", type=float, default=10.0, help="seconds between kills")
    parser.add_argument("--seconds", type=float, default=0.5, help="each job's run time")
    parser.add_argument("--retries", type=int, nargs="*", default=[3, 0])
    args = parser.parse_args()
    ok = True
    for retries in args.retries:
        root = Path(tempfile.mkdtemp(prefix="simfarm-kills-"))
        report = kill_run(root, jobs=args.jobs, retries=retries, kill_every_s=args.every,
                          job_seconds=args.seconds, timeout_s=1800)
        print(f"chaos_kills: {args.jobs} jobs, retries={retries}, a worker SIGKILL every "
              f"{args.every:g} s")
        print("\n".join(report.lines()), flush=True)
        if report.ok:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"  (records and logs kept in {root})")
        ok = ok and report.ok
    print(f"target 0 lost, 0 overlapping, 0 ran to the end twice, 0 completed marked failed: "
          f"{'met' if ok else 'NOT met'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
