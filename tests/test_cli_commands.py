"""The ``simfarm`` client commands through the real entry point (subprocesses) against the
test farm: --url/--token/--json everywhere, exit codes 0/1/2, job files, watch."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from simfarm.common.settings import Settings
from tests.helpers import ROOT, free_port, wait_until
from tests.test_cli import simfarm_argv

PY = sys.executable


@pytest.fixture(scope="module")
def env(gateway: str, worker: subprocess.Popen[bytes],
        tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SIMFARM_")}
    clean.update({"SIMFARM_URL": gateway, "PYTHONPATH": str(ROOT),
                  "SIMFARM_STATE_DIR": str(tmp_path_factory.mktemp("cli-client"))})
    return clean


def simfarm(*args: str, env: dict[str, str], timeout: float = 60,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*simfarm_argv(), *args], env=env, capture_output=True, text=True,
                          timeout=timeout, input=stdin, check=False)


def test_submit_status_list_priority_cancel_as_json(env: dict[str, str]) -> None:
    first = json.loads(simfarm("submit", "--json", "--", PY, "-c", "import time; time.sleep(60)",
                               env=env).stdout)
    held = simfarm("submit", "--json", "--cores", "2", "--priority", "2", "--name", "later",
                   "--label", "os=linux", "--after", first["id"], "--", "true", env=env)
    assert held.returncode == 0, held.stderr
    job = json.loads(held.stdout)
    assert (job["state"], job["priority"], job["spec"]["name"]) == ("pending", 2, "later")
    assert job["spec"]["resources"]["cores"] == 2
    assert job["spec"]["resources"]["labels"] == {"os": "linux"}
    assert job["spec"]["depends_on"]["after_ok"] == [first["id"]]
    listed = json.loads(simfarm("list", "--state", "pending", "--json", env=env).stdout)
    assert job["id"] in [j["id"] for j in listed]
    raised = simfarm("priority", job["id"], "9", "--json", env=env)
    assert raised.returncode == 0 and json.loads(raised.stdout)["priority"] == 9
    status = json.loads(simfarm("status", job["id"], "--json", env=env).stdout)
    assert (status["id"], status["priority"]) == (job["id"], 9)
    cancelled = simfarm("cancel", job["id"], first["id"], "--json", env=env)
    assert cancelled.returncode == 0
    assert [j["id"] for j in json.loads(cancelled.stdout)] == [job["id"], first["id"]]
    again = simfarm("cancel", job["id"], "--json", env=env)
    assert again.returncode == 1
    assert json.loads(again.stderr)["detail"].startswith(f"job {job['id']} is cancelled")


def test_workers_and_limits(env: dict[str, str]) -> None:
    nodes = json.loads(simfarm("workers", "--json", env=env).stdout)
    node = next(n for n in nodes if n["name"] == "test-node")
    assert node["alive"] and node["cores_total"] == 8
    table = simfarm("workers", env=env)
    assert table.returncode == 0 and "test-node" in table.stdout
    changed = simfarm("limits", "test-node", "--set", "min_free_disk_mb=1", "--json", env=env)
    assert changed.returncode == 0, changed.stderr
    assert json.loads(changed.stdout)["min_free_disk_mb"] == 1
    shown = simfarm("limits", "test-node", env=env)
    assert "min_free_disk_mb" in shown.stdout and " 1" in shown.stdout
    cleared = simfarm("limits", "test-node", "--set", "min_free_disk_mb=null", "--json", env=env)
    assert json.loads(cleared.stdout)["min_free_disk_mb"] is None
    rows = dict(line.split(None, 1) for line in simfarm("limits", "test-node",
                                                        env=env).stdout.splitlines())
    assert rows["min_free_disk_mb"] == "unset (no limit)"  # not a bare "None"
    documented = (ROOT / "docs" / "cli.md").read_text()
    assert all(f"`{key}`" in documented for key in rows)  # every key explained
    unknown = simfarm("limits", "no-such-node", env=env)
    assert unknown.returncode == 1 and "404" in unknown.stderr
    bad = simfarm("limits", "test-node", "--set", "max_cpu_percent=500", env=env)
    assert bad.returncode == 1 and "max_cpu_percent" in bad.stderr


def test_url_and_token_options_on_every_level(env: dict[str, str], gateway: str) -> None:
    no_env = {k: v for k, v in env.items() if k != "SIMFARM_URL"}
    dead = f"http://127.0.0.1:{free_port()}"
    for args in (["list", "--url", gateway], ["--url", gateway, "list"],
                 ["--url", dead, "list", "--url", gateway],
                 ["list", "--url", gateway, "--token", "t0ken"]):
        result = simfarm(*args, "--json", env=no_env)
        assert result.returncode == 0, (args, result.stderr)
    refused = simfarm("list", "--url", dead, env=no_env)
    assert refused.returncode == 1 and "cannot reach the simfarm gateway" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_wait_streams_output_and_sets_the_exit_code(env: dict[str, str]) -> None:
    ok = simfarm("submit", "--wait", "--", PY, "-c", "print('alpha'); print('beta')", env=env)
    assert ok.returncode == 0, ok.stderr
    lines = ok.stdout.splitlines()
    assert lines[:2] == ["alpha", "beta"] and " completed " in lines[2]
    failed = simfarm("submit", "--wait", "--json", "--", PY, "-c", "raise SystemExit(6)",
                     env=env)
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["exit_code"] == 6


def test_logs_follow_and_watch_replay(env: dict[str, str]) -> None:
    job = json.loads(simfarm("submit", "--json", "--", PY, "-c",
                             "import time\nfor i in range(3):\n print(i, flush=True)\n"
                             " time.sleep(0.2)", env=env).stdout)
    followed = simfarm("logs", "-f", job["id"], env=env)
    assert followed.returncode == 0 and followed.stdout.splitlines() == ["0", "1", "2"]
    watched = simfarm("watch", "--job", job["id"], "--since", "0", "--count", "4", "--json",
                      env=env)
    assert watched.returncode == 0, watched.stderr
    moves = [json.loads(line)["data"]["to"] for line in watched.stdout.splitlines()]
    assert moves == ["pending", "scheduled", "running", "completed"]
    plain = simfarm("watch", "--job", job["id"], "--since", "0", "--count", "4", env=env)
    last = plain.stdout.splitlines()[-1]
    assert f"  {job['id']}  running -> completed  node=" in last


def test_job_files_json_and_toml(env: dict[str, str], tmp_path: Path,
                                 hfss_node: Settings) -> None:
    toml = tmp_path / "job.toml"
    toml.write_text(f'name = "from-toml"\nargv = ["{PY}", "-c", "print(7)"]\npriority = 8\n'
                    '[resources]\ncores = 2\n')
    done = simfarm("submit", "--file", str(toml), "--wait", "--json", env=env)
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert (job["spec"]["name"], job["priority"], job["spec"]["resources"]["cores"]) == (
        "from-toml", 8, 2)
    project = tmp_path / "antenna.aedt"
    project.write_text("$begin 'Setup1'\nMaximumPasses=2\n$end 'Setup1'\n")
    pyedb_config = tmp_path / "config.json"  # PyEDB's HFSSSimulationConfig.to_dict() form
    pyedb_config.write_text(json.dumps({"project_path": str(project), "jobid": "cli_hfss_1",
                                        "design_name": "main", "setup_name": "Setup1"}))
    hfss = simfarm("submit", "-f", str(pyedb_config), "--wait", "--json", env=env)
    assert hfss.returncode == 0, hfss.stdout + hfss.stderr
    hjob = json.loads(hfss.stdout)
    assert hjob["spec"]["kind"] == "hfss" and hjob["spec"]["hfss"]["jobid"] == "cli_hfss_1"
    flags = simfarm("submit", "--hfss", str(project), "--design", "main", "--setup", "Setup1",
                    "--json", "--wait", env=env)
    assert flags.returncode == 0 and json.loads(flags.stdout)["node"] == "hfss-node"


def test_hfss_solver_lines_are_shown_once(env: dict[str, str], tmp_path: Path,
                                          hfss_node: Settings) -> None:
    """ansysedt -monitor echoes its batch log on stdout; logs and status show each line once."""
    project = tmp_path / "echo.aedt"
    project.write_text("$begin 'Setup1'\nMaximumPasses=3\n$end 'Setup1'\n")
    job = json.loads(simfarm("submit", "--hfss", str(project), "--design", "main", "--setup",
                             "Setup1", "--json", "--wait", env=env).stdout)
    assert job["state"] == "completed"
    lines = simfarm("logs", job["id"], env=env).stdout.splitlines()
    solver = [line for line in lines if line.startswith("[info]")]
    assert len(solver) >= 5 and len(solver) == len(set(solver))  # each message once
    assert sum("Normal completion of simulation" in line for line in lines) == 1
    assert sum("[CONVERGE] Pass Number:" in line for line in lines) == 3
    assert sum("Ansys Electronics Desktop Version" in line for line in lines) == 1  # log only
    status = simfarm("status", job["id"], env=env).stdout
    assert status.count("Normal completion of simulation") == 1


def test_user_errors_exit_1_and_unexpected_answers_exit_2(env: dict[str, str],
                                                          tmp_path: Path) -> None:
    both = simfarm("submit", "--hfss", "x.aedt", "--", "true", env=env)
    assert both.returncode == 1 and "exactly one of" in both.stderr
    bad_file = tmp_path / "bad.toml"
    bad_file.write_text("argv = [")
    assert simfarm("submit", "-f", str(bad_file), env=env).returncode == 1
    bad_label = simfarm("submit", "--label", "nolabel", "--", "true", env=env)
    assert bad_label.returncode == 1 and "key=value" in bad_label.stderr
    invalid = simfarm("submit", "--json", "--priority", "11", "--", "true", env=env)
    assert invalid.returncode == 1 and "priority" in json.loads(invalid.stderr)["detail"]
    # Not a simfarm gateway: a plain file server answering 200 with text.
    (tmp_path / "api" / "v1" / "jobs").mkdir(parents=True)
    (tmp_path / "api" / "v1" / "jobs" / "abc").write_text("hello")
    port = free_port()
    server = subprocess.Popen([PY, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                              cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: simfarm("status", "abc", "--url", url, env=env).returncode != 1, 20,
                   "the file server")
        odd = simfarm("status", "abc", "--url", url, env=env)
        assert odd.returncode == 2 and "unexpected error" in odd.stderr
    finally:
        server.terminate()
        server.wait(10)


def test_json_errors_keep_the_api_code_status_and_fields(env: dict[str, str]) -> None:
    def error(*args: str) -> dict[str, object]:
        done = simfarm(args[0], "--json", *args[1:], env=env)
        assert done.returncode == 1 and done.stdout == "", done.stderr
        body: dict[str, object] = json.loads(done.stderr)
        assert set(body) == {"error", "detail", "status", "fields"}
        return body

    missing = error("status", "no-such-job")
    assert (missing["error"], missing["status"], missing["fields"]) == ("not_found", 404, [])
    job = json.loads(simfarm("submit", "--json", "--wait", "--", "true", env=env).stdout)
    conflict = error("cancel", job["id"])  # it has ended
    assert (conflict["error"], conflict["status"]) == ("conflict", 409)
    assert conflict["fields"] == [{"field": "state", "reason": conflict["fields"][0]["reason"]}]  # type: ignore[index]
    never = error("submit", "--cores", "4096", "--", "true")  # no node has that many
    assert never["status"] == 422 and "cores" in str(never["detail"])
    assert never["fields"][0]["field"] == "resources"  # type: ignore[index]
    invalid = error("submit", "--priority", "11", "--", "true")  # refused before sending
    assert (invalid["error"], invalid["status"]) == ("validation_error", None)
    assert [f["field"] for f in invalid["fields"]] == ["priority"]  # type: ignore[attr-defined]
    usage = error("list", "--limit", "0")
    assert usage["error"] == "usage_error" and usage["fields"][0]["field"] == "limit"  # type: ignore[index]
    unreachable = error("list", "--url", f"http://127.0.0.1:{free_port()}")
    assert unreachable["error"] == "connection_failed" and unreachable["status"] is None


def test_completion_script_and_help(env: dict[str, str]) -> None:
    script = simfarm("completion", "bash", env=env)
    assert script.returncode == 0 and "_SIMFARM_COMPLETE=bash_complete" in script.stdout
    completed = subprocess.run(
        [*simfarm_argv()], env={**env, "_SIMFARM_COMPLETE": "bash_complete",
                                "COMP_WORDS": "simfarm wa", "COMP_CWORD": "1"},
        capture_output=True, text=True, check=False, timeout=30)
    assert "plain,watch" in completed.stdout.splitlines()


def test_up_json_prints_where_the_farm_is(tmp_path: Path) -> None:
    import signal

    import httpx

    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMFARM_")}
    env.update({"PYTHONPATH": str(ROOT), "SIMFARM_STATE_DIR": str(tmp_path),
                "SIMFARM_GATEWAY_PORT": str(free_port())})
    proc = subprocess.Popen([*simfarm_argv(), "up", "--json"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert info["state_dir"] == str(tmp_path) and info["redis_url"].startswith("redis://")
        assert httpx.get(info["url"] + "/api/v1/health", timeout=10).json()["nodes_alive"] == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert proc.stdout.read() == ""  # progress messages go to stderr with --json
    finally:
        if proc.poll() is None:
            proc.kill()


def in_terminal(*args: str, env: dict[str, str], columns: int) -> list[str]:
    """The lines ``simfarm ARGS`` prints in a real (pseudo-)terminal ``columns`` wide."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    term_env = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen([*simfarm_argv(), *args], stdin=slave, stdout=slave, stderr=slave,
                            env={**term_env, "TERM": "xterm-256color"}, close_fds=True)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert proc.wait(30) == 0, out
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.decode())
    return [line.rstrip() for line in text.replace("\r", "").splitlines() if line.strip()]


