"""Fixtures that start real components: redis-server, Celery worker, gateway over HTTP;
and the end-of-run check that the tests left no process running (tests/leaks.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from simfarm.common.settings import Settings
from simfarm.common.store import JobStore, NodeStore
from tests import leaks
from tests.helpers import free_port, start_gateway, start_worker, stop_process, wait_until


def pytest_configure(config: pytest.Config) -> None:
    # Marks every process the run starts (inherited), so the end of the run finds ours
    # among other engineers' (xdist workers inherit the controller's).
    if not hasattr(config, "workerinput"):
        os.environ.setdefault(leaks.MARKER, f"pytest-{os.getpid()}-{uuid.uuid4().hex[:8]}")


@pytest.hookimpl(tryfirst=True)  # before xdist turns the marks into node ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep each test module on one xdist worker (``--dist loadgroup``): a module's
    farm fixture is started once, and a test may rely on what an earlier test of its
    module started (a worker, a pool), which a split module would not have. The
    cluster tests share one SLURM and are one group (tests/clusters/conftest.py)."""
    clusters = Path(__file__).parent / "clusters"
    for item in items:
        if item.get_closest_marker("xdist_group") is not None:
            continue  # a module that names its group (tests/test_farm_network.py)
        path = Path(str(item.fspath))
        group = "clusters" if clusters in path.parents else path.stem
        item.add_marker(pytest.mark.xdist_group(group))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if hasattr(session.config, "workerinput"):
        return
    left = leaks.check(os.environ[leaks.MARKER])
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        lines = ["", "processes the tests left running (killed now):", *left]
        for line in lines:
            if reporter is not None:
                reporter.write_line(line, red=True)
            else:
                print(line, file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


class RedisServer:
    """A private redis-server on a free loopback port, data in a temp folder."""

    def __init__(
        self, data_dir: Path, appendonly: bool = True, extra_args: tuple[str, ...] = (),
        password: str | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.appendonly = appendonly
        self.extra_args = extra_args  # e.g. ("--appendfsync", "always")
        self.password = password  # of the default user (an --aclfile in extra_args)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f"default:{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed; run `make test` which installs it")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.data_dir),
                "--appendonly",
                "yes" if self.appendonly else "no",
                "--save",
                "",
                "--daemonize",
                "no",
                "--logfile",
                str(self.data_dir / "redis.log"),
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        proc = self.proc

        def ours() -> bool:  # not a server some other test left on this port
            if proc.poll() is not None:
                pytest.fail(f"redis-server on port {self.port} exited: "
                            f"{(self.data_dir / 'redis.log').read_text(errors='replace')[-600:]}")
            return bool(client.info("server")["process_id"] == proc.pid)

        wait_until(ours, 20, "redis-server")
        client.close()

    def stop(self, kill: bool = False) -> None:
        if self.proc is not None and self.proc.poll() is None:
            if kill:
                self.proc.kill()
                self.proc.wait(timeout=10)
            else:
                stop_process(self.proc)
        self.proc = None


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def settings(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings of the session's farm: one node ``test-node`` with 8 cores, 4 slots."""
    return Settings(
        redis_url=redis_server.url,
        state_dir=tmp_path_factory.mktemp("state"),
        gateway_port=free_port(),
        node_name="test-node",
        node_labels={"pool": "main"},
        node_cores=8,
        node_memory_mb=16_384,
        worker_concurrency=4,
        heartbeat_s=0.5,
        heartbeat_ttl_s=3.0,
        kill_grace_s=2.0,
        stats_bucket_s=1.0,  # the farm's time series: a point per second
        notify_backoff_s=0.3,  # notifications retried within a test's time
        notify_backoff_max_s=1.0,
        notify_timeout_s=3.0,
        smtp_host="127.0.0.1",  # e-mail: tests/test_notifications.py serves this port
        smtp_port=free_port(),
    )


@pytest.fixture(scope="session")
def redis_client(redis_server: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(redis_server.url)


@pytest.fixture(scope="session")
def store(redis_client: redis.Redis, settings: Settings) -> JobStore:
    return JobStore(redis_client, settings.key_prefix)


@pytest.fixture(scope="session")
def node_store(redis_client: redis.Redis, settings: Settings) -> NodeStore:
    return NodeStore(redis_client, settings.key_prefix)


@pytest.fixture(scope="session")
def worker(settings: Settings, node_store: NodeStore) -> Iterator[subprocess.Popen[bytes]]:
    """A real Celery worker process serving node ``test-node``."""
    proc = start_worker(settings, settings.state_dir / "worker.log")

    def _alive() -> bool:
        if proc.poll() is not None:
            log = (settings.state_dir / "worker.log").read_text()[-3000:]
            raise RuntimeError(f"worker exited with {proc.returncode}:\n{log}")
        return node_store.is_alive(settings.node_name)

    wait_until(_alive, 60, "celery worker")
    yield proc
    stop_process(proc)


@pytest.fixture(scope="session")
def gateway(settings: Settings) -> Iterator[str]:
    """The real gateway under gunicorn; yields its base URL."""
    proc = start_gateway(settings, settings.state_dir / "gateway.log")
    yield f"http://127.0.0.1:{settings.gateway_port}"
    stop_process(proc)


@pytest.fixture
def http(gateway: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway, timeout=30) as client:
        yield client


@pytest.fixture
def farm(worker: subprocess.Popen[bytes], http: httpx.Client) -> httpx.Client:
    """An HTTP client to a gateway with a live worker behind it."""
    return http


@pytest.fixture(scope="session")
def hfss_node(settings: Settings, node_store: NodeStore,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A second real worker, ``hfss-node``, whose AEDT 2025.2 is the FAKE ansysedt
    (tests/fakes/ansysedt, found through ANSYSEM_ROOT252). Yields its settings."""
    from tests.helpers import FAKES

    # 16 cores: PyEDB's documented script asks for 16 and a job reserves what ansysedt
    # is told (docs/migrating-from-pyedb.md#cores-what-a-job-reserves-is-what-ansysedt-is-told).
    node = settings.model_copy(update={"node_name": "hfss-node", "node_cores": 16,
                                       "worker_concurrency": 2,
                                       "node_labels": {"pool": "hfss"}})  # not test-node's
    log_path = tmp_path_factory.mktemp("hfss-node") / "worker.log"
    proc = start_worker(node, log_path, ANSYSEM_ROOT252=str(FAKES),
                        FAKE_ANSYSEDT_SECONDS="0.3")

    def _alive() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"hfss worker exited:\n{log_path.read_text()[-3000:]}")
        return node_store.is_alive("hfss-node")

    wait_until(_alive, 60, "hfss worker")
    yield node
    stop_process(proc)


@pytest.fixture(scope="session")
def job_account(worker_id: str) -> Iterator[str]:
    """An unprivileged OS account for jobs (created with useradd, removed afterwards;
    one per xdist worker). Needs root, as the worker that switches to it does."""
    import os
    import pwd

    if os.geteuid() != 0 or shutil.which("useradd") is None:
        pytest.fail("the job-account tests need root and useradd (run as CI does)")
    name = f"simfarm-t{worker_id}"[:32]
    created = False
    def exists() -> bool:
        try:
            pwd.getpwnam(name)
        except KeyError:
            return False
        return True

    def create() -> bool:  # useradd fails while another one holds /etc/passwd's lock
        if not exists():
            subprocess.run(["useradd", "--system", "--no-create-home", "--user-group",
                            "--shell", "/usr/sbin/nologin", name], check=False,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return exists()

    if not exists():
        wait_until(create, 30, f"useradd {name}", interval_s=0.5)
        created = True
    yield name
    if created:
        subprocess.run(["userdel", name], check=False, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
