"""examples/sweep_sync.py and examples/sweep_async.py run against the test farm."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT


@pytest.mark.parametrize("script", ["sweep_sync.py", "sweep_async.py"])
def test_sweep_example_runs_20_jobs_to_completion(
    script: str, gateway: str, worker: subprocess.Popen[bytes]
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMFARM_")}
    env.update({"SIMFARM_URL": gateway, "PYTHONPATH": str(ROOT)})
    result = subprocess.run([sys.executable, str(ROOT / "examples" / script)], env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("sweep-")]
    assert len(rows) == 20 and all(" completed " in row for row in rows)
    assert "sweep-1.0GHz   completed wavelength 299.79 mm" in rows
    assert result.stdout.splitlines()[-1] == "20 completed, 0 not"
