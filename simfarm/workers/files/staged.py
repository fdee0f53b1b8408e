"""Staged projects: download into a scratch folder, verify, run there, send results back.

1. The project archive (a blob on the gateway) streams into ``<scratch>/<job>/``,
   hashed as it arrives; a SHA-256 other than the one submitted fails the job before
   anything runs.
2. It is unpacked into ``work/``; the job runs there (``cwd``, and an HFSS job's
   ``project_path`` points into it).
3. Whatever the outcome (completed, failed, cancelled), the results — the project's
   ``.aedtresults`` folder, the AEDT batch log, the declared outputs and the job's
   output lines — go back to the gateway as one archive attached to the job.
4. After success the scratch folder is removed; otherwise it is kept for
   ``scratch_retention_s``.
"""

from __future__ import annotations

import functools
import logging
import tempfile
from pathlib import Path, PurePath

import httpx

from simfarm.common.archive import extract, write_archive
from simfarm.common.blob_http import BlobTransferError, download_blob, upload_blob
from simfarm.common.files import ProjectFiles, ResultsInfo
from simfarm.common.models import Job
from simfarm.common.states import JobState
from simfarm.workers.attempt import AttemptSupervisor, Runner, Stop
from simfarm.workers.files import scratch
from simfarm.workers.job_account import job_account
from simfarm.workers.outcome import Outcome

log = logging.getLogger(__name__)

OUTPUT_LOG = "simfarm-output.log"


class TransferStopped(Exception):
    """The transfer must stop: the attempt's supervisor said so (cancel, shutdown, lease)."""

    def __init__(self, stop: Stop) -> None:
        super().__init__(stop.reason)
        self.stop = stop


