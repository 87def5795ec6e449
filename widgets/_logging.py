"""Where the widgets' errors go: the server's log, through :mod:`logging`, never the kernel's stderr.

In a Jupyter or Voila kernel, ``sys.stderr`` is ipykernel's stream: whatever is written to it (a
``traceback.print_exc()``, or a log record that reaches Python's last-resort handler) is sent over
the websocket to the browser, server paths and code included. ipykernel also captures file
descriptor 2 and forwards it the same way; the descriptor that still reaches the server's log is the
copy it keeps (``sys.stderr._original_stdstream_copy``). :func:`log_failure` writes there, so the
page shows only its one-line message (:func:`page_message`: an input problem as itself, anything else
a generic line, since an unexpected exception's text can hold server paths, file names or data) and
the traceback lands in the server's log.

Outside a kernel (a script, the tests) the ``embgeo.widgets`` logger has only a ``NullHandler``:
records propagate to whatever logging the program configured, and nothing is printed by default.
"""

from __future__ import annotations

import io
import logging
import os
import sys

from embgeo.analysis import EmbeddingInputError

log = logging.getLogger("embgeo.widgets")
log.addHandler(logging.NullHandler())  # a library's logger: no last-resort printing to stderr

_server_handler: logging.Handler | None = None


def server_log_stream():
    """A text stream on the server's log when running in an ipykernel, else None.

    With fd capture on (ipykernel's default) that is the kept copy of the original descriptor 2;
    with it off, descriptor 2 itself still is the server's (only ``sys.stderr`` is redirected).
    """
    fd = getattr(sys.stderr, "_original_stdstream_copy", None)
    if fd is None:
        if not type(sys.stderr).__module__.startswith("ipykernel") or sys.__stderr__ is None:
            return None
        fd = sys.__stderr__.fileno()
    return io.TextIOWrapper(io.FileIO(os.dup(fd), "w"), line_buffering=True, errors="replace")


def route_to_server_log() -> None:
    """In a kernel, send the ``embgeo.widgets`` records to the server's log, and only there (once)."""
    global _server_handler
    if _server_handler is not None:
        return
    stream = server_log_stream()
    if stream is None:
        return
    _server_handler = logging.StreamHandler(stream)
    _server_handler.setFormatter(logging.Formatter(
        "[embgeo %(levelname)s %(asctime)s kernel pid %(process)d] %(name)s: %(message)s"))
    log.addHandler(_server_handler)
    log.propagate = False  # a root handler set up in the notebook would write to the browser


#: What the page says about a failure that is not an input problem (its text stays in the server's log).
UNEXPECTED = "Something went wrong ({kind}); the details are in the server's log."


def page_message(exc: BaseException) -> str:
    """The page's one line about ``exc`` (plain text, to be escaped): an :class:`EmbeddingInputError`
    (embgeo's errors about what the user gave or chose) as itself; anything else only its kind."""
    if isinstance(exc, EmbeddingInputError):
        return str(exc)
    return UNEXPECTED.format(kind=type(exc).__name__)


def log_failure(what: str, exc: BaseException) -> None:
    """Log a failure: an input problem as one warning line, anything else with its traceback."""
    route_to_server_log()
    if isinstance(exc, EmbeddingInputError):
        log.warning("%s: %s", what, exc)
    else:
        log.error("%s failed: %s: %s", what, type(exc).__name__, exc, exc_info=exc)
