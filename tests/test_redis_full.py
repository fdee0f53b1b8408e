"""Redis at ``maxmemory``: submits are refused with 507 and ``Retry-After``, health says
``degraded``, the worker rides it out, and the farm runs jobs again once memory is freed.

A real redis-server whose ``maxmemory`` is lowered below what it holds (``CONFIG SET``,
as when the data outgrew the limit): it then refuses every write, as Redis does.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from kombu import Connection

from tests.chaos import RECORDER
from tests.conftest import RedisServer
from tests.embedded_farm import Up, farm_processes, up_env
from tests.helpers import wait_until


@pytest.fixture
def capped_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", extra_args=(
        "--maxmemory", "256mb", "--maxmemory-policy", "noeviction"))
    server.start()
    yield server
    server.stop()


def out_of_memory(client: redis.Redis) -> None:
    """Lower maxmemory below what Redis uses: it refuses writes from now on."""
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory", str(used // 2))
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        client.set("probe", "x")


def test_at_maxmemory_submits_get_507_and_the_farm_rides_it_out(
        capped_redis: RedisServer, tmp_path: Path) -> None:
    record = tmp_path / "runs"
    record.mkdir()
    env = up_env(tmp_path / "state", "full-node", SIMFARM_REDIS_URL=capped_redis.url,
                 SIMFARM_HEARTBEAT_S="1", SIMFARM_HEARTBEAT_TTL_S="10")
    up = Up(env).wait_up()
    client = redis.Redis.from_url(capped_redis.url)
    try:
        running = up.submit(sys.executable, "-c", RECORDER, str(record), "1.5")
        up.wait_state(running, "running")
        out_of_memory(client)

        refused = httpx.post(f"{up.url}/api/v1/jobs", json={"argv": ["true"]}, timeout=10,
                             headers=up.headers)
        assert refused.status_code == 507, refused.text
        assert int(refused.headers["Retry-After"]) > 0
        assert "out of memory" in refused.json()["detail"]
        health = httpx.get(f"{up.url}/api/v1/health", timeout=10)
        assert health.status_code == 200 and health.json()["status"] == "degraded"
        assert "out of memory" in health.json()["redis"]

        # The job ends while Redis refuses writes. Its outcome is recorded (a script may
        # write once its first write went through) or waits for Redis; Celery's
        # acknowledgement of the task is refused: the worker goes on.
        wait_until(lambda: "end" in (record / running).read_text(), 30, "the job to end")
        worker_log = up.state_dir / "logs" / "worker.log"
        marks = ("Couldn't ack", "retrying to record completed")
        wait_until(lambda: any(m in worker_log.read_text() for m in marks), 30,
                   "the worker to meet the refused writes")
        seen = len(worker_log.read_text())
        wait_until(lambda: "heartbeat failed" in worker_log.read_text()[seen:], 30,
                   "the worker to try its next heartbeat")  # still running
        assert up.proc.poll() is None, "simfarm up stopped"
        assert any("simfarm.workers.main" in " ".join(p.cmdline())
                   for p in farm_processes(up.state_dir))

        client.config_set("maxmemory", "256mb")  # memory freed
        assert up.wait_state(running, "completed", timeout_s=30)["exit_code"] == 0
        again = up.submit(sys.executable, "-c", "print('after')")
        assert up.wait_state(again, "completed", timeout_s=30)["exit_code"] == 0
        assert httpx.get(f"{up.url}/api/v1/health", timeout=10).json()["status"] == "ok"
        assert up.proc.poll() is None
    finally:
        client.close()
        up.stop()


def test_the_broker_counts_refused_writes_as_an_outage(capped_redis: RedisServer) -> None:
    """A message delivered while Redis is out of memory cannot be recorded as unacked
    (kombu writes it in a MULTI, which Redis 7 refuses): the worker's transport reports
    that as a connection error, after which Celery reconnects, instead of an
    unrecoverable one that stops the worker."""
    from simfarm.workers.broker import TRANSPORT

    client = redis.Redis.from_url(capped_redis.url)
    with Connection(capped_redis.url, transport=TRANSPORT) as conn:
        queue = conn.SimpleQueue("full-test")
        queue.put({"n": 1})
        out_of_memory(client)
        with pytest.raises(conn.connection_errors) as raised:
            queue.get(timeout=5)
        assert isinstance(raised.value, redis.exceptions.OutOfMemoryError)
        queue.close()
    # kombu's own transport (a worker maps redis:// to simfarm's, see broker.install):
    # there it is an unrecoverable error
    with Connection(capped_redis.url, transport="kombu.transport.redis:Transport") as stock:
        assert not issubclass(redis.exceptions.OutOfMemoryError, stock.connection_errors)
    client.close()