class StagedRun:
    """One attempt of a staged job on this node."""

    def __init__(self, supervisor: AttemptSupervisor, job: Job) -> None:
        assert job.spec.files is not None
        ctx = supervisor.ctx
        self.supervisor = supervisor
        self.ctx = ctx
        self.job = job
        self.files: ProjectFiles = job.spec.files
        self.folder = scratch.scratch_folder(ctx.settings.scratch_root(), job.id)
        self.work = self.folder / "work"
        headers = {"Authorization": f"Bearer {ctx.settings.token}"} if ctx.settings.token else {}
        self.http = httpx.Client(base_url=ctx.settings.gateway_url_for_workers(),
                                 headers=headers, timeout=httpx.Timeout(60.0, connect=10.0))

    # ------------------------------------------------------------------ the attempt
    def run(self, runner: Runner) -> Outcome:
        try:
            outcome = self._stage_in()
            if outcome is None:
                outcome = runner(self.supervisor, self._prepared_job())
                outcome = self._stage_out(outcome)
        except TransferStopped as stopped:
            log.info("job %s: transfer stopped (%s)", self.job.id, stopped.stop.reason)
            outcome = stopped.stop.outcome()
        finally:
            self.http.close()
        if outcome.state is JobState.COMPLETED:
            scratch.remove(self.folder)
        else:
            scratch.keep(self.folder, self.ctx.settings.scratch_retention_s)
            log.info("job %s: scratch folder kept at %s", self.job.id, self.folder)
        return outcome

    def _info(self, message: str, **data: object) -> None:
        """An info event on the job (skipped while Redis cannot be reached)."""
        self.supervisor.send(functools.partial(
            self.ctx.jobs.append_events, self.job.id,
            [("info", {"message": message, **data})]))

    def _tick(self, _: int) -> None:
        """Called for every chunk moved: the supervisor keeps the lease, notices a cancel
        (while the project comes in) or a shutdown, and stops a cut-off attempt in time."""
        stop = self.supervisor.check()
        if stop is not None:
            raise TransferStopped(stop)

    # ------------------------------------------------------------------ in
    def _stage_in(self) -> Outcome | None:
        """Fetch, verify and unpack the project; an Outcome when the job cannot run."""
        sha = self.files.archive
        assert sha is not None
        archive = self.folder / "project.tar"
        self._info("downloading project archive", archive=sha)
        try:
            actual = download_blob(self.http, sha, archive, self._tick)
        except BlobTransferError as exc:
            return Outcome(JobState.FAILED, reason=f"cannot fetch the project archive: {exc}")
        if actual != sha:
            log.warning("job %s: archive checksum mismatch (%s != %s)", self.job.id, actual, sha)
            return Outcome(JobState.FAILED, reason=(
                f"project archive checksum mismatch: expected {sha}, the downloaded bytes "
                f"hash to {actual}; the job was not run"))
        try:
            with open(archive, "rb") as source:
                extract(source, self.work)
        except Exception as exc:  # tarfile raises many types for a bad archive
            return Outcome(JobState.FAILED, reason=f"cannot unpack the project archive: {exc}")
        archive.unlink()
        account = job_account(self.ctx.settings)
        if account is not None:  # the job may write into its project folder
            account.give(self.work)
        project = self._project_path()
        if project is not None and not project.exists():
            return Outcome(JobState.FAILED, reason=(
                f"the project archive has no {project.relative_to(self.work)}"))
        self._info("project verified and unpacked", folder=str(self.work))
        return None

    def _project_name(self) -> str | None:
        if self.files.project:
            return self.files.project
        if self.job.spec.hfss is not None:
            return PurePath(self.job.spec.hfss.project_path.replace("\\", "/")).name
        return None

    def _project_path(self) -> Path | None:
        name = self._project_name()
        return None if name is None else self.work / name

    def _prepared_job(self) -> Job:
        spec = self.job.spec
        env = dict(spec.env)
        env["SIMFARM_SCRATCH"] = str(self.work)
        update: dict[str, object] = {"cwd": str(self.work), "env": env}
        project = self._project_path()
        if project is not None:
            env["SIMFARM_PROJECT"] = str(project)
        if spec.hfss is not None and project is not None:
            update["hfss"] = spec.hfss.model_copy(update={"project_path": str(project)})
        return self.job.model_copy(update={"spec": spec.model_copy(update=update)})

    # ------------------------------------------------------------------ out
    def _result_entries(self) -> list[tuple[Path, str]]:
        entries: list[tuple[Path, str]] = []
        seen: set[Path] = set()
        project = self._project_path()
        if project is not None:
            for candidate in (project.with_suffix(".aedtresults"), project.with_suffix(".log")):
                if candidate.exists():
                    entries.append((candidate, candidate.name))
                    seen.add(candidate)
        for pattern in self.files.outputs:
            for match in sorted(self.work.glob(pattern)):
                if match not in seen and match.resolve().is_relative_to(self.work.resolve()):
                    entries.append((match, match.relative_to(self.work).as_posix()))
                    seen.add(match)
        output = self.folder / OUTPUT_LOG
        events = self.supervisor.call(
            functools.partial(self.ctx.jobs.events, self.job.id, limit=10_000))
        if events is None:
            lines = ["(simfarm: the job's output lines were not available: Redis could not "
                     f"be reached from {self.ctx.node_name})"]
        else:
            lines = [str(e.data.get("line", "")) for e in events if e.type == "log"]
        output.write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
        entries.append((output, OUTPUT_LOG))
        return entries

    def _stage_out(self, outcome: Outcome) -> Outcome:
        """Send the results back; a completed job whose results cannot be sent fails."""
        if outcome.interrupted:
            return outcome
        self.supervisor.watch_cancel = False  # a cancel now must not stop the results
        partial = outcome.state is not JobState.COMPLETED
        try:
            with tempfile.NamedTemporaryFile(dir=self.folder, suffix=".tar",
                                             delete=False) as out:
                sha, size, names = write_archive(self._result_entries(), out)
            self._info("uploading results", size=size, files=len(names))
            upload_blob(self.http, Path(out.name), sha, self._tick)
            info = ResultsInfo(sha256=sha, size=size, files=names, partial=partial)
            response = self.http.put(f"/api/v1/jobs/{self.job.id}/results",
                                     json=info.model_dump())
            if response.status_code != 200:
                raise BlobTransferError(f"attaching results: HTTP {response.status_code}")
            Path(out.name).unlink()
        except TransferStopped:
            raise
        except (BlobTransferError, httpx.HTTPError, OSError) as exc:
            log.warning("job %s: results not uploaded: %s", self.job.id, exc)
            self._info("results upload failed", error=str(exc))
            if outcome.state is JobState.COMPLETED:
                return Outcome(JobState.FAILED, exit_code=outcome.exit_code,
                               reason=f"results upload failed: {exc}", fields=outcome.fields)
            return outcome
        log.info("job %s: results uploaded (%d bytes, %d files)", self.job.id, size, len(names))
        return outcome
