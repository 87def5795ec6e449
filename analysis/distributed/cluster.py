"""Connecting to a Dask cluster: a scheduler address, a ``distributed.Client``, or ``local:N`` for a
``LocalCluster`` of N single-threaded worker processes started here (and closed with the context)."""

from __future__ import annotations

import contextlib
import os
import re

from .._core import EmbeddingInputError

#: What to install when Dask is missing.
DASK_EXTRA = "pip install 'embgeo[dask]'"
#: A worker process with one Dask thread runs one task at a time; its kernels (numba's pool, BLAS,
#: torch's OpenMP) must then use one thread too, or N workers start N x cores threads that fight for
#: the cores (2 workers on 2 cores: 36 pair tasks took 20 % longer with each kernel using both).
ONE_THREAD_ENV = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                  "MKL_NUM_THREADS": "1"}
#: Seconds ``connect`` waits for a scheduler to have at least one worker. Tasks given to a scheduler
#: with none wait for ever, with no message, so an empty cluster is an error instead.
WORKER_WAIT_S = 30.0


def local_cluster(workers: int):
    """A ``distributed.LocalCluster`` of ``workers`` processes with one thread each (and one-threaded
    kernels, :data:`ONE_THREAD_ENV`); no fixed dashboard port."""
    _, distributed = require_dask()
    return distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                    dashboard_address=":0", env=ONE_THREAD_ENV)


def require_dask():
    """Import and return ``(dask, distributed)``, or raise a clear error naming the extra."""
    try:
        import dask
        import distributed
    except ImportError as exc:
        raise EmbeddingInputError(f"the Dask engine needs Dask and dask.distributed, which are not installed "
                                  f"({exc.name} is missing); install the optional extra: {DASK_EXTRA}") from None
    return dask, distributed


@contextlib.contextmanager
def connect(cluster):
    """A ``distributed.Client`` for ``cluster``, closed on exit if this call started it.

    Parameters
    ----------
    cluster : distributed.Client, str
        A client (used as it is, not closed), a scheduler address (``tcp://host:8786``, ``host:8786``),
        or ``"local:N"``: a ``LocalCluster`` of N worker processes with one thread each
        (:func:`local_cluster`), started here and shut down on exit. Workers of a real cluster should
        run their kernels with as many threads as their Dask threads (``NUMBA_NUM_THREADS``,
        ``OMP_NUM_THREADS``: see the README's recipe).

    Yields
    ------
    distributed.Client

    Raises
    ------
    EmbeddingInputError
        When Dask is missing, the address cannot be reached, or the scheduler has no worker within
        :data:`WORKER_WAIT_S` seconds (tasks would wait for ever).
    """
    _, distributed = require_dask()
    if isinstance(cluster, distributed.Client):
        _require_workers(cluster, "the client's scheduler")
        yield cluster
        return
    if not isinstance(cluster, str) or not cluster.strip():
        raise EmbeddingInputError(f"cluster must be a distributed.Client, a scheduler address or 'local:N', "
                                  f"got {cluster!r}")
    local = re.fullmatch(r"local:(\d+)", cluster.strip())
    if local:
        workers = int(local.group(1))
        if not 1 <= workers <= 512:
            raise EmbeddingInputError(f"local:N needs 1 <= N <= 512 workers, got {workers}")
        # distributed's nannies write their workers' settings (OMP_NUM_THREADS=1, PYTHONHASHSEED, ...)
        # into this process's own environment before spawning them, and leave them there: every
        # process started here afterwards (a subprocess, a notebook's shell) would inherit them. They
        # are the workers' business, so the caller's environment is put back.
        saved = dict(os.environ)
        try:
            with local_cluster(workers) as lc, distributed.Client(lc) as client:
                _restore_environment(saved)
                yield client
        finally:
            _restore_environment(saved)
        return
    try:
        client = distributed.Client(cluster, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise EmbeddingInputError(f"could not reach a Dask scheduler at {cluster!r}: {exc}") from None
    with client:
        _require_workers(client, f"the Dask scheduler at {cluster!r}")
        yield client


def _require_workers(client, where: str) -> None:
    """Wait up to :data:`WORKER_WAIT_S` for a worker; raise, naming the scheduler, if none joins."""
    if client.scheduler_info().get("workers"):
        return
    try:
        client.wait_for_workers(1, timeout=WORKER_WAIT_S)
    except TimeoutError:
        address = getattr(client.scheduler, "address", "ADDRESS")
        raise EmbeddingInputError(
            f"{where} has no workers (none joined within {WORKER_WAIT_S:g} s), so no task could run; start "
            f"some with `dask worker {address}`, or use --dask local:N for a cluster on this machine") from None


def _restore_environment(saved: dict) -> None:
    if dict(os.environ) != saved:
        os.environ.clear()
        os.environ.update(saved)
