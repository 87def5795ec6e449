"""The Voila app: pick a bundled sample, upload a file or connect to a vector database (an allowlisted URI),
and get a :class:`Dashboard` for it."""

from __future__ import annotations

import html

import ipywidgets as W

from embgeo.analysis import EmbeddingSet

from ._connect import ConnectBar, allow_uris_from_env
from ._logging import log_failure, page_message
from ._upload import MAX_UPLOAD_BYTES, UPLOAD_ENV, UPLOAD_TYPES, CheckedUpload, load_upload, max_upload_bytes
from .dashboard import Dashboard

__all__ = ["DashboardApp", "MAX_UPLOAD_BYTES", "SYNTHETIC", "UPLOAD_ENV", "load_choice", "load_upload",
           "max_upload_bytes", "sample_choices"]

#: Shown when no bundled sample is installed: a synthetic cloud with known anisotropy and rogue dims.
SYNTHETIC = "synthetic (anisotropic, 3,000 x 128)"


def sample_choices() -> list[str]:
    """Bundled samples that are installed, then the synthetic fallback."""
    from embgeo.analysis import datasets

    return list(datasets.list_samples(installed=True)) + [SYNTHETIC]


def load_choice(name: str) -> EmbeddingSet:
    from embgeo.analysis import datasets

    if name == SYNTHETIC:
        x = datasets.make_anisotropic(3000, 128, n_rogue=2, random_state=0)
        return EmbeddingSet(x, name="synthetic anisotropic")
    return datasets.load_sample(name)


def resolve_choice(name: str | None, choices: list[str]) -> str | None:
    """The picker's choice that ``name`` names: itself, or ``"synthetic"`` for the synthetic cloud."""
    if name in choices:
        return name
    if name == "synthetic" and SYNTHETIC in choices:
        return SYNTHETIC
    return None


class DashboardApp(W.VBox):
    """A dataset picker, a file upload and a database URI field above a :class:`Dashboard`.

    Parameters
    ----------
    initial : str, optional
        Sample to open first (default: ``"words"`` when installed, else the first choice).
    background : bool
        Passed to :class:`Dashboard` (and reads a connected database in a worker thread).
    allow_uris : sequence of str, optional
        Database URI prefixes the "connect" field may open (see :mod:`._connect`), e.g.
        ``["lancedb:///data/lance", "qdrant://localhost:6333"]``. Default: those ``embgeo serve
        --allow-uri`` put in ``EMBGEO_ALLOW_URIS``; none turns the field off.
    """

    def __init__(self, initial: str | None = None, *, background: bool = True, allow_uris=None):
        choices = sample_choices()
        default = "words" if "words" in choices else choices[0]
        asked, resolved = initial, resolve_choice(initial, choices)
        initial = resolved or default
        self.background = background
        self.max_upload_bytes = max_upload_bytes()
        self.picker = W.Dropdown(options=choices, value=initial, description="dataset",
                                 layout=W.Layout(width="340px"))
        self.upload = CheckedUpload(self.open_upload, lambda exc: self._fail(exc, "an upload"),
                                    accept=",".join(UPLOAD_TYPES), max_bytes=self.max_upload_bytes,
                                    description=f"Upload (<= {self.max_upload_bytes // 2**20} MB)")
        self.message = W.HTML("")
        self.connect_bar = ConnectBar(allow_uris_from_env() if allow_uris is None else allow_uris, self._show,
                                      background=background)
        self.body = W.VBox()
        self.picker.observe(lambda ch: self.open_sample(ch.new), "value")
        limit_mb = self.max_upload_bytes // 2**20
        help_ = W.HTML(f"<span style='color:#555;font-size:12px'>Upload {', '.join(UPLOAD_TYPES)}: one vector per "
                       "row (parquet/csv: a list column or numeric columns; a <code>text</code> column labels "
                       f"points). <b>At most {limit_mb} MB</b>; load a larger file in a notebook with "
                       "<code>embgeo.analysis.io.load</code>.</span>")
        super().__init__([W.HBox([self.picker, self.upload]), help_, self.connect_bar, self.message, self.body])
        self.open_sample(initial)
        if asked is not None and resolved is None:  # said, not silently replaced
            self.message.value = (f"<div class='embgeo-error'>There is no sample {html.escape(str(asked))!r} here, so "
                                  f"{html.escape(initial)!r} is shown; the samples are "
                                  f"{html.escape(', '.join(choices))}.</div>")

    def _show(self, data, *, sample: str | None = None) -> None:
        """Show ``data`` in a new dashboard; ``sample`` names the picker's choice it came from (None:
        an upload or a database, and the picker goes blank, so choosing any sample opens it again)."""
        self.message.value = self.connect_bar.message.value = ""
        previous = getattr(self, "dashboard", None)
        self.dashboard = Dashboard(data, background=self.background)
        self.dashboard.page_root = self  # once the page is built, the picker and messages are re-sent too
        # a layer opened in the Layers tab replaces the set too: the picker no longer names it
        self.dashboard.on_open_set = lambda _data: self._blank_picker()
        self.body.children = [self.dashboard]
        if previous is not None:  # its widgets (figures included) would otherwise stay registered
            previous.close()
        if sample is None:
            self._blank_picker()

    def _blank_picker(self) -> None:
        self.picker.value = None  # open_sample ignores the change this fires

    def _fail(self, exc: Exception, what: str = "opening a dataset") -> None:
        log_failure(what, exc)  # the server's log; the page gets the one line below (input problems as
        # they are, anything else generic: its text may name server paths)
        self.message.value = ("<div style='color:#a00;background:#fee;border:1px solid #e99;padding:6px 10px;"
                              f"border-radius:4px'>{html.escape(page_message(exc))}</div>")

    def open_sample(self, name: str | None) -> None:
        if name is None:  # the picker went blank (see _show)
            return
        try:
            self._show(load_choice(name), sample=name)
        except Exception as exc:
            self._fail(exc, f"opening the sample {name!r}")

    def open_upload(self, filename: str, content: bytes) -> None:
        try:
            self._show(load_upload(filename, content, self.max_upload_bytes))
        except Exception as exc:
            self._fail(exc, f"opening the upload {filename!r}")

    def open_uri(self, uri: str) -> None:
        """Open the collection ``uri`` names, if the allowlist covers it (see :class:`._connect.ConnectBar`)."""
        self.connect_bar.connect(uri)
