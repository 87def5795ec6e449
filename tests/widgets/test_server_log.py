"""Errors of the widgets go to the server's log through logging, never to the kernel's stderr (which
ipykernel forwards to the browser); the page keeps its one-line message, which repeats an input
problem and says nothing of an unexpected error's text (server paths, file names, data)."""

import io
import logging
import os
import sys

import numpy as np
import pytest

from embgeo.analysis import EmbeddingInputError
from embgeo.widgets import _logging
from embgeo.widgets._tasks import TaskRunner
from embgeo.widgets.app import MAX_UPLOAD_BYTES, UPLOAD_ENV, load_upload, max_upload_bytes


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def records():
    handler = Records()
    _logging.log.addHandler(handler)
    yield handler.records
    _logging.log.removeHandler(handler)


def _boom():
    raise RuntimeError("boom in /srv/secret/path.py")


def test_a_failing_task_logs_through_logging_and_writes_nothing_to_stderr(records, capsys):
    runner = TaskRunner(background=False)
    runner.submit("overview", _boom)
    assert runner.error == "Something went wrong (RuntimeError); the details are in the server&#x27;s log."
    assert "/srv/secret" not in runner.error and runner.status == "overview failed"
    assert runner.error.count("\n") == 0
    out, err = capsys.readouterr()
    assert err == "" and out == ""
    [record] = records
    assert record.levelno == logging.ERROR and record.name == "embgeo.widgets"
    assert record.exc_info and record.exc_info[0] is RuntimeError
    assert "overview failed" in record.getMessage() and "boom in /srv/secret/path.py" in record.getMessage()

    runner.submit("loading", lambda: (_ for _ in ()).throw(EmbeddingInputError("3 rows with <NaN>")))
    assert runner.error == "Input problem: 3 rows with &lt;NaN&gt;"  # input problems: shown, escaped
    assert records[-1].levelno == logging.WARNING and not records[-1].exc_info  # and logged in one line
    assert capsys.readouterr().err == ""

    def bad_done(result):
        raise ValueError("cannot show /srv/secret/cache.npy")

    runner.submit("render", lambda: 1, done=bad_done)
    assert runner.error == "Something went wrong (ValueError); the details are in the server&#x27;s log."
    assert records[-1].exc_info[0] is ValueError and "/srv/secret/cache.npy" in records[-1].getMessage()
    assert capsys.readouterr().err == ""


def test_the_app_shows_input_problems_and_hides_unexpected_errors(records, monkeypatch):
    from embgeo.widgets import app as app_module

    monkeypatch.delenv(UPLOAD_ENV, raising=False)
    app = app_module.DashboardApp(app_module.SYNTHETIC, background=False)
    # a file far over the limit never reaches the kernel (the server drops the websocket): said up front
    assert "Upload (<= 50 MB)" == app.upload.description and "At most 50 MB" in app.children[1].value
    app.open_upload("notes.txt", b"hello")
    assert "unsupported file type .txt" in app.message.value  # the user's own mistake, said plainly
    monkeypatch.setattr(app_module, "load_upload", lambda *a: _boom())
    app.open_upload("v.npy", b"")
    assert "Something went wrong (RuntimeError)" in app.message.value and "/srv/secret" not in app.message.value
    assert records[-1].exc_info[0] is RuntimeError and "boom in /srv/secret/path.py" in records[-1].getMessage()


class FakeKernelStderr:
    """ipykernel's OutStream as far as logging cares: writes go to the browser; the real descriptor 2
    is kept in ``_original_stdstream_copy``."""

    def __init__(self, fd):
        self._original_stdstream_copy = fd
        self.written = []

    def write(self, text):
        self.written.append(text)
        return len(text)

    def flush(self):
        pass


