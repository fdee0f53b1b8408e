"""The shape of the dispatcher leader's side jobs (farm time series, notifications,
licence servers): each runs in a thread of its own, so a slow round never delays
dispatch, and works only while this worker leads (it checks every ``check_s``)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class LeaderThread:
    """Calls :meth:`lead` every ``check_s`` while ``is_leader()`` holds, and
    :meth:`not_leading` while it does not. A round that raises is logged (``failure``
    names it) and followed by :meth:`failed`; the next round comes as usual."""

    #: the thread in log lines (default: its name) and what went wrong when a round raised
    what = ""
    failure = "round failed"

    def __init__(self, name: str, node_name: str, is_leader: Callable[[], bool],
                 check_s: float) -> None:
        self.name = name
        self.node_name = node_name
        self.is_leader = is_leader
        self.check_s = check_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"simfarm-{name}", daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (waiting a few seconds for a round under way)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def lead(self, now: float) -> None:
        """One round while this worker leads (``now``: wall clock)."""

    def not_leading(self) -> None:
        """This worker does not lead (now): forget what a term knew."""

    def failed(self) -> None:
        """The last round raised."""

    def _loop(self) -> None:
        while not self._stop.wait(self.check_s):
            if not self.is_leader():
                self.not_leading()
                continue
            try:
                self.lead(time.time())
            except Exception:
                log.exception("%s on %s: %s", self.what or self.name.replace("-", " "),
                              self.node_name, self.failure)
                self.failed()
