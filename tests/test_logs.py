"""Structured logs: with SIMFARM_LOG_FORMAT=json a real worker writes one JSON object per
line, each with the node, and each line about a job with its id."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from simfarm.common.logs import ContextFilter, JsonFormatter, job_context
from simfarm.common.settings import Settings
from simfarm.common.store import NodeStore
from tests.helpers import start_worker, stop_process, wait_for, wait_until


@pytest.fixture
def json_worker(
    settings: Settings, node_store: NodeStore, tmp_path: Path
) -> Iterator[tuple[str, Path]]:
    node = settings.model_copy(update={
        "node_name": "json-node", "node_cores": 2, "worker_concurrency": 1,
        "node_labels": {"pool": "json-logs"}, "log_format": "json",
    })
    log_path = tmp_path / "worker.log"
    proc = start_worker(node, log_path)

    def _alive() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited:\n{log_path.read_text()[-3000:]}")
        return node_store.is_alive("json-node")

    wait_until(_alive, 60, "json-logging worker")
    try:
        yield "json-node", log_path
    finally:
        stop_process(proc)
        node_store.forget("json-node")


def test_worker_writes_json_lines_with_job_and_node(
    json_worker: tuple[str, Path], http: httpx.Client
) -> None:
    node, log_path = json_worker
    spec = {"argv": ["true"], "resources": {"labels": {"pool": "json-logs"}}}
    job_id = http.post("/api/v1/jobs", json=spec).json()["id"]
    wait_for(lambda: http.get(f"/api/v1/jobs/{job_id}").json()["state"],
             lambda s: s == "completed", 30, "the job to complete on json-node")
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
