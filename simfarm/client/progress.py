"""The progress bar of ``wait``/``wait_all(progress=True)``: tqdm's ``auto`` flavour (a
widget in Jupyter, text in a terminal), jobs finished out of all, with the states
counted (``completed 3 · failed 1 · running 2 · pending 4``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from simfarm.client.flows import WaitTracker

_ORDER = ("completed", "failed", "cancelled", "running", "scheduled", "pending")


def describe(counts: dict[str, int]) -> str:
    """The states counted, final ones first."""
    return " · ".join(f"{state} {counts[state]}" for state in _ORDER if counts.get(state))


class WaitProgress:
    """A tqdm bar fed by the wait flow's tracker (a context manager)."""

    def __init__(self, total: int, desc: str = "jobs") -> None:
        from tqdm.auto import tqdm

        self.bar: Any = tqdm(total=total, desc=desc, unit="job", dynamic_ncols=True)
        self._shown = ""

    def update(self, tracker: WaitTracker) -> None:
        """Show how many jobs ended and how many are in each state."""
        done = len(tracker.final)
        if done != self.bar.n:
            self.bar.update(done - self.bar.n)
        text = describe(tracker.counts())
        if text != self._shown:
            self._shown = text
            self.bar.set_postfix_str(text, refresh=True)

    def __enter__(self) -> WaitProgress:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.bar.close()


@contextmanager
def wait_progress(show: bool, job_ids: Sequence[str]
                  ) -> Iterator[Callable[[WaitTracker], None] | None]:
    """The ``on_change`` of a wait flow: a bar's update while the block runs (closed
    after it), or None when ``show`` is false."""
    if not show:
        yield None
        return
    with WaitProgress(len(dict.fromkeys(job_ids))) as bar:
        yield bar.update
