"""Serve the embgeo dashboard (notebooks/apps/dashboard.ipynb) for one user on this machine: ``make demo``.

Usage::

    python scripts/serve_app.py [--port 8866] [--no-warm] [any other ``embgeo serve`` option]

This is ``embgeo serve --no-token``: loopback only (127.0.0.1, Host headers naming other machines
refused), no token, idle kernels culled after 30 minutes, at most 8 sessions, uploads up to 50 MiB,
and the numba warm-up run in a child process first (``.cache/numba`` in the repository), so the
kernels load compiled code instead of stalling on the first UMAP projection. Without a token, every
user and every process on this machine can open the app, and so run code in a kernel as you: fine on
your own laptop, not on a shared machine (give ``--auto-token`` or ``--token-file FILE`` there; any
token, host, base-url or allow-host option turns ``--no-token`` off). To share the app with a room, see
the README's "Share it" section (``embgeo serve --host 0.0.0.0 ...``).
"""

from __future__ import annotations

import sys

#: Options after which the demo's ``--no-token`` is not added: they ask for a token or for a setup
#: (another host, a proxy) where ``embgeo serve`` refuses to run without one.
NOT_THE_DEMO = ("--no-token", "--token", "--token-file", "--auto-token", "--host", "--base-url", "--allow-host")


def demo_argv(argv: list[str]) -> list[str]:
    """``embgeo serve`` arguments: ``argv``, with ``--no-token`` added unless an option above is given."""
    given = {a.split("=", 1)[0] for a in argv}
    return ["serve", *argv] if given & set(NOT_THE_DEMO) else ["serve", "--no-token", *argv]


def main(argv: list[str] | None = None) -> int:
    from embgeo.cli import main as embgeo_main

    return embgeo_main(demo_argv(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
