"""The ``simfarm`` command through its real entry point: `up`, submit, status, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.helpers import ROOT, free_port, wait_for


def simfarm_argv() -> list[str]:
    script = Path(sys.executable).with_name("simfarm")
    return [str(script)] if script.exists() else [sys.executable, "-m", "simfarm.client.cli"]


def run(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*simfarm_argv(), *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMFARM_")}
    env.update({
        "SIMFARM_STATE_DIR": str(tmp_path_factory.mktemp("cli-state")),
        "SIMFARM_GATEWAY_PORT": str(free_port()),
        "SIMFARM_NODE_NAME": "cli-node",
        "PYTHONPATH": str(ROOT),
    })
    return env


@pytest.fixture(scope="module")
def simfarm_up(cli_env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([*simfarm_argv(), "up"], env=cli_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert "simfarm is up" in first, first + proc.stdout.read()
    yield proc
    if proc.poll() is None:  # stop it as a user would: its parts stop with it
        proc.terminate()
        proc.wait(timeout=60)


def test_up_then_submit_shows_completed_with_output(simfarm_up: subprocess.Popen[str],
                                                   cli_env: dict[str, str]) -> None:
    submitted = run("submit", "--json", "--", sys.executable, "-c", "print(42)", env=cli_env)
    assert submitted.returncode == 0, submitted.stderr
    job_id = json.loads(submitted.stdout)["id"]
    status = wait_for(lambda: run("status", job_id, env=cli_env),
                      lambda r: "completed" in r.stdout or "failed" in r.stdout, 30,
                      "the job to finish")
    assert status.returncode == 0
    assert f"{job_id}  completed" in status.stdout and "| 42" in status.stdout
    listed = json.loads(run("list", "--json", env=cli_env).stdout)
    assert job_id in [j["id"] for j in listed]


def test_submit_wait_streams_output_and_exit_code(simfarm_up: subprocess.Popen[str],
                                                   cli_env: dict[str, str]) -> None:
    ok = run("submit", "--wait", "--", sys.executable, "-c", "print('hi there')", env=cli_env)
    assert ok.returncode == 0 and "hi there" in ok.stdout and "completed" in ok.stdout
    bad = run("submit", "--wait", "--", sys.executable, "-c", "raise SystemExit(4)", env=cli_env)
    assert bad.returncode == 1 and "exit=4" in bad.stdout


def test_user_errors_exit_1_with_a_message(simfarm_up: subprocess.Popen[str],
                                           cli_env: dict[str, str]) -> None:
    missing = run("status", "0123456789abcdef", env=cli_env)
    assert missing.returncode == 1 and "not found" in missing.stderr
    invalid = run("submit", "--priority", "11", "--", "true", env=cli_env)
    assert invalid.returncode == 1 and "priority" in invalid.stderr
    done = run("submit", "--wait", "--json", "--", "true", env=cli_env)
    again = run("cancel", json.loads(done.stdout)["id"], env=cli_env)
    assert again.returncode == 1 and "cannot become cancelled" in again.stderr


def test_connection_refused_is_a_user_error(cli_env: dict[str, str]) -> None:
    result = run("--url", f"http://127.0.0.1:{free_port()}", "list", env=cli_env)
    assert result.returncode == 1
    assert "cannot reach the simfarm gateway" in result.stderr and "simfarm up" in result.stderr


def test_sigterm_stops_every_part(simfarm_up: subprocess.Popen[str]) -> None:
    children = psutil.Process(simfarm_up.pid).children(recursive=True)
    names = " ".join(" ".join(c.cmdline()) for c in children)
    assert "redis-server" in names and "simfarm.gateway.server" in names
    assert "simfarm.workers.main" in names
    simfarm_up.send_signal(signal.SIGTERM)
    assert simfarm_up.wait(timeout=60) == 0
    _gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive


def test_demo_runs_jobs_and_exits(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMFARM_")}
    env.update({"SIMFARM_STATE_DIR": str(tmp_path), "SIMFARM_GATEWAY_PORT": str(free_port()),
                "PYTHONPATH": str(ROOT)})
    result = run("demo", "--exit", env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "hello    completed" in result.stdout and "hello from simfarm" in result.stdout
    assert "fails    failed" in result.stdout and "exit=3" in result.stdout
    # the dashboard link it prints signs the browser in (the farm needs its local token)
    assert "dashboard (one-time sign-in link): http://127.0.0.1:" in result.stdout
    assert "/login?code=" in result.stdout
