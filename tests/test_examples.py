"""The examples (examples/*.py) and the docs' code examples run against the test farm."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from simfarm.common.settings import Settings
from tests.doc_examples import python_blocks
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


# --- the docs' code examples, run as a reader would paste them ------------------------

DOCS = ROOT / "docs"


def run_docs_page(page: Path, env: dict[str, str], cwd: Path,
                  **replace: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "tests.doc_examples", str(page),
            *(f"{old}={new}" for old, new in replace.items())]
    full = {**env, "PYTHONPATH": str(ROOT)}
    return subprocess.run(argv, env=full, cwd=cwd, capture_output=True, text=True,
                          timeout=180, check=False)


def client_env(gateway: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIMFARM_", "PYEDB_"))}
    env.update({"SIMFARM_URL": gateway, "SIMFARM_STATE_DIR": str(tmp_path / "state")})
    return env


def assert_all_ran(done: subprocess.CompletedProcess[str], page: Path) -> None:
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    ran = [line for line in done.stdout.splitlines() if line.startswith("ran ")]
    assert len(ran) == len(python_blocks(page)) > 0


@pytest.mark.parametrize("name", ["python-api.md", "quickstart.md", "../README.md"])
def test_python_api_examples_run_against_a_farm(
    name: str, gateway: str, worker: subprocess.Popen[bytes], hfss_node: Settings,
    tmp_path: Path
) -> None:
    """Every python block of the page runs as written; ``http://gateway:8765`` and the
    shared project path stand for the test farm's gateway and a project on it."""
    page = DOCS / name
    project = tmp_path / "antenna.aedt"
    project.write_text("$begin 'Setup1'\nMaximumPasses=3\n$end 'Setup1'\n")
    done = run_docs_page(page, client_env(gateway, tmp_path), tmp_path,
                         **{"http://gateway:8765": gateway,
                            "/shared/boards/antenna.aedt": str(project)})
    assert_all_ran(done, page)
    if name == "python-api.md":
        assert "404 not_found" in done.stdout and "422 validation_error" in done.stdout


def test_pyedb_migration_examples_run_against_a_farm(
    gateway: str, hfss_node: Settings, tmp_path: Path
) -> None:
    """The simfarm side of docs/migrating-from-pyedb.md runs as written (the PyEDB side
    needs PyEDB): the handler attaches to the farm through SIMFARM_URL."""
    page = DOCS / "migrating-from-pyedb.md"
    (tmp_path / r"D:\Jobs\my_design.aedb").mkdir()  # its Windows path, as a Linux file name
    done = run_docs_page(page, client_env(gateway, tmp_path), tmp_path)
    assert_all_ran(done, page)
