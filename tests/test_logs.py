"""Structured logs: with SIMFARM_LOG_FORMAT=json a real worker writes one JSON object per
line, each with the node, and each line about a job with its id."""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from simfarm.common.logs import ContextFilter, JsonFormatter, job_context
from simfarm.common.settings import Settings
from simfarm.common.store import NodeStore
from tests.helpers import start_worker, stop_process, wait_for, wait_until


@contextmanager
def json_logging_worker(settings: Settings, node_store: NodeStore, log_path: Path,
                        name: str, pool: str,
                        **more: object) -> Iterator[subprocess.Popen[bytes]]:
    """A real worker for node ``name`` (label ``pool``) logging JSON lines."""
    node = settings.model_copy(update={
        "node_name": name, "node_cores": 2, "worker_concurrency": 1,
        "node_labels": {"pool": pool}, "log_format": "json", **more,
    })
    proc = start_worker(node, log_path)

    def _alive() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited:\n{log_path.read_text()[-3000:]}")
        return node_store.is_alive(name)

    wait_until(_alive, 60, f"json-logging worker {name}")
    try:
        yield proc
    finally:
        stop_process(proc)
        node_store.forget(name)


@pytest.fixture
def json_worker(
    settings: Settings, node_store: NodeStore, tmp_path: Path
) -> Iterator[tuple[str, Path]]:
    log_path = tmp_path / "worker.log"
    with json_logging_worker(settings, node_store, log_path, "json-node", "json-logs"):
        yield "json-node", log_path


def run_on(http: httpx.Client, pool: str) -> str:
    """Submit ``true`` to the nodes of ``pool``; its id once it completed."""
    spec = {"argv": ["true"], "resources": {"labels": {"pool": pool}}}
    job_id: str = http.post("/api/v1/jobs", json=spec).json()["id"]
    wait_for(lambda: http.get(f"/api/v1/jobs/{job_id}").json()["state"],
             lambda s: s == "completed", 30, f"the job to complete on {pool}")
    return job_id


def test_worker_writes_json_lines_with_job_and_node(
    json_worker: tuple[str, Path], http: httpx.Client
) -> None:
    node, log_path = json_worker
    job_id = run_on(http, "json-logs")
    wait_for(log_path.read_text, lambda text: f'"job_id": "{job_id}"' in text, 10,
             "the job's log lines")
    lines = [line for line in log_path.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is a JSON object
    assert all(r["node"] == node and r["level"] and r["ts"] for r in records)
    about_job = [r for r in records if job_id in r["message"]]
    assert about_job and all(r["job_id"] == job_id for r in about_job)
    assert any("running" in r["message"] for r in about_job)
    celery_lines = [r for r in records if r["message"].startswith("Task simfarm.run_job")]
    assert celery_lines and all(r["job_id"] == job_id for r in celery_lines)


def test_json_formatter_keeps_extras_and_exceptions() -> None:
    record = logging.LogRecord("simfarm.x", logging.ERROR, __file__, 1, "boom %s", ("now",),
                               None)
    record.attempt = 3
    try:
        raise ValueError("bad")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    with job_context("abc123"):
        ContextFilter("n1").filter(record)
    out = json.loads(JsonFormatter().format(record))
    assert out["message"] == "boom now" and out["job_id"] == "abc123" and out["node"] == "n1"
    assert out["attempt"] == 3 and "ValueError: bad" in out["exc"]


def test_a_worker_logs_at_the_level_its_settings_name(
    settings: Settings, node_store: NodeStore, http: httpx.Client, tmp_path: Path
) -> None:
    """``log_level = "WARNING"`` quiets a worker's own lines and Celery's alike (Celery's
    ``--loglevel`` used to set the root logger back to INFO)."""
    log_path = tmp_path / "quiet.log"
    with json_logging_worker(settings, node_store, log_path, "quiet-node", "quiet-logs",
                             log_level="WARNING"):
        job_id = run_on(http, "quiet-logs")
    # the worker has stopped: everything it logged is in the file
    # every line is JSON, up to the last (Celery's "worker: Warm shutdown" banner is not
    # written: it would break a log shipper reading JSON lines)
    records = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    assert records and not [r for r in records if r["level"] in ("DEBUG", "INFO")], records[:5]
    assert not [r for r in records if job_id in r["message"]]


def test_log_level_is_read_in_any_case_and_an_unknown_one_is_refused_by_name() -> None:
    assert Settings(log_level=" warning").log_level == "WARNING"  # type: ignore[arg-type]
    assert Settings(log_level="warn").log_level == "WARNING"  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="log_level"):
        Settings(log_level="loud")  # type: ignore[arg-type]
