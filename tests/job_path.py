"""Which simfarm files one command job crosses, counted by following the calls.

Runs one ``["true"]`` command job through the real code in one process against a private
``redis-server``: ``POST /api/v1/jobs`` on the gateway app (Flask test client), one
dispatcher round that places it (the Celery send is captured instead of sent), then the
``run_job`` task body that claims, runs and records it. A profiler notes the file of every
Python function called on the way (threads included); start-up (building the app and the
worker's context, registering the node) is not traced. docs/architecture.md's job path
lists the same files; tests/test_architecture.py compares the two.

``python -m tests.job_path`` prints the files in the order first called, by stage;
``python -m tests.job_path --write-docs`` writes that list into docs/architecture.md.
"""

from __future__ import annotations

import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import simfarm

ROOT = Path(simfarm.__file__).resolve().parent.parent
PACKAGE = Path(simfarm.__file__).resolve().parent


class CallTracer:
    """Records, in first-call order, the simfarm source files whose functions run."""

    def __init__(self) -> None:
        self.files: list[str] = []
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def _profile(self, frame: FrameType, event: str, _arg: Any) -> None:
        if event != "call":
            return
        name = frame.f_code.co_filename
        if name in self._seen or not name.startswith(str(PACKAGE)):
            return
        with self._lock:
            if name not in self._seen:
                self._seen.add(name)
                self.files.append(Path(name).resolve().relative_to(ROOT).as_posix())

    @contextmanager
    def tracing(self) -> Iterator[None]:
        threading.setprofile(self._profile)
        sys.setprofile(self._profile)
        try:
            yield
        finally:
            sys.setprofile(None)
            threading.setprofile(None)  # type: ignore[arg-type]


def trace_one_job() -> dict[str, list[str]]:
    """Files per stage (``submit``, ``dispatch``, ``run``) for one command job."""
    from simfarm.common.settings import Settings
    from simfarm.gateway.app import create_app
    from simfarm.workers.dispatcher import Dispatcher
    from simfarm.workers.execution import execute
    try:
        from simfarm.workers.main import build_context
    except ImportError:  # before the worker's parts were chosen in workers.main
        from simfarm.workers.context import build_context  # type: ignore[no-redef]
    from simfarm.workers.node_agent import NodeAgent
    from tests.conftest import RedisServer
    from tests.helpers import free_port

    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp) / "redis", appendonly=False)
        server.start()
        try:
            settings = Settings(redis_url=server.url, state_dir=Path(tmp) / "state",
                                node_name="trace-node", node_cores=2, worker_concurrency=2,
                                gateway_port=free_port())
            app = create_app(settings)
            ctx = build_context(settings)
            NodeAgent(ctx).beat()
            sent: list[tuple[str, int]] = []

            def message(node: Any, job_id: str, name: str | None, attempt: int) -> str:
                # the task message the scheduling step pushes on the node's queue (no
                # Celery worker reads it here: the run stage below is traced instead)
                sent.append((job_id, attempt))
                return "{}"

            dispatcher = Dispatcher(ctx, message)
            dispatcher.lock.acquire_or_renew()
            dispatcher.dispatch_once()  # a first round builds the policy's view: start-up
            stages: dict[str, list[str]] = {}
            with app.test_client() as http:
                stages["submit"] = _traced(lambda: _submit(http))
            stages["dispatch"] = _traced(lambda: _round(dispatcher))
            assert sent, "the dispatcher placed nothing"
            job_id, attempt = sent[0]
            stages["run"] = _traced(lambda: _run(execute, ctx, job_id, attempt))
            dispatcher.lock.release()
            ctx.redis.close()
            return stages
        finally:
            server.stop()


def _traced(step: Callable[[], None]) -> list[str]:
    tracer = CallTracer()
    with tracer.tracing():
        step()
    return tracer.files


def _submit(http: Any) -> None:
    answer = http.post("/api/v1/jobs", json={"argv": ["true"], "name": "trace"})
    assert answer.status_code == 201, answer.get_data(as_text=True)


def _round(dispatcher: Any) -> None:
    dispatcher.reap_lost()
    dispatcher.gates.run_once()
    dispatcher.dispatch_once()


def _run(execute: Any, ctx: Any, job_id: str, attempt: int) -> None:
    state = execute(ctx, job_id, attempt)
    assert str(state) == "completed", state


DOC = ROOT / "docs" / "architecture.md"
BEGIN, END = "<!-- job-path:begin -->", "<!-- job-path:end -->"


def render(stages: dict[str, list[str]]) -> str:
    """The job path as the Markdown list docs/architecture.md holds."""
    seen: set[str] = set()
    lines: list[str] = []
    for stage, files in stages.items():
        new = sorted(f for f in files if f not in seen)  # sorted: threads interleave
        seen.update(new)
        lines.append(f"- **{stage}** ({len(new)} more): " + ", ".join(f"`{f}`" for f in new))
    lines.append(f"- **in all**: {len(seen)} files")
    return "\n".join(lines)


def documented() -> str:
    """The job path as docs/architecture.md holds it now."""
    text = DOC.read_text()
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip()


def write_docs(stages: dict[str, list[str]]) -> None:
    text = DOC.read_text()
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    DOC.write_text(f"{head}{BEGIN}\n{render(stages)}\n{END}{tail}")


def main() -> None:
    stages = trace_one_job()
    if "--write-docs" in sys.argv[1:]:
        write_docs(stages)
    print(render(stages))


if __name__ == "__main__":
    main()
