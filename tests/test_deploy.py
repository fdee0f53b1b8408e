"""deploy/: the systemd units pass `systemd-analyze verify`, and the example
configuration, env file and compose files only use settings and commands that exist.
(`docker compose config` is not run: this machine has no Docker engine or compose.)"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tomllib
from configparser import ConfigParser
from pathlib import Path

import pytest
import yaml

from simfarm.client.cli import cli
from simfarm.common.settings import Settings
from tests.helpers import ROOT

DEPLOY = ROOT / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
SIMFARM_BIN = "/opt/simfarm/venv/bin/simfarm"


def _unit(path: Path) -> ConfigParser:
    parser = ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(path)
    return parser


def test_systemd_units_verify(tmp_path: Path) -> None:
    assert {u.name for u in UNITS} == {
        "simfarm-redis.service", "simfarm-gateway.service", "simfarm-worker.service",
        "simfarm-flower.service"}
    tool = shutil.which("systemd-analyze")
    stub = tmp_path / "simfarm"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    copies = []
    for unit in UNITS:
        text = unit.read_text().replace(SIMFARM_BIN, str(stub))
        if not Path("/usr/bin/redis-server").exists():
            text = text.replace("/usr/bin/redis-server", str(stub))
        copy = tmp_path / unit.name
        copy.write_text(text)
        copies.append(str(copy))
    if tool is None:  # structural checks below still run
        return
    result = subprocess.run([tool, "verify", *copies], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"})
    problems = [line for line in (result.stdout + result.stderr).splitlines()
                if "simfarm-" in line]
    assert result.returncode == 0 and not problems, "\n".join(problems)


def test_units_run_existing_commands_with_the_shared_env_file() -> None:
    commands = set(cli.commands)
    for unit in UNITS:
        service = _unit(unit)["Service"]
        argv = service["ExecStart"].split()
        if unit.name == "simfarm-redis.service":
            assert argv[0] == "/usr/bin/redis-server"
            continue
        assert argv[0] == SIMFARM_BIN and argv[1] in commands
        assert service["EnvironmentFile"] == "/etc/simfarm/simfarm.env"
    worker = _unit(DEPLOY / "systemd" / "simfarm-worker.service")["Service"]
    assert worker["KillMode"] == "mixed"  # the worker stops its own jobs on SIGTERM


def test_example_config_and_env_only_use_real_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    fields = set(Settings.model_fields)
    data = tomllib.loads((DEPLOY / "simfarm.toml").read_text())
    assert set(data) <= fields, f"unknown keys: {set(data) - fields}"
    for name in [n for n in os.environ if n.startswith("SIMFARM_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("SIMFARM_CONFIG", str(DEPLOY / "simfarm.toml"))
    loaded = Settings()  # read through SIMFARM_CONFIG, as the services do
    assert loaded.log_format == "json" and loaded.node_labels["site"] == "lab-a"
    assert loaded.redis_url.startswith("redis://gateway:")  # a role's user, as in simfarm.env
    env = dict(line.split("=", 1) for line in (DEPLOY / "simfarm.env").read_text().splitlines()
               if line.startswith("SIMFARM_"))
    assert env["SIMFARM_REDIS_URL"] == loaded.redis_url
    assert env["SIMFARM_WORKER_GATEWAY_URL"].startswith("http://")
    for line in (DEPLOY / "simfarm.env").read_text().splitlines():
        if line.startswith("SIMFARM_") and not line.startswith("SIMFARM_CONFIG="):
            name = line.split("=", 1)[0].removeprefix("SIMFARM_").lower()
            assert name in fields, f"{line}: no such setting"


def test_compose_files_use_existing_commands() -> None:
    commands = set(cli.commands)
    gateway = yaml.safe_load((DEPLOY / "docker" / "compose.gateway.yml").read_text())
    worker = yaml.safe_load((DEPLOY / "docker" / "compose.worker.yml").read_text())
    assert set(gateway["services"]) == {"redis", "gateway", "flower"}
    assert gateway["services"]["gateway"]["command"] == ["gateway"]
    assert gateway["services"]["flower"]["command"][0] in commands
    assert worker["services"]["worker"]["command"] == ["worker"]
    assert (DEPLOY / "docker" / "Dockerfile").read_text().count("ENTRYPOINT") == 1


def test_the_nginx_balancer_config_is_valid(tmp_path: Path) -> None:
    """deploy/nginx/simfarm.conf passes `nginx -t` (its gateways put on loopback; the
    HAProxy config is checked and run by tests/test_gateways.py)."""
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                      else None)
    if nginx is None:
        pytest.skip("nginx is not installed (the HAProxy config is the tested one)")
    site = (DEPLOY / "nginx" / "simfarm.conf").read_text()
    assert "gw-a:8765" in site and "gw-b:8765" in site and "listen 8765;" in site
    site = site.replace("gw-a:8765", "127.0.0.1:18765").replace("gw-b:8765", "127.0.0.1:18766")
    site = site.replace("listen 8765;", "listen 127.0.0.1:18767;")
    (tmp_path / "simfarm.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log stderr;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  client_body_temp_path {tmp_path};\n"
        f"  include {tmp_path}/simfarm.conf;\n}}\n")
    result = subprocess.run([nginx, "-t", "-c", str(tmp_path / "nginx.conf"), "-p",
                             str(tmp_path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
