"""The app's "connect" option: a vector database opened by URI, only where the configuration allows it.

A server shared with a room must not let a participant read any path of the server, so a URI is opened
only when an allowlisted prefix covers it (:func:`embgeo.analysis.io.allowed_uri`: the path resolved, so
``../`` and links out of the folder fail; a Qdrant server by exact host and port). The prefixes come
from ``DashboardApp(allow_uris=[...])`` in a notebook, else from :data:`ALLOW_ENV`, which
``embgeo serve --allow-uri PREFIX`` sets in every kernel it starts. With none, the field is disabled and
says how to turn it on. The collection is read in the background (its pages move the bar; Cancel stops
between two pages) by the reader of the URI's scheme, given the checked canonical URI, and errors are
one line.
"""

from __future__ import annotations

import html
import os
import re

import ipywidgets as W

from embgeo.analysis import EmbeddingInputError
from embgeo.analysis import io

from ._tasks import TaskRunner

#: Allowlisted URI prefixes, one a line (or ``os.pathsep``-separated), set by ``embgeo serve --allow-uri``.
ALLOW_ENV = "EMBGEO_ALLOW_URIS"
PLACEHOLDER = "lancedb:///data/lance/docs, chroma:///data/chroma/docs, qdrant://host:6333/docs ..."
#: Where ``os.pathsep`` is ':' (POSIX), it separates prefixes only before another scheme (``a:lancedb://``),
#: since every URI holds ':' itself.
_POSIX_SEPARATOR = re.compile(r":(?=[A-Za-z][A-Za-z0-9+.-]*://)")


def allow_uris_from_env(environ=None) -> tuple[str, ...]:
    """The prefixes in :data:`ALLOW_ENV` (newline- or ``os.pathsep``-separated); none when unset."""
    text = (os.environ if environ is None else environ).get(ALLOW_ENV, "")
    parts = []
    for line in text.splitlines():
        parts += _POSIX_SEPARATOR.split(line) if os.pathsep == ":" else line.split(os.pathsep)
    return tuple(p.strip() for p in parts if p.strip())


def load_allowed(uri: str, prefixes, progress=None):
    """The collection ``uri`` names, read by its scheme's reader, if ``prefixes`` allow it; else an
    EmbeddingInputError. Messages name the URI as given, not its resolved form."""
    uri = uri.strip()
    canonical = io.allowed_uri(uri, prefixes)
    reader = getattr(io, io.SCHEMES[canonical.split("://", 1)[0]][0])
    try:
        return reader(canonical, progress=progress)
    except EmbeddingInputError as exc:
        raise EmbeddingInputError(str(exc).replace(canonical, uri)) from None
    except FileNotFoundError:
        raise EmbeddingInputError(f"{uri}: no such database folder or file (nothing was created)") from None


class ConnectBar(W.VBox):
    """A URI field and a Connect button; ``on_loaded(set)`` gets the collection read in the background.

    Parameters
    ----------
    allow_uris : sequence of str
        Allowlisted URI prefixes; empty turns the field off.
    on_loaded : callable
        Called with the EmbeddingSet read (in the worker thread when ``background``).
    background : bool
        Read in a worker thread (the app) or inline (tests).
    """

    def __init__(self, allow_uris, on_loaded, *, background: bool = True):
        self.allow_uris = tuple(str(p).strip() for p in allow_uris or () if str(p).strip())
        self.on_loaded = on_loaded
        self.runner = TaskRunner(background=background)
        off = not self.allow_uris
        self.field = W.Text(placeholder=PLACEHOLDER, description="database URI", disabled=off,
                            style={"description_width": "initial"}, layout=W.Layout(width="560px"))
        self.button = W.Button(description="Connect", icon="plug", disabled=off,
                               tooltip="Read the collection (in pages) and open the dashboard on it")
        self.progress = W.IntProgress(value=0, min=0, max=100, layout=W.Layout(width="160px", display="none"))
        self.cancel_button = W.Button(description="Cancel", icon="stop", layout=W.Layout(width="90px", display="none"),
                                      tooltip="Stop reading at the next page")
        self.status = W.Label("")
        self.message = W.HTML("")
        self.button.on_click(lambda _: self.connect())
        self.cancel_button.on_click(lambda _: self.runner.cancel())
        self.runner.observe(self._on_progress, "progress")
        self.runner.observe(self._on_status, "status")
        self.runner.observe(self._on_busy, "busy")
        self.runner.observe(self._on_error, "error")
        self.help = W.HTML(_help(self.allow_uris))
        super().__init__([W.HBox([self.field, self.button, self.progress, self.cancel_button, self.status]),
                          self.help, self.message])

    def connect(self, uri: str | None = None) -> None:
        """Check ``uri`` (default: the field's) against the allowlist, then read it in the background."""
        uri = (self.field.value if uri is None else uri).strip()
        self.message.value = ""
        try:
            if not uri:
                raise EmbeddingInputError("type a database URI first, e.g. lancedb:///data/lance/docs")
            io.allowed_uri(uri, self.allow_uris)  # refused here, before any work, with one line
        except EmbeddingInputError as exc:
            self._show_error(html.escape(f"Input problem: {exc}"))
            return
        runner = self.runner
        self.runner.submit(f"reading {uri}", lambda: load_allowed(
            uri, self.allow_uris, progress=runner.progress_between(5, 95, f"reading {uri}...")), self.on_loaded)

    def _show_error(self, line: str) -> None:
        self.message.value = ("<div style='color:#a00;background:#fee;border:1px solid #e99;padding:6px 10px;"
                              f"border-radius:4px'>{line}</div>") if line else ""

    def _on_progress(self, change) -> None:
        self.progress.value = change.new

    def _on_status(self, change) -> None:
        self.status.value = change.new

    def _on_busy(self, change) -> None:
        self.button.disabled = change.new or not self.allow_uris
        self.progress.layout.display = self.cancel_button.layout.display = None if change.new else "none"

    def _on_error(self, change) -> None:
        self._show_error(change.new)  # already one escaped line (see _tasks.describe)


def _help(allow_uris) -> str:
    style = "color:#555;font-size:12px"
    if not allow_uris:
        return (f"<span style='{style}'>Connecting to a vector database is off. To turn it on, start the "
                "server with <code>embgeo serve --allow-uri PREFIX</code> (repeatable, e.g. "
                "<code>--allow-uri lancedb:///data/lance</code>), or in a notebook pass "
                "<code>DashboardApp(allow_uris=[...])</code>.</span>")
    shown = ", ".join(f"<code>{html.escape(p)}</code>" for p in allow_uris)
    return (f"<span style='{style}'>Connect reads a collection under {shown} in pages (LanceDB, Chroma, Qdrant, "
            "Milvus Lite, a saved Hugging Face dataset); the dashboard then opens on it, and Index health can "
            "measure the database's own search.</span>")