def test_list_fits_narrow_terminals_and_stays_parseable_in_a_pipe(env: dict[str, str]) -> None:
    name = "mesh-refinement-study-with-a-rather-long-descriptive-name"
    job = json.loads(simfarm("submit", "--json", "--wait", "--name", name, "--", "true",
                             env=env).stdout)
    headers = ["ID", "NAME", "STATE", "PRI", "NODE", "CORES", "AGE", "RUNTIME", "EXIT"]
    wide = in_terminal("list", "--limit", "3", env=env, columns=200)
    assert wide[0].split() == headers
    assert any(job["id"] in line and name in line for line in wide)
    for columns in (80, 60):
        narrow = in_terminal("list", "--limit", "3", env=env, columns=columns)
        assert all(len(line) <= columns for line in narrow), narrow
        row = next(line for line in narrow if job["id"] in line)  # one line, not wrapped
        assert "completed" in row and "…" in row  # the name is shortened, not the id
        assert narrow[0].split()[:3] == ["ID", "NAME", "STATE"]
        assert "EXIT" not in narrow[0]  # the least useful columns went first
    tiny = in_terminal("list", "--limit", "3", env=env, columns=40)
    assert any(f"{job['id']}  completed" in line for line in tiny)  # ids are never cut
    piped = simfarm("list", "--limit", "3", env=env).stdout.splitlines()
    assert piped[0].split("\t") == headers
    fields = next(line.split("\t") for line in piped if line.startswith(job["id"]))
    assert fields[1] == name and fields[2] == "completed" and fields[8] == "0"
    assert all(len(line.split("\t")) == len(headers) for line in piped)
    workers = simfarm("workers", env=env).stdout.splitlines()
    assert workers[0].split("\t")[:3] == ["NODE", "STATUS", "CORES"]
    assert any(line.split("\t")[0] == "test-node" for line in workers[1:])
    assert all(len(line) <= 50 for line in in_terminal("workers", env=env, columns=50))
