"""The base every cluster backend shares: submit, batched status, cancel, partitions.

Shaped like PSI/J's ``BatchSchedulerExecutor``: this class owns the flow (write the
script, run the command, retry, read the ``<native_id>.ec`` exit-code file); each
scheduler module only builds argvs and parses output:
``get_submit_command``/``job_id_from_submit_output``, ``get_status_command``/
``parse_status_output``, ``get_cancel_command``/``cancel_already_done``,
``get_partitions_commands``/``parse_partitions`` and, where the cluster keeps
records of finished jobs, ``get_accounting_command``/``parse_accounting_output``.
"""

from __future__ import annotations

import functools
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from simfarm.workers.schedulers.commands import (
    CommandResult,
    CommandRunner,
    RetryPolicy,
    with_retries,
)
from simfarm.workers.schedulers.errors import CommandError, InvalidOptions, SubmitError
from simfarm.workers.schedulers.options import ClusterOptions
from simfarm.workers.schedulers.paths import check_directive_path
from simfarm.workers.schedulers.render import render
from simfarm.workers.schedulers.timefmt import hms
from simfarm.workers.schedulers.types import (
    ClusterJobRequest,
    ClusterState,
    ClusterStatus,
    Partition,
    SubmittedJob,
)

log = logging.getLogger(__name__)
_SAFE_JOB_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# A licence as clusters name them (SLURM's remote licences: name@server).
_LICENSE_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}(@[A-Za-z0-9_.\-]{1,253})?$")


@dataclass
class BackendConfig:
    """Settings common to all backends.

    ``bin_dir`` prefixes the scheduler commands (e.g. ``/opt/lsf/10.1/linux/bin``);
    ``extra`` carries backend-specific settings documented on each backend class.
    """

    bin_dir: Path | None = None
    command_timeout_s: float = 30.0
    submit_retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(attempts=3))
    cancel_retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(attempts=4))
    env: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def choice(self, name: str, choices: Sequence[str], what: str | None = None) -> str:
        """``extra[name]`` when it is one of ``choices`` (the first is the default), else
        ValueError naming it (``what``, default ``name``)."""
        value = str(self.extra.get(name, choices[0]))
        if value not in choices:
            allowed = ", ".join(choices[:-1]) + " or " + choices[-1]
            raise ValueError(f"{what or name} must be {allowed}, not {value!r}")
        return value


def read_exit_code_file(job_dir: Path, native_id: str) -> int | None:
    """The exit code the job script recorded in ``<job_dir>/<native_id>.ec``, if any."""
    path = job_dir / f"{native_id}.ec"
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None
    try:
        return int(text.splitlines()[0]) if text else None
    except ValueError:
        log.warning("cluster job %s: unreadable exit-code file %s: %r", native_id, path, text)
        return None


