"""``embgeo serve``: the dashboard app (or another notebook) served with Voila, safe to share.

One user on this machine::

    embgeo serve                       # http://127.0.0.1:8866/?token=..., loopback only
    embgeo serve --no-token            # make demo: no token; every user and process on this machine
                                       # (and every proxy in front of it) can run code in a kernel

A room (one server, many participants)::

    embgeo serve --host 0.0.0.0 --max-kernels 32 --idle-timeout 1800

Every page load starts one kernel (one Python process holding its own copy of the data and results).
The defaults keep a shared server alive: kernels idle for ``--idle-timeout`` seconds are shut down
whether or not a browser tab is still connected; at most ``--max-kernels`` live at once, and none
starts while the machine has less than ``--memory-floor`` free (the page over the cap says "server
busy"); the template and theme cannot be changed from the query string; on loopback only Host headers
naming this machine (and each ``--allow-host``) are answered (DNS rebinding); uploads up to
``--max-upload-mb`` pass the websocket; the app's "connect" field opens only database URIs under an
``--allow-uri`` prefix (none by default: the field is off). A token is required unless ``--no-token`` is given, which only
a loopback ``--host`` at ``--base-url /`` without ``--allow-host`` accepts (a proxy in front would hand
every visitor a kernel). The token comes from ``--token-file FILE``, the ``EMBGEO_SERVE_TOKEN``
environment variable or ``--token T`` (which other users see in ``ps`` while the warm-up runs), else
one is generated and printed in the URL.

The numba warm-up (compiling the k-NN and UMAP kernels into the on-disk cache that every kernel
reads) runs in a child process first, so the server does not keep its memory; then this process
replaces itself (``exec``) with the server, :mod:`embgeo._voila_server`.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

from .cli import UsageError, _memory_size, _positive_int, subcommand

#: The app notebook of a source checkout (``pip install -e .``, ``make demo``).
REPO = Path(__file__).resolve().parents[1]
APP_NOTEBOOK = REPO / "notebooks" / "apps" / "dashboard.ipynb"
#: Names that are loopback whatever the resolver says.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
TOKEN_ENV = "EMBGEO_SERVE_TOKEN"  # read (and removed) by embgeo._voila_server
UPLOAD_ENV = "EMBGEO_MAX_UPLOAD_MB"  # read by embgeo.widgets._upload in each kernel
ALLOW_URIS_ENV = "EMBGEO_ALLOW_URIS"  # read by embgeo.widgets._connect in each kernel (one prefix a line)
DEFAULT_IDLE_TIMEOUT_S = 1800
DEFAULT_MEMORY_FLOOR = "1.5GiB"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) is loopback; other names count as remote."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _port(text: str) -> int:
    value = _positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 1 to 65535, got {value}")
    return value


def _floor(text: str) -> int:
    """``--memory-floor``: a size, or 0 for no floor."""
    return 0 if text.strip() in ("0", "off") else _memory_size(text)


def allowed_prefixes(args: argparse.Namespace) -> list[str]:
    """The ``--allow-uri`` prefixes, canonical (a relative path is this directory's, ``..`` and links
    resolved), as the kernels match URIs against them; a UsageError for one that is not a database URI."""
    from embgeo.analysis import EmbeddingInputError
    from embgeo.analysis.io import canonical_uri

    try:
        return list(dict.fromkeys(canonical_uri(p.strip(), prefix=True) for p in getattr(args, "allow_uri", None) or ()))
    except EmbeddingInputError as exc:
        raise UsageError(f"--allow-uri: {exc}") from None


def _configure_serve(p: argparse.ArgumentParser) -> None:
    p.add_argument("notebook", nargs="?", default=None,
                   help="notebook to serve (default: the embgeo dashboard app, notebooks/apps/dashboard.ipynb)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0 for every "
                        "interface, where --no-token is refused)")
    p.add_argument("--port", type=_port, default=8866, help="port (default: 8866)")
    token = p.add_mutually_exclusive_group()
    token.add_argument("--token", default=None,
                       help="require this token (in the URL as ?token=..., or on the login page); other users "
                            f"see it in ps while the warm-up runs: prefer --token-file or {TOKEN_ENV}")
    token.add_argument("--token-file", default=None, metavar="FILE",
                       help="require the token written in FILE (its first line)")
    token.add_argument("--auto-token", action="store_true",
                       help=f"generate a random token and print the URL with it (the default unless {TOKEN_ENV} "
                            "is set)")
    token.add_argument("--no-token", action="store_true",
                       help="no token: one user on a loopback --host, at --base-url /; any user or process on "
                            "this machine can then run code in a kernel (make demo)")
    p.add_argument("--base-url", default="/",
                   help="path the app is served under, e.g. /embgeo/ behind a reverse proxy (default: /)")
    p.add_argument("--allow-host", action="append", default=[], metavar="HOST",
                   help="also answer requests whose Host header is HOST (repeatable), e.g. the public name a "
                        "reverse proxy forwards; once given off loopback, other Host names are refused")
    p.add_argument("--max-kernels", type=_positive_int, default=8,
                   help="most sessions (kernels) at once; the next page load gets 'server busy' (default: 8)")
    p.add_argument("--max-upload-mb", type=_positive_int, default=50,
                   help="largest upload in MiB; the server's websocket limit is raised to fit it (default: 50)")
    p.add_argument("--allow-uri", action="append", default=[], metavar="PREFIX",
                   help="let the app's connect field open database URIs under PREFIX (repeatable), e.g. "
                        "lancedb:///data/lance or qdrant://localhost:6333; paths are resolved, so ../ and links "
                        "out of the folder are refused (default: none, the field is off)")
    p.add_argument("--idle-timeout", type=_positive_int, default=DEFAULT_IDLE_TIMEOUT_S, metavar="SECONDS",
                   help="shut down a kernel idle this long, connected or not (default: 1800)")
    p.add_argument("--cull-interval", type=_positive_int, default=None, metavar="SECONDS",
                   help="how often idle kernels are looked for (default: a quarter of --idle-timeout, "
                        "at most 60)")
    p.add_argument("--memory-floor", type=_floor, default=_memory_size(DEFAULT_MEMORY_FLOOR), metavar="SIZE",
                   help="free memory under which no new session starts, e.g. 2GB; 0 for none "
                        f"(default: {DEFAULT_MEMORY_FLOOR})")
    p.add_argument("--no-warm", action="store_true", help="skip the numba warm-up (first projections are slower)")


def resolve_token(args: argparse.Namespace) -> str | None:
    """The token the server requires: ``--token``, ``--token-file``, ``EMBGEO_SERVE_TOKEN``, else a
    generated one; None only with ``--no-token``, which needs a loopback host at the root path."""
    if args.no_token:
        if not is_loopback(args.host):
            raise UsageError(f"--no-token: --host {args.host} is reachable from other machines; a token is required")
        if base_url(args.base_url) != "/" or args.allow_host:
            raise UsageError("--no-token: --base-url / --allow-host mean a reverse proxy, which would give every "
                             "visitor a kernel without a token; drop --no-token")
        return None
    if args.token is not None:
        if not args.token.strip():
            raise UsageError("--token is empty; give a token, or --auto-token to generate one")
        return args.token
    if args.token_file is not None:
        try:
            with open(args.token_file, encoding="utf-8") as fh:
                token = fh.readline().strip()
        except OSError as exc:
            raise UsageError(f"--token-file {args.token_file}: {exc.strerror or exc}") from None
        if not token:
            raise UsageError(f"--token-file {args.token_file}: the file is empty")
        return token
    if not args.auto_token and os.environ.get(TOKEN_ENV, "").strip():
        return os.environ[TOKEN_ENV].strip()
    return secrets.token_urlsafe(24)


def base_url(text: str) -> str:
    if not text.startswith("/") or "?" in text or "#" in text:
        raise UsageError(f"--base-url must be a path starting with '/', got {text!r}")
    return text.rstrip("/") + "/"


#: The app cell of notebooks/apps/dashboard.ipynb, for installs without the repository's notebooks.
APP_CELL = ("import os\n\nfrom embgeo.widgets import DashboardApp\n\n"
            "app = DashboardApp(initial=os.environ.get(\"EMBGEO_APP_SAMPLE\"))\napp")


def installed_app_notebook(folder: Path) -> Path:
    """The dashboard notebook written to ``folder`` (a wheel install carries no notebooks/)."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "dashboard.ipynb"
    cells = [{"cell_type": "markdown", "id": "title", "metadata": {}, "source": "# embgeo dashboard"},
             {"cell_type": "code", "id": "app", "metadata": {}, "execution_count": None, "outputs": [],
              "source": APP_CELL}]
    nb = {"cells": cells, "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                                      "name": "python3"}, "language_info": {"name": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    return path


def notebook_path(arg: str | None) -> Path:
    if arg is None:
        return APP_NOTEBOOK if APP_NOTEBOOK.is_file() else installed_app_notebook(numba_cache_dir().parent / "app")
    path = Path(arg).resolve()
    if not path.is_file():
        raise FileNotFoundError(errno.ENOENT, "no such notebook", str(path))
    return path


def allowed_hosts(host: str, extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The Host header names the server answers to: on loopback this machine's names, plus ``extra``
    (``--allow-host``) anywhere; empty (any Host, behind the token) off loopback without ``extra``."""
    names = [*LOOPBACK_NAMES, "[::1]", host.strip().lower()] if is_loopback(host) else []
    return list(dict.fromkeys([*names, *(h.strip().lower() for h in extra if h.strip())]))


def cull_interval(args: argparse.Namespace) -> int:
    return args.cull_interval or max(1, min(60, args.idle_timeout // 4))


#: Seconds Voila waits for a cell's output after its reply while it renders the page (see server_command).
IOPUB_TIMEOUT_S = 120
#: Seconds Voila waits for a new kernel's first answer (its default, 60, is short for a room of pages
#: opened at once on a small server; past it the page says its session stopped).
STARTUP_TIMEOUT_S = 180


def server_command(args: argparse.Namespace, notebook: Path) -> list[str]:
    """The server process: Voila (embgeo._voila_server) with the options of this command."""
    hosts = allowed_hosts(args.host, args.allow_host)
    return [sys.executable, "-m", "embgeo._voila_server", str(notebook),
            f"--port={args.port}", f"--Voila.ip={args.host}", "--Voila.port_retries=0", "--no-browser",
            f"--Voila.base_url={base_url(args.base_url)}",
            "--strip_sources=True", "--show_tracebacks=False",
            "--VoilaConfiguration.allow_template_override=NO", "--VoilaConfiguration.allow_theme_override=NO",
            "--VoilaConfiguration.multi_kernel_manager_class=embgeo._voila_server.EmbgeoKernelManager",
            f"--EmbgeoKernelManager.max_kernels={args.max_kernels}",
            f"--EmbgeoKernelManager.memory_floor={args.memory_floor}",
            f"--MappingKernelManager.cull_idle_timeout={args.idle_timeout}",
            f"--MappingKernelManager.cull_interval={cull_interval(args)}",
            "--MappingKernelManager.cull_connected=True",
            # nbclient waits 4 s (its default) after a cell's reply for the cell's output, then renders the page
            # without it: with 8 sessions starting at once on 2 cores the app cell's widget arrived later
            # than that (measured), and those pages showed no dashboard at all
            f"--VoilaExecutor.iopub_timeout={IOPUB_TIMEOUT_S}",
            f"--VoilaExecutor.startup_timeout={STARTUP_TIMEOUT_S}",
            f"--EmbgeoVoila.max_upload_mb={args.max_upload_mb}",
            *(f"--EmbgeoVoila.allowed_hosts={h}" for h in hosts)]


def server_env(args: argparse.Namespace, cache: Path) -> dict[str, str]:
    """The environment of the warm-up child and the server, which every kernel inherits: the numba cache,
    the upload limit and the allowlisted URI prefixes (the token is added after the warm-up)."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), UPLOAD_ENV: str(args.max_upload_mb)}
    env.pop(TOKEN_ENV, None)
    env.pop(ALLOW_URIS_ENV, None)  # only what this command allows, never one inherited from the shell
    prefixes = allowed_prefixes(args)
    if prefixes:
        env[ALLOW_URIS_ENV] = "\n".join(prefixes)
    return env


def numba_cache_dir() -> Path:
    """NUMBA_CACHE_DIR if set; the checkout's .cache/numba (shared with the tests); else ~/.cache/embgeo."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return Path(os.environ["NUMBA_CACHE_DIR"])
    if (REPO / "pyproject.toml").is_file():
        return REPO / ".cache" / "numba"
    return Path.home() / ".cache" / "embgeo" / "numba"


def warm_numba() -> float:
    """Compile (and cache) numba's kernels: a tiny geometry report (k-NN folds, distance refinement,
    the shared sample search, cosine vs dot) and a tiny UMAP fit; returns seconds. Run in a child
    process by ``embgeo serve``."""
    import numpy as np

    from embgeo.analysis import geometry_report, project

    t0 = time.perf_counter()
    x = np.random.default_rng(0).normal(size=(300, 16)).astype(np.float32)
    geometry_report(x, k=5, sample=50)
    project(x, "umap", 2, metric="cosine")
    return time.perf_counter() - t0


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    with socket.socket(family) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as tornado binds
        try:
            s.bind((host.strip("[]"), port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UsageError(f"port {port} on {host} is in use; pick another with --port") from None
            if exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
                raise UsageError(f"--host {host}: not an address of this machine") from None
            raise


def display_url(args: argparse.Namespace, token: str | None) -> str:
    host = args.host.strip()
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{args.port}{base_url(args.base_url)}" + (f"?token={urllib.parse.quote(token, safe='')}" if token else "")


@subcommand("serve", help="serve the dashboard app with Voila (token, kernel cap, idle culling, upload limit)",
            configure=_configure_serve)
def _run_serve(args: argparse.Namespace) -> int:
    token = resolve_token(args)
    allowed_prefixes(args)  # a bad --allow-uri is a usage error before anything starts
    notebook = notebook_path(args.notebook)
    command = server_command(args, notebook)
    _check_port_free(args.host, args.port)
    cache = numba_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    env = server_env(args, cache)  # no token: the warm-up child does not need it; the server gets the resolved one
    if not args.no_warm:
        print(f"embgeo: warming numba in a child process (cache in {cache}) ...", flush=True)
        warm = subprocess.run([sys.executable, "-m", "embgeo._commands_serve", "--warm"], env=env)
        if warm.returncode != 0:
            print("embgeo: warning: the numba warm-up failed; the first projections will be slower",
                  file=sys.stderr, flush=True)
    if token is not None:
        env[TOKEN_ENV] = token
    generated = token is not None and args.token is None and args.token_file is None and (
        args.auto_token or not os.environ.get(TOKEN_ENV, "").strip())
    if generated:
        print("embgeo: generated a token (give --token-file FILE to choose one, or --no-token for one user on "
              "this machine)", flush=True)
    print(f"embgeo dashboard: {display_url(args, token)}  (Ctrl-C to stop)", flush=True)
    sys.stderr.flush()
    # this process becomes the server: nothing of the CLI (it imported embgeo.analysis, ~230 MiB RSS)
    # stays resident, and Ctrl-C or SIGTERM (make, a supervisor) reach Voila, which shuts its kernels down
    os.execve(sys.executable, command, env)
    return 0  # not reached


if __name__ == "__main__" and sys.argv[1:] == ["--warm"]:
    print(f"embgeo: numba warm-up done in {warm_numba():.1f} s", flush=True)
