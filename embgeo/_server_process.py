"""A server command run as its own process group until it listens, and always torn down with it.

The tests and benchmarks that drive the real server start it the way users do (``embgeo serve``, or
``voila`` itself) as a subprocess: :func:`listening_server` starts the command in a new session, waits
until it accepts connections on its loopback port (or says why it did not: it exited, or the time ran
out, with the log's tail), and on leaving stops the whole group -- the server and every kernel it
started -- with SIGTERM, then SIGKILL if it lingers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator, Sequence


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def listening_server(cmd: Sequence[str], *, port: int, log: Path, env: dict | None = None,
                     cwd: Path | None = None, timeout: float = 120.0) -> Iterator[subprocess.Popen]:
    """Run ``cmd`` (output to ``log``) until it listens on 127.0.0.1:``port``; yield its process.

    Raises RuntimeError, naming the log, when the command exits or does not listen within ``timeout``
    seconds. The process group is stopped on leaving, whatever happened.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as fh:
        proc = subprocess.Popen(list(cmd), cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{cmd[0]} ... exited with {proc.returncode}; see {log}:\n{tail}")
            with contextlib.suppress(OSError):
                with socket.create_connection(("127.0.0.1", port), timeout=2):
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{' '.join(cmd[:4])} ... did not listen on port {port} within {timeout:.0f} s; "
                                   f"see {log}")
            time.sleep(0.3)
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
