"""Project files across machines, with real processes: a second worker ("remote-node")
whose scratch and share live in folder trees the client never sees; the FAKE ansysedt
solves there; results come back over HTTP."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from simfarm.client.client import Client
from simfarm.common.settings import Settings
from simfarm.common.store import NodeStore
from tests.helpers import FAKES, start_worker, stop_process, wait_for, wait_until

FINAL = ("completed", "failed", "cancelled")
REMOTE = {"cores": 1, "labels": {"site": "remote", "aedt.any": "yes"}}
SHARE = "\\\\fs01\\sim"
PROJECT_TEXT = "$begin 'Setup1'\nMaximumPasses=8\n$end 'Setup1'\n"


class RemoteNode:
    """Settings and folders of the remote worker."""

    def __init__(self, settings: Settings, root: Path) -> None:
        self.settings = settings
        self.root = root
        self.scratch = root / "scratch"
        self.share = root / "mnt" / "sim"


@pytest.fixture(scope="module")
def remote(settings: Settings, node_store: NodeStore, gateway: str,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[RemoteNode]:
    root = tmp_path_factory.mktemp("remote-machine")
    node = RemoteNode(settings.model_copy(update={
        "node_name": "remote-node", "node_cores": 4, "worker_concurrency": 2,
        "state_dir": root / "state", "scratch_dir": root / "scratch",
        "node_labels": {"site": "remote"},
        "path_map": {SHARE: str(root / "mnt" / "sim")},
        "worker_gateway_url": gateway,
    }), root)
    node.share.mkdir(parents=True)
    (root / "state").mkdir()
    proc: subprocess.Popen[bytes] = start_worker(
        node.settings, root / "worker.log", ANSYSEM_ROOT252=str(FAKES),
        FAKE_ANSYSEDT_SECONDS="0.2")

    def _alive() -> bool:
        if proc.poll() is not None:
            raise RuntimeError((root / "worker.log").read_text()[-3000:])
        return node_store.is_alive("remote-node")

    wait_until(_alive, 60, "remote worker")
    yield node
    stop_process(proc)


@pytest.fixture
def client(gateway: str) -> Iterator[Client]:
    with Client(gateway) as c:
        yield c


def wait_final(client: Client, job_id: str, timeout_s: float = 40) -> Any:
    return wait_for(lambda: client.get(job_id), lambda j: j.state.value in FINAL, timeout_s,
                    f"job {job_id} to end")


def make_project(folder: Path) -> Path:
    """A client-side project: board.aedt with its board.aedb folder beside it."""
    folder.mkdir(parents=True)
    project = folder / "board.aedt"
    project.write_text(PROJECT_TEXT)
    (folder / "board.aedb").mkdir()
    (folder / "board.aedb" / "edb.def").write_bytes(b"\x00EDB" * 1000)
    return project


def test_staged_hfss_job_runs_in_remote_scratch_and_results_come_back(
    client: Client, remote: RemoteNode, tmp_path: Path
) -> None:
    project = make_project(tmp_path / "client" / "proj")
    job = client.submit_project(
        project, staged=True, resources=REMOTE, outputs=["*.aedb/edb.def"],
        config={"design_name": "main", "setup_name": "Setup1"},
        env={"FAKE_ANSYSEDT_PASSES": "2"})
    assert job.spec.files is not None and job.spec.files.mode == "staged"
    # The client's copy is gone: the worker can only use what it downloaded.
    shutil.rmtree(tmp_path / "client")
    done = wait_final(client, job.id)
    assert done.state.value == "completed", done
    assert done.node == "remote-node"
    assert all(a.startswith(str(remote.scratch)) for a in done.artifacts), done.artifacts
    assert done.results is not None and not done.results.partial
    assert not (remote.scratch / job.id).exists()  # cleaned after success

    dest = client.download(job.id, tmp_path / "results")
    profile = dest / "board.aedtresults" / "main.results" / "Setup1.profile"
    assert profile.read_text() == "$begin 'Profile'\n$end 'Profile'\n"
    batch_log = (dest / "board.log").read_text()
    assert "Normal completion of simulation" in batch_log
    assert str(remote.scratch / job.id / "work" / "board.aedt") in batch_log
    assert (dest / "board.aedb" / "edb.def").read_bytes() == b"\x00EDB" * 1000
    output = (dest / "simfarm-output.log").read_text()
    assert "[CONVERGE] Pass Number:  2" in output
    assert sorted(done.results.files) == sorted(
        str(p.relative_to(dest).as_posix()) for p in dest.rglob("*") if p.is_file())


def test_same_project_is_uploaded_once(client: Client, tmp_path: Path,
                                       settings: Settings) -> None:
    project = make_project(tmp_path / "p")
    first = client.upload_project(project)
    blob = settings.blob_root() / "sha256" / first.archive[:2] / str(first.archive)
    mtime = blob.stat().st_mtime_ns
    assert client.upload_project(project).archive == first.archive
    assert blob.stat().st_mtime_ns == mtime


def test_checksum_mismatch_fails_without_running(
    client: Client, remote: RemoteNode, settings: Settings, tmp_path: Path
) -> None:
    project = make_project(tmp_path / "p")
    (project.parent / "board.aedb" / "note.txt").write_text("unique to this test")
    files = client.upload_project(project)
    assert files.archive is not None
    blob = settings.blob_root() / "sha256" / files.archive[:2] / files.archive
    data = bytearray(blob.read_bytes())
    data[600] ^= 0xFF  # storage corruption after a good upload
    blob.write_bytes(bytes(data))
    record = tmp_path / "argv.jsonl"
    job = client.submit({"kind": "hfss", "hfss": {"project_path": "board.aedt"},
                         "files": files.model_dump(), "resources": REMOTE,
                         "env": {"FAKE_ANSYSEDT_RECORD": str(record)}})
    done = wait_final(client, job.id)
    assert done.state.value == "failed"
    assert done.reason.startswith(f"project archive checksum mismatch: expected {files.archive}")
    assert done.started_at is not None and not record.exists()  # ansysedt never ran
    kept = remote.scratch / job.id
    assert (kept / ".simfarm-expires").exists()  # kept for inspection after a failure


def test_failed_and_cancelled_jobs_still_return_partial_results(
    client: Client, remote: RemoteNode, tmp_path: Path
) -> None:
    project = make_project(tmp_path / "p")
    failing = client.submit_project(project, staged=True, resources=REMOTE,
                                    env={"FAKE_ANSYSEDT_EXIT_CODE": "3"})
    hanging = client.submit_project(project, staged=True, resources=REMOTE,
                                    env={"FAKE_ANSYSEDT_OUTCOME": "hang"})
    wait_for(lambda: [e.data.get("line", "") for e in client.events(hanging.id)],
             lambda lines: any("Adaptive Pass 1" in ln for ln in lines), 30,
             "the hanging solve to start")
    client.cancel(hanging.id)
    for job_id, state in ((failing.id, "failed"), (hanging.id, "cancelled")):
        done = wait_final(client, job_id)
        assert done.state.value == state, done
        assert done.results is not None and done.results.partial
        dest = client.download(job_id, tmp_path / job_id)
        assert "Adaptive Pass 1" in (dest / "board.log").read_text()
        assert (remote.scratch / job_id / ".simfarm-expires").exists()


def test_shared_project_path_is_mapped_on_the_node(
    client: Client, remote: RemoteNode, tmp_path: Path
) -> None:
    on_share = remote.share / "team" / "board.aedt"
    on_share.parent.mkdir(parents=True)
    on_share.write_text(PROJECT_TEXT)
    record = tmp_path / "argv.jsonl"
    job = client.submit({"kind": "hfss", "resources": REMOTE,
                         "hfss": {"project_path": SHARE + "\\team\\board.aedt"},
                         "env": {"FAKE_ANSYSEDT_RECORD": str(record)}})
    done = wait_final(client, job.id)
    assert done.state.value == "completed", done
    assert json.loads(record.read_text())[-1] == str(on_share)
    assert str(on_share.with_suffix(".aedtresults")) in done.artifacts

    missing = client.submit({"kind": "hfss", "resources": REMOTE,
                             "hfss": {"project_path": SHARE + "\\team\\gone.aedb"}})
    failed = wait_final(client, missing.id)
    assert failed.state.value == "failed"
    assert failed.reason == (
        f"project {remote.share / 'team' / 'gone.aedb'} (submitted as "
        f"{SHARE}\\team\\gone.aedb) does not exist on node remote-node (check the share is "
        "mounted and the path-mapping rules)")


def test_staged_job_needs_an_uploaded_archive(client: Client) -> None:
    from simfarm.client.errors import ApiError

    with pytest.raises(ApiError) as err:
        client.submit({"argv": ["true"], "files": {"mode": "staged", "archive": "0" * 64}})
    assert err.value.status == 422
    assert err.value.fields[0]["field"] == "files.archive"


def test_async_client_stages_and_downloads(gateway: str, remote: RemoteNode,
                                           tmp_path: Path) -> None:
    import asyncio

    from simfarm.client.async_client import AsyncClient

    project = make_project(tmp_path / "async")

    async def scenario() -> Path:
        async with AsyncClient(gateway) as aclient:
            job = await aclient.submit_project(project, staged=True, resources=REMOTE)
            done = await aclient.wait(job.id, timeout=40)
            assert done.state.value == "completed", done
            return await aclient.download(job.id, tmp_path / "async-results")

    dest = asyncio.run(scenario())
    assert (dest / "board.aedtresults").is_dir() and (dest / "board.log").is_file()


def test_staged_job_keeps_the_sparameters_of_its_results(
    client: Client, remote: RemoteNode, tmp_path: Path, gateway: str
) -> None:
    """The summary is made in the remote scratch folder, before the results go back."""
    project = make_project(tmp_path / "client" / "proj")
    s2p = Path(__file__).parent / "data" / "lowpass_filter.s2p"
    job = client.submit_project(project, staged=True, resources=REMOTE, outputs=["*.s2p"],
                                config={"design_name": "main", "setup_name": "Setup1"},
                                env={"FAKE_ANSYSEDT_TOUCHSTONE": str(s2p)})
    shutil.rmtree(tmp_path / "client")
    assert wait_final(client, job.id).state.value == "completed"
    body = httpx.get(f"{gateway}/api/v1/jobs/{job.id}/sparameters").json()
    assert [(f["name"], f["ports"], f["points"]) for f in body["files"]] == [
        ("main_Setup1.s2p", 2, 60)]
    dest = client.download(job.id, tmp_path / "results")  # and the file came back too
    assert (dest / "main_Setup1.s2p").read_bytes() == s2p.read_bytes()
