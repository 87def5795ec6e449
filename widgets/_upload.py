"""Uploads: a file button that checks the size in the browser, and the reader of the uploaded bytes.

ipywidgets' ``FileUpload`` sends the whole file through the kernel's websocket before the kernel sees
it, so a file over the server's message limit closed the websocket: nothing happened on the page, the
page reconnected and the button stayed dead. :class:`CheckedUpload` (an anywidget) looks at the file's
size in the browser first and sends only a file within :func:`max_upload_bytes`, which ``embgeo serve
--max-upload-mb`` matches with the server's websocket limit; a larger one is named in a message, and
the button keeps working.
"""

from __future__ import annotations

import os
import tempfile

import anywidget
import traitlets

from embgeo.analysis import EmbeddingInputError

#: Largest upload accepted by default, in bytes. ``embgeo serve --max-upload-mb N`` sets
#: :data:`UPLOAD_ENV` in every kernel it starts and raises the server's websocket limit to match, so
#: the widget and the server agree.
MAX_UPLOAD_BYTES = 50 * 2**20
UPLOAD_ENV = "EMBGEO_MAX_UPLOAD_MB"
UPLOAD_TYPES = (".npy", ".parquet", ".csv")


def max_upload_bytes() -> int:
    """The upload limit: ``EMBGEO_MAX_UPLOAD_MB`` MiB when the server set it, else :data:`MAX_UPLOAD_BYTES`."""
    try:
        mib = int(os.environ.get(UPLOAD_ENV, ""))
    except ValueError:
        return MAX_UPLOAD_BYTES
    return mib * 2**20 if mib > 0 else MAX_UPLOAD_BYTES


def too_big(filename: str, size: int, limit: int) -> EmbeddingInputError:
    """The error for a file of ``size`` bytes over ``limit``."""
    return EmbeddingInputError(f"{filename} is {size / 2**20:.1f} MB; the limit is {limit // 2**20} MB (load "
                               "larger files in a notebook with embgeo.analysis.io.load)")


def load_upload(filename: str, content: bytes, limit: int | None = None, types=UPLOAD_TYPES):
    """An EmbeddingSet from uploaded bytes (at most ``limit``, default :func:`max_upload_bytes`), or an
    EmbeddingInputError saying what is wrong."""
    limit = max_upload_bytes() if limit is None else limit
    suffix = os.path.splitext(filename)[1].lower()
    if suffix not in types:
        raise EmbeddingInputError(f"{filename}: unsupported file type {suffix or '(none)'}; "
                                  f"upload one of {', '.join(types)}")
    if len(content) > limit:
        raise too_big(filename, len(content), limit)
    from embgeo.analysis import io

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "upload" + suffix)
        with open(path, "wb") as fh:
            fh.write(content)
        try:
            return io.load(path, name=filename, mmap=False)
        except EmbeddingInputError as exc:
            raise EmbeddingInputError(_named(str(exc), path, filename)) from None
        except Exception as exc:  # a corrupt file: say so plainly
            raise EmbeddingInputError(_named(f"could not be read as {suffix}: {exc}", path, filename)) from None


def _named(message: str, path: str, filename: str) -> str:
    """``message`` about the upload's temporary ``path``, naming the user's ``filename`` once: the
    loaders name the file themselves, and prefixing it again read "words.npy: words.npy: ..."."""
    message = message.replace(path, filename)
    return message if filename in message else f"{filename}: {message}"


_ESM = """
function render({ model, el }) {
  const input = document.createElement("input");
  input.type = "file";
  input.style.display = "none";
  const button = document.createElement("button");
  // ipywidgets' own classes: the same look as FileUpload in JupyterLab and Voila
  button.className = "jupyter-widgets jupyter-button widget-button widget-upload";
  const label = () => {
    button.textContent = model.get("description");
    input.accept = model.get("accept");
  };
  label();
  model.on("change:description", label);
  model.on("change:accept", label);
  button.addEventListener("click", () => input.click());
  input.addEventListener("change", async () => {
    const file = input.files[0];
    input.value = "";  // choosing the same file again fires again
    if (!file) return;
    if (file.size > model.get("max_bytes")) {  // never sent: the server would drop the connection
      model.send({ event: "too_big", name: file.name, size: file.size });
      return;
    }
    button.disabled = true;
    button.textContent = "Sending " + file.name + "...";
    try {
      const buffer = await file.arrayBuffer();
      model.send({ event: "file", name: file.name, size: file.size }, undefined, [buffer]);
    } catch (err) {
      model.send({ event: "unreadable", name: file.name, error: String(err) });
    } finally {
      button.disabled = false;
      label();
    }
  });
  el.append(button, input);
}
export default { render };
"""


class CheckedUpload(anywidget.AnyWidget):
    """A file button that sends a file only when it is within ``max_bytes`` (see the module docstring).

    Parameters
    ----------
    on_file : callable
        ``on_file(filename, content)`` with the file's bytes.
    on_error : callable
        ``on_error(EmbeddingInputError)`` for a file over the limit or one the browser could not read.
    description, accept, max_bytes
        The button's label, the file types offered (``".npy,.csv"``) and the size limit in bytes.
    """

    _esm = _ESM
    description = traitlets.Unicode("Upload").tag(sync=True)
    accept = traitlets.Unicode("").tag(sync=True)
    max_bytes = traitlets.Int(MAX_UPLOAD_BYTES).tag(sync=True)

    def __init__(self, on_file, on_error, **kwargs):
        super().__init__(**kwargs)
        self._on_file, self._on_error = on_file, on_error
        self.on_msg(self._message)

    def _message(self, _widget, content, buffers) -> None:
        event, name = content.get("event"), str(content.get("name", "the file"))
        if event == "file" and buffers:
            self._on_file(name, bytes(buffers[0]))
        elif event == "too_big":
            self._on_error(too_big(name, int(content.get("size", 0)), self.max_bytes))
        elif event == "unreadable":
            self._on_error(EmbeddingInputError(f"{name}: the browser could not read the file "
                                               f"({content.get('error', 'no reason given')})"))
