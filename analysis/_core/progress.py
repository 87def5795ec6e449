"""Progress of long work, reported to a terminal or notebook bar, to a callback, or to nobody.

Every long loop (the tiles of a k-NN search, the lists of the approximate join, the parts of a report)
takes a ``progress`` argument and reports through one :class:`Progress`:

* ``None``: a bar when the caller judges the work long (``auto=True``), else nothing;
* ``True`` / ``False``: a tqdm bar (terminal or notebook) / nothing;
* a callable ``progress(done, total, description)``: called after every step, from the thread doing
  the work. A dashboard moves its own bar with it; raising :class:`Cancelled` (or any exception)
  inside it stops the work at the next step, with nothing half-written.
"""

from __future__ import annotations

from typing import Callable


class Cancelled(Exception):
    """Raised (by a progress callback, on request) to stop long work between two steps."""


class Progress:
    """Counts steps of one piece of work and reports them (see the module docstring).

    Parameters
    ----------
    progress : None, bool or callable
    total : int
        Steps the work will take.
    description : str
        What is being done ("exact 32-NN self-join (cosine)").
    unit : str
        Name of one step, for the bar.
    auto : bool
        Show a bar for ``progress=None``.
    """

    def __init__(self, progress, total: int, description: str, *, unit: str = "step", auto: bool = False):
        self.total, self.description, self.done = int(total), description, 0
        self._bar = None
        self._callback: Callable | None = None
        if callable(progress):
            self._callback = progress
            progress(0, self.total, description)
        elif progress or (progress is None and auto):
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total, desc=description, unit=unit, leave=False)

    def update(self, steps: int = 1) -> None:
        self.done += steps
        if self._bar is not None:
            self._bar.update(steps)
        if self._callback is not None:
            self._callback(self.done, self.total, self.description)

    def report(self, done: float, description: str | None = None) -> None:
        """Set the work done so far (fractions of a step allowed: part of one index built) and report it."""
        self.done = done
        if description is not None:
            self.description = description
        if self._bar is not None:
            self._bar.n = done
            self._bar.set_description(self.description, refresh=True)
        if self._callback is not None:
            self._callback(self.done, self.total, self.description)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def sub_progress(progress, done: float, total: float):
    """A callback for one step of a larger piece of work: it reports ``done + share`` of ``total``.

    A report whose parts count as steps passes it to the neighbour search, so the caller's one
    callback sees the search's tiles move it from ``done`` to ``done + 1``. ``progress`` that is not a
    callable (None, True, False) is passed through unchanged.
    """
    if not callable(progress):
        return progress

    def report(inner_done: float, inner_total: float, description: str) -> None:
        share = inner_done / inner_total if inner_total else 1.0
        progress(done + share, total, description)

    return report
