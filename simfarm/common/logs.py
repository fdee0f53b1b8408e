"""Logging set-up shared by every simfarm process: text or JSON lines
(``SIMFARM_LOG_FORMAT=json``), each carrying the job id and the node name.

The job id comes, in this order, from ``extra={"job_id": ...}``, from the
:func:`job_context` of the current thread/task, or from simfarm's message convention
``"job <id>: ..."``. The node is the process's ``SIMFARM_NODE_NAME`` (the host name by
default).
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s [%(node)s] %(name)s %(message)s"
_current_job: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "simfarm_job", default=None
)
_JOB_IN_MESSAGE = re.compile(r"^job ([A-Za-z0-9_\-]{1,128})\b")
_JOB_IN_ARGS = re.compile(r"\bjob=([A-Za-z0-9_\-]{1,128})")
# Attributes every LogRecord has; anything else was passed with ``extra=`` and is kept.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "job_id", "node",
}


@contextmanager
def job_context(job_id: str) -> Iterator[None]:
    """Within this block, log lines of this thread/task carry ``job_id``."""
    token = _current_job.set(job_id)
    try:
        yield
    finally:
        _current_job.reset(token)


class ContextFilter(logging.Filter):
    """Adds ``job_id`` and ``node`` to every record."""

    def __init__(self, node: str) -> None:
        super().__init__()
        self.node = node

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "job_id", None):
            job_id = _current_job.get()
            if job_id is None:
                match = _JOB_IN_MESSAGE.match(record.getMessage())
                job_id = match.group(1) if match else None
            data = getattr(record, "data", None)
            if job_id is None and isinstance(data, dict):
                # Celery's "Task simfarm.run_job[...] received/succeeded" lines carry the
                # task's argsrepr "(job=<id>, attempt=...)" in ``data``.
                match = _JOB_IN_ARGS.search(str(data.get("args", "")))
                job_id = match.group(1) if match else None
            record.job_id = job_id
        if not getattr(record, "node", None):
            record.node = self.node
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, job_id, node, extras."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "job_id": getattr(record, "job_id", None),
            "node": getattr(record, "node", None),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value if isinstance(value, str | int | float | bool) else repr(value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure_logging(
    level: int | str = logging.INFO, fmt: LogFormat | None = None, node: str | None = None
) -> None:
    """Send the root logger's records to stderr as text or JSON lines.

    ``fmt`` and ``node`` default to the settings (``SIMFARM_LOG_FORMAT``,
    ``SIMFARM_NODE_NAME``). Replaces handlers installed by an earlier call.
    """
    if fmt is None or node is None:
        from simfarm.common.settings import Settings

        settings = Settings()
        fmt = fmt or settings.log_format
        node = node or settings.node_name
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter(node))
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.set_name("simfarm")
    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == "simfarm" or isinstance(old, logging.StreamHandler):
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)  # warnings become records in the same format