def test_in_a_kernel_the_traceback_goes_to_the_server_descriptor_not_to_the_browser(monkeypatch):
    read_fd, write_fd = os.pipe()
    fake = FakeKernelStderr(write_fd)
    monkeypatch.setattr(sys, "stderr", fake)
    monkeypatch.setattr(_logging, "_server_handler", None)
    root = logging.getLogger()
    browser_handler = logging.StreamHandler(fake)  # as if the notebook had called logging.basicConfig()
    root.addHandler(browser_handler)
    try:
        runner = TaskRunner(background=False)
        runner.submit("projection", _boom)
        _logging._server_handler.flush()
        server_log = os.read(read_fd, 1 << 16).decode()
    finally:
        root.removeHandler(browser_handler)
        if _logging._server_handler is not None:
            _logging.log.removeHandler(_logging._server_handler)
            _logging._server_handler.stream.close()
        _logging.log.propagate = True
        os.close(read_fd)
        os.close(write_fd)
    assert "projection failed: RuntimeError" in server_log and "Traceback (most recent call last)" in server_log
    assert "[embgeo ERROR" in server_log
    assert fake.written == []  # nothing reached the stream that ipykernel forwards
    assert "boom in /srv/secret/path.py" in server_log and "/srv/secret" not in runner.error


def test_the_upload_limit_follows_the_server(monkeypatch):
    monkeypatch.delenv(UPLOAD_ENV, raising=False)
    assert max_upload_bytes() == MAX_UPLOAD_BYTES == 50 * 2**20
    monkeypatch.setenv(UPLOAD_ENV, "200")  # embgeo serve --max-upload-mb 200
    assert max_upload_bytes() == 200 * 2**20
    monkeypatch.setenv(UPLOAD_ENV, "nonsense")
    assert max_upload_bytes() == MAX_UPLOAD_BYTES
    with pytest.raises(EmbeddingInputError, match="the limit is 1 MB"):
        load_upload("v.npy", b"\0" * (2**20 + 1), limit=2**20)


def test_the_upload_button_refuses_a_file_over_the_limit_before_it_is_sent(monkeypatch):
    """The browser checks the size (the server would drop the websocket on a larger message): the kernel
    hears only the file's name and size, and the page says what the limit is."""
    from embgeo.widgets import app as app_module

    monkeypatch.delenv(UPLOAD_ENV, raising=False)
    app = app_module.DashboardApp(app_module.SYNTHETIC, background=False)
    assert app.upload.max_bytes == MAX_UPLOAD_BYTES and app.upload.accept == ".npy,.parquet,.csv"
    app.upload._message(app.upload, {"event": "too_big", "name": "huge.npy", "size": 80 * 2**20}, [])
    assert "huge.npy is 80.0 MB; the limit is 50 MB" in app.message.value
    assert app.dashboard.controller.data.n == 3000  # the set shown is kept
    x = np.random.default_rng(0).normal(size=(30, 5)).astype(np.float32)
    buffer = io.BytesIO()
    np.save(buffer, x)
    app.upload._message(app.upload, {"event": "file", "name": "v.npy", "size": buffer.tell()},
                        [memoryview(buffer.getvalue())])
    assert app.message.value == "" and app.dashboard.controller.data.n == 30
    app.upload._message(app.upload, {"event": "unreadable", "name": "v.npy", "error": "NotReadableError"}, [])
    assert "the browser could not read the file (NotReadableError)" in app.message.value


def test_the_shift_tab_reads_uploaded_queries_with_the_same_checks(monkeypatch):
    from embgeo.widgets import Dashboard

    monkeypatch.setenv(UPLOAD_ENV, "1")
    x = np.random.default_rng(0).normal(size=(80, 6)).astype(np.float32)
    d = Dashboard(x, background=False)
    assert d.shift_upload.max_bytes == 2**20 and ".npz" in d.shift_upload.accept
    buffer = io.BytesIO()
    np.savez(buffer, vectors=x[:20] + 1)
    d.shift_upload._message(d.shift_upload, {"event": "file", "name": "q.npz"}, [memoryview(buffer.getvalue())])
    assert d.error.value == "" and d.shift_choice.value == ("given", "q.npz")
    d.shift_upload._message(d.shift_upload, {"event": "too_big", "name": "q.npy", "size": 3 * 2**20}, [])
    assert "q.npy is 3.0 MB; the limit is 1 MB" in d.error.value