class ClusterBackend(ABC):
    """A batch scheduler reached through its command-line tools."""

    kind: ClassVar[str]
    #: the job script's suffix; its template is ``<kind><suffix>.tmpl`` beside the module
    script_suffix = ".sh"
    # Expression that expands to the native job id inside the running script.
    native_id_expr: ClassVar[str]
    # Substrings of submit errors that say "try again" rather than "rejected".
    transient_submit_errors: ClassVar[tuple[str, ...]] = ()
    #: the scheduler reads the script's directive lines (#SBATCH, #BSUB, #PBS): the job
    #: directory, written on them, must be a plain path
    directives: ClassVar[bool] = True

    def __init__(self, config: BackendConfig | None = None) -> None:
        self.config = config or BackendConfig()
        self.runner = CommandRunner(bin_dir=self.config.bin_dir,
                                    timeout_s=self.config.command_timeout_s,
                                    env=self.config.env or None)

    # ----------------------------------------------------------------- scripts
    def script_path(self, request: ClusterJobRequest) -> Path:
        """Where the job script goes: the job directory, named after the job."""
        return request.job_dir / f"{request.job_id}.{self.kind}{self.script_suffix}"

    def job_name(self, request: ClusterJobRequest) -> str:
        """The name the cluster shows for this job (unique per attempt)."""
        return f"simfarm-{request.job_id}-{request.attempt}"

    def format_time(self, seconds: int) -> str:
        """A time limit as this scheduler writes it (``HH:MM:SS`` unless it says else)."""
        return hms(seconds)

    def transient(self, text: str) -> bool:
        """Whether a command's output says "try again" (:attr:`transient_submit_errors`)."""
        return any(marker in text for marker in self.transient_submit_errors)

    def script_context(self, request: ClusterJobRequest,
                       options: ClusterOptions) -> dict[str, Any]:
        """Variables for the template (``time``: the limit in :meth:`format_time`'s
        words, or None); backends add their formatted directives."""
        if self.directives:
            check_directive_path(request.job_dir)
        return {
            "job_id": request.job_id,
            "attempt": request.attempt,
            "job_name": self.job_name(request),
            "job_dir": str(request.job_dir),
            "cwd": request.cwd,
            "argv": list(request.argv),
            "env": sorted(request.env.items()),
            "opts": options,
            "native_id_expr": self.native_id_expr,
            "licenses": sorted(request.licenses.items()),
            "time": self.format_time(options.time_limit_s) if options.time_limit_s else None,
        }

    def render_script(self, request: ClusterJobRequest, options: ClusterOptions) -> str:
        """The job script text for ``request``."""
        _check_request(request)
        return render(self.template_name(), self.script_context(request, options))

    def template_name(self) -> str:
        """The template file this backend renders (beside its module)."""
        return f"{self.kind}{self.script_suffix}.tmpl"

    # ------------------------------------------------------------------ submit
    @abstractmethod
    def get_submit_command(self, script: Path, request: ClusterJobRequest,
                           options: ClusterOptions) -> tuple[list[str], Path | None]:
        """The submit argv and the file to feed on stdin (or ``None``)."""

    @abstractmethod
    def job_id_from_submit_output(self, out: str) -> str:
        """The native id printed by the submit command; raise ``ValueError`` if absent."""

    def find_submitted(self, request: ClusterJobRequest) -> str | None:
        """After an ambiguous submit failure (timeout): the job's id if it got in."""
        return None

    def submit(self, request: ClusterJobRequest, options: ClusterOptions) -> SubmittedJob:
        """Write the script into the job directory and submit it; returns the native id.

        Transient failures are retried with backoff; after a timeout the cluster is
        asked whether the job arrived anyway, so a retry never submits it twice.
        Raises :class:`SubmitError` when the cluster rejects the job.
        """
        text = self.render_script(request, options)
        request.job_dir.mkdir(parents=True, exist_ok=True)
        script = self.script_path(request)
        tmp = script.with_name(script.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.chmod(0o755)
        tmp.replace(script)
        native_id = with_retries(lambda: self._submit_once(script, request, options),
                                 self.config.submit_retry,
                                 what=f"job {request.job_id}: {self.kind} submit")
        log.info("job %s: submitted to %s as %s (%s)", request.job_id, self.kind, native_id,
                 script)
        return SubmittedJob(native_id=native_id, script_path=script, job_dir=request.job_dir)

    def _submit_once(self, script: Path, request: ClusterJobRequest,
                     options: ClusterOptions) -> str:
        argv, stdin = self.get_submit_command(script, request, options)
        try:
            result = self.runner.run(argv, stdin_path=stdin, cwd=request.job_dir)
        except CommandError as exc:
            if exc.transient:
                found = self._find_quietly(request)
                if found:
                    log.warning("job %s: submit timed out but cluster job %s exists; using it",
                                request.job_id, found)
                    return found
            raise
        return self._submit_result(result, request)

    def _submit_result(self, result: CommandResult, request: ClusterJobRequest) -> str:
        if not result.ok:
            text = result.stderr + result.stdout
            if self.transient(text):
                raise result.error("cluster busy")
            raise SubmitError(f"{self.kind} rejected job {request.job_id}: "
                              + (text.strip()[:500] or f"exit status {result.returncode}"))
        try:
            return self.job_id_from_submit_output(result.stdout)
        except ValueError:
            raise result.error(f"no job id in {self.kind} submit output {result.stdout!r}",
                               transient=False) from None

    def _find_quietly(self, request: ClusterJobRequest) -> str | None:
        try:
            return self.find_submitted(request)
        except CommandError as exc:
            log.warning("job %s: could not check for an earlier submission: %s",
                        request.job_id, exc)
            return None

    # ------------------------------------------------------------------ status
    @abstractmethod
    def get_status_command(self, native_ids: Sequence[str]) -> list[str]:
        """One argv that reports on all ``native_ids`` at once."""

    @abstractmethod
    def parse_status_output(self, result: CommandResult,
                            native_ids: Sequence[str]) -> dict[str, ClusterStatus | None]:
        """Statuses by native id for the jobs the cluster still lists.

        ``None`` marks a job that is listed in a state this code does not know (it is
        not gone). Jobs absent from the answer have left the queue. Raise
        :class:`CommandError` when the output cannot be trusted.
        """

    def status(self, native_ids: Sequence[str]) -> dict[str, ClusterStatus | None]:
        """Ask the cluster about all ``native_ids`` in one command (no retries here:
        the poller decides when to ask again)."""
        if not native_ids:
            return {}
        result = self.runner.run(self.get_status_command(native_ids))
        return self.parse_status_output(result, native_ids)

    # -------------------------------------------------------------- accounting
    def get_accounting_command(self, native_ids: Sequence[str]) -> list[str] | None:
        """An argv that reports finished jobs (``sacct``...), or ``None`` if the
        cluster keeps no such record."""
        return None

    def parse_accounting_output(self, result: CommandResult,
                                native_ids: Sequence[str]) -> dict[str, ClusterStatus]:
        """Final statuses from the accounting answer."""
        return {}

    def accounting(self, native_ids: Sequence[str]) -> dict[str, ClusterStatus]:
        """Final statuses the cluster's accounting knows for jobs gone from the queue."""
        argv = self.get_accounting_command(native_ids)
        if argv is None or not native_ids:
            return {}
        return self.parse_accounting_output(self.runner.run(argv), native_ids)

    def resolve_vanished(self, jobs: Sequence[tuple[str, Path]]) -> dict[str, ClusterStatus]:
        """Final statuses for jobs no longer in the queue: accounting first, then the
        ``<native_id>.ec`` exit-code file. Jobs with neither record are left out."""
        ids = [native_id for native_id, _ in jobs]
        try:
            found = self.accounting(ids)
        except CommandError as exc:
            log.warning("%s accounting unavailable for %s: %s", self.kind, ",".join(ids), exc)
            found = {}
        for native_id, job_dir in jobs:
            if native_id in found:
                continue
            code = read_exit_code_file(job_dir, native_id)
            if code is not None:
                state = ClusterState.COMPLETED if code == 0 else ClusterState.FAILED
                found[native_id] = ClusterStatus(
                    state, "EXITED", None if code == 0 else f"exit code {code}", code, "ec-file")
        return found

    def finalize(self, native_id: str, job_dir: Path, status: ClusterStatus) -> ClusterStatus:
        """Complete a final status with the exit code the job script recorded."""
        if not status.final or status.state is ClusterState.CANCELLED:
            return status
        code = read_exit_code_file(job_dir, native_id)
        if code is None:
            return status
        source = status.source + "+ec-file"
        if status.tentative or (status.state is ClusterState.COMPLETED and code != 0):
            if code == 0:
                return ClusterStatus(ClusterState.COMPLETED, status.native_state, None, 0, source)
            return ClusterStatus(ClusterState.FAILED, status.native_state, f"exit code {code}",
                                 code, source)
        if status.exit_code == code:
            return status
        return ClusterStatus(status.state, status.native_state, status.reason, code, source)

    # ------------------------------------------------------------------ cancel
    @abstractmethod
    def get_cancel_command(self, native_id: str) -> list[str]:
        """The argv that cancels one job."""

    def cancel_already_done(self, result: CommandResult) -> bool:
        """Whether a failed cancel only means the job had already ended."""
        return False

    def cancel(self, native_id: str) -> None:
        """Cancel a cluster job; a job that already ended is not an error."""
        def once() -> None:
            result = self.runner.run(self.get_cancel_command(native_id))
            if result.ok or self.cancel_already_done(result):
                return
            raise result.error(f"cancel of {native_id} failed",
                               transient=self.transient(result.stderr + result.stdout))

        with_retries(once, self.config.cancel_retry, what=f"{self.kind} cancel {native_id}")
        log.info("cluster job %s: cancel sent to %s", native_id, self.kind)

    # -------------------------------------------------------------- partitions
    @abstractmethod
    def get_partitions_commands(self) -> list[list[str]]:
        """The argv(s) whose outputs describe partitions and capacity."""

    @abstractmethod
    def parse_partitions(self, results: Sequence[CommandResult]) -> list[Partition]:
        """Partitions from the outputs of :meth:`get_partitions_commands`."""

    def cluster_name(self) -> str | None:
        """The cluster's own name, if the scheduler has one to ask for (None: it has not;
        workers then name it in ``scheduler_cluster``)."""
        return None

    def partitions(self) -> list[Partition]:
        """Partitions/queues with nodes, cores and memory, as the cluster reports them."""
        results = [
            with_retries(functools.partial(self._checked, argv), self.config.cancel_retry,
                         what=f"{self.kind} {argv[0]}")
            for argv in self.get_partitions_commands()
        ]
        return self.parse_partitions(results)

    def _checked(self, argv: list[str]) -> CommandResult:
        result = self.runner.run(argv)
        if not result.ok:
            raise result.error(f"{argv[0]} failed")
        return result


def _check_request(request: ClusterJobRequest) -> None:
    if not _SAFE_JOB_ID.match(request.job_id):
        raise InvalidOptions(f"job id {request.job_id!r} cannot name cluster files")
    if not request.argv or not request.argv[0]:
        raise InvalidOptions("a cluster job needs a program to run")
    for name in request.env:
        if not _ENV_NAME.match(name):
            raise InvalidOptions(f"environment variable name {name!r} is not valid")
    for name, count in request.licenses.items():
        if not _LICENSE_NAME.match(name) or not 0 < count <= 1_000_000:
            raise InvalidOptions(f"licence {name!r}: {count} cannot be passed to the cluster")
    for value in (*request.argv, *request.env.values(), request.cwd or "", str(request.job_dir)):
        if "\x00" in value:
            raise InvalidOptions("NUL bytes cannot be passed to a cluster job")
