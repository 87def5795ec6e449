"""Long work off the page's thread: one task at a time, with progress that moves, and a way to cancel.

:class:`TaskRunner` holds the traits the view mirrors (``progress`` 0-100, ``status``, ``busy``,
``error``). A task reports its steps with :meth:`TaskRunner.step`; long analysis calls get
:meth:`TaskRunner.progress_between` as their ``progress`` callback, so the bar moves tile by tile
inside a k-NN search. :meth:`TaskRunner.cancel` makes the next step (or the next tile) raise
:class:`~embgeo.analysis.Cancelled`: the task stops, nothing half-computed is cached, and the page says
it was cancelled. Errors become a one-line message for the page (an input problem as itself, anything
else a generic line: :func:`._logging.page_message`); the traceback goes to the server's log through
:mod:`logging` (:func:`._logging.log_failure`), never to the kernel's stderr, which ipykernel forwards
to the browser.

While a task runs, ``heartbeat`` counts up every :data:`HEARTBEAT_S` seconds and the view sends a
message for each: a shared server culls a kernel after ``--idle-timeout`` seconds without one, and one
step of a task can be silent for minutes (an index built on a million rows, a numba compile, any step on
a machine that 8 sessions share). A running task is not idleness.
"""

from __future__ import annotations

import html
import threading
from typing import Callable

import traitlets

from embgeo.analysis import Cancelled, EmbeddingInputError

from ._logging import log_failure, page_message

#: Seconds between two heartbeats of a running task (well under any sensible --idle-timeout).
HEARTBEAT_S = 10.0


class TaskRunner(traitlets.HasTraits):
    """Runs tasks one at a time, inline or in a worker thread, and reports on them through traits."""

    status = traitlets.Unicode("")
    progress = traitlets.Int(0)
    busy = traitlets.Bool(False)
    error = traitlets.Unicode("")
    #: Labels of the tasks waiting for the running one, in order (the page says they wait, and for what).
    queued = traitlets.Tuple()
    #: Counts up while a task runs (see the module docstring).
    heartbeat = traitlets.Int(0)

    def __init__(self, *, background: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.background = background
        self._lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._cancel = threading.Event()

    def submit(self, label: str, fn: Callable[[], object], done: Callable[[object], None] | None = None,
               failed: Callable[[], None] | None = None) -> None:
        """Run ``fn`` with the busy/progress/status traits set; ``done`` gets its result.

        A failure lands in ``error`` (and calls ``failed``), a cancellation in ``status``; tasks wait
        for each other (a lock), so no result is computed twice.
        """
        def work():
            self._take_turn(label)
            beating = self._beat_while_running()
            try:
                self._cancel.clear()
                self.busy, self.error, self.status, self.progress = True, "", f"{label}...", 5
                try:
                    result = fn()
                except Cancelled:
                    self.status, self.progress, self.busy = f"{label}: cancelled", 0, False
                    if failed is not None:
                        failed()
                    return
                except Exception as exc:  # shown in the page; the traceback goes to the server log
                    self.error = describe(exc)
                    log_failure(label, exc)
                    self.status, self.progress, self.busy = f"{label} failed", 0, False
                    if failed is not None:
                        failed()
                    return
                self.status, self.progress, self.busy = f"{label}: done", 100, False
            finally:
                beating.set()
                self._lock.release()
            if done is not None:
                try:
                    done(result)
                except Exception as exc:
                    self.error = describe(exc)
                    log_failure(f"{label} (showing the result)", exc)

        if self.background:
            threading.Thread(target=work, daemon=True).start()
        else:
            work()

    def _beat_while_running(self) -> threading.Event:
        """Start counting ``heartbeat`` up every HEARTBEAT_S seconds (in the background only); the
        returned event stops it."""
        stop = threading.Event()

        def beat():
            while not stop.wait(HEARTBEAT_S):
                self.heartbeat += 1

        if self.background:
            threading.Thread(target=beat, daemon=True, name="embgeo-heartbeat").start()
        return stop

    def _take_turn(self, label: str) -> None:
        """Acquire the task lock; while another task holds it, ``label`` is listed in ``queued``."""
        if self._lock.acquire(blocking=False):
            return
        with self._queue_lock:  # tasks join and leave the queue from their own threads
            self.queued = (*self.queued, label)
        self._lock.acquire()
        with self._queue_lock:
            waiting = list(self.queued)
            waiting.remove(label)
            self.queued = tuple(waiting)

    def cancel(self) -> None:
        """Ask the running task to stop at its next step or tile."""
        if self.busy:
            self._cancel.set()
            self.status = "cancelling..."

    def step(self, progress: int, status: str) -> None:
        """Report a step of the running task (and stop here if it was cancelled)."""
        if self._cancel.is_set():
            raise Cancelled(status)
        self.progress, self.status = max(self.progress, progress), status

    def progress_between(self, low: int, high: int, status: str, *, say_steps: bool = False):
        """A ``progress(done, total, description)`` callback that moves the bar from ``low`` to ``high``
        as an analysis call works through its tiles (and raises Cancelled when asked to stop).
        ``say_steps`` shows each step's own description as the status (which index is being built)."""
        self.step(low, status)

        def report(done: float, total: float, description: str) -> None:
            if self._cancel.is_set():
                raise Cancelled(description)
            if say_steps and description != self.status:
                self.status = description
            share = done / total if total else 1.0
            value = int(low + (high - low) * min(1.0, share))
            if value != self.progress:
                self.progress = value
        return report


def describe(exc: Exception) -> str:
    """The page's one line (HTML-escaped, no traceback): ``Input problem: ...`` for an
    EmbeddingInputError, a generic line for anything else, whose text may hold server paths."""
    text = page_message(exc)
    return html.escape(f"Input problem: {text}" if isinstance(exc, EmbeddingInputError) else text)
