"""Serve the embgeo dashboard (notebooks/apps/dashboard.ipynb) for one user on this machine: ``make demo``.

Usage::

    python scripts/serve_app.py [--port 8866] [--no-warm] [any other ``embgeo serve`` option]

This is ``embgeo serve`` with its defaults: loopback only (127.0.0.1, Host headers naming other
machines refused), no token, idle kernels culled after 30 minutes, at most 8 sessions, uploads up to
50 MiB, and the numba warm-up run in a child process first (``.cache/numba`` in the repository), so
the kernels load compiled code instead of stalling on the first UMAP projection. To share the app
with a room, see the README's "Share it" section (``embgeo serve --host 0.0.0.0 ...``).
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from embgeo.cli import main as embgeo_main

    argv = sys.argv[1:] if argv is None else argv
    return embgeo_main(["serve", *argv])


if __name__ == "__main__":
    sys.exit(main())
