"""The server process of ``embgeo serve``: Voila, with the settings a shared server needs.

``embgeo serve`` (:mod:`embgeo._commands_serve`) checks its options and starts this module as
``python -m embgeo._voila_server NOTEBOOK --flags...``. On top of Voila it adds, each as a traitlets
option set on the command line:

* a cap on live kernels and a memory floor (:class:`EmbgeoKernelManager`): a page that would start
  one kernel too many, or start one while the machine has less free memory than the floor, gets a
  "server busy" page (HTTP 503, ``Retry-After``) and no kernel;
* a Host allowlist (:attr:`EmbgeoVoila.allowed_hosts`, set on loopback): any request whose Host
  header names another host is refused with 403 before a handler runs (a DNS-rebinding page on
  ``evil.example:PORT`` reaches the loopback server with that Host), and jupyter-server's own check
  (``allow_remote_access=False``, ``local_hostnames``), which Voila turns off, is turned back on;
* uploads up to :attr:`EmbgeoVoila.max_upload_mb`: tornado's ``websocket_max_message_size`` (10 MiB
  by default, after which the server closes the kernel's websocket and the upload vanishes) and the
  HTTP server's ``max_body_size``/``max_buffer_size`` (100 MB) are raised to fit one such file;
* a refusal (400) of ``?template=`` and ``?theme=`` (the overrides are off; Voila ignores them too,
  with ``allow_template_override=NO``), before any kernel starts;
* ``GET /api/kernels`` (authenticated, read-only): the live kernels, as jupyter-server lists them.

Culling (``MappingKernelManager.cull_idle_timeout`` and friends), the token and the template settings
are Voila's and jupyter-server's own options, passed by ``embgeo serve``.
"""

from __future__ import annotations

import functools
import html
import json
import os
import sys

import tornado.web
from tornado.log import app_log
from jupyter_server.base.handlers import APIHandler
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from jupyter_server.utils import url_path_join
from traitlets import Integer, List, Unicode
from voila.app import Voila
from voila.tornado.handler import TornadoVoilaHandler

#: The token travels in the environment, not on the command line (which ``ps`` shows every user).
TOKEN_ENV = "EMBGEO_SERVE_TOKEN"
#: Bytes a widget message carries besides the file itself (JSON header, name, type, dates), with room.
MESSAGE_OVERHEAD = 2 * 2**20
#: tornado's defaults for the HTTP server's body and read buffer; never lowered.
TORNADO_BUFFER_DEFAULT = 100 * 2**20
RETRY_AFTER_S = 60


class ServerBusy(Exception):
    """A new session refused: the kernel cap is reached or free memory is under the floor."""


def available_memory() -> int | None:
    """Bytes of memory available to new processes (psutil, else /proc/meminfo), None if unknown."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # psutil missing or failing: the kernel's own reading
        try:
            with open("/proc/meminfo") as fh:
                for line in fh:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
    return None


class EmbgeoKernelManager(AsyncMappingKernelManager):
    """jupyter-server's kernel manager with a cap on kernels and a memory floor for new ones."""

    max_kernels = Integer(0, config=True, help="Most kernels alive at once (0: no cap).")
    memory_floor = Integer(0, config=True, help="Bytes of free memory under which no new kernel starts (0: off).")

    _starting = 0  # kernels whose start is under way: not in _kernels yet, but holding a slot

    def refusal(self) -> str | None:
        """Why a new kernel may not start now, or None."""
        in_use = len(self._kernels) + self._starting
        if self.max_kernels and in_use >= self.max_kernels:
            return f"all {self.max_kernels} sessions are in use"
        if self.memory_floor:
            free = available_memory()
            if free is not None and free < self.memory_floor:
                return (f"the machine has {free / 2**30:.1f} GiB of memory free, under the "
                        f"{self.memory_floor / 2**30:.1f} GiB this server keeps in reserve")
        return None

    async def start_kernel(self, *args, **kwargs):
        # check and reserve with no await in between: the server runs on one event loop, so two
        # pages arriving together cannot both take the last slot
        reason = self.refusal()
        if reason is not None:
            self.log.warning("embgeo: refused a new session: %s", reason)
            raise ServerBusy(reason)
        self._starting += 1
        try:
            return await super().start_kernel(*args, **kwargs)
        finally:
            self._starting -= 1


def upload_limits(max_upload_mb: int) -> dict[str, int]:
    """The tornado limits that let one upload of ``max_upload_mb`` MiB through: the websocket message
    size (an application setting) and the HTTP server's body and read-buffer sizes (never below
    tornado's defaults)."""
    message = max_upload_mb * 2**20 + MESSAGE_OVERHEAD
    return {"websocket_max_message_size": message,
            "max_body_size": max(TORNADO_BUFFER_DEFAULT, message),
            "max_buffer_size": max(TORNADO_BUFFER_DEFAULT, message + MESSAGE_OVERHEAD)}


def _page(title: str, text: str) -> str:
    return ("<!doctype html><html><head><meta charset='utf-8'><title>embgeo: "
            f"{html.escape(title)}</title></head><body style='font-family:sans-serif;max-width:40em;"
            f"margin:4em auto;color:#222'><h1 style='font-size:1.4em'>embgeo: {html.escape(title)}</h1>"
            f"<p class='embgeo-server-message'>{html.escape(text)}</p></body></html>")


def busy_page(reason: str) -> str:
    """The page a session over the cap (or under the memory floor) gets instead of the app."""
    return _page("server busy", f"The server is busy: {reason}. No session was started for you; "
                                "try again in a minute or two (reload this page).")


class EmbgeoVoilaHandler(TornadoVoilaHandler):
    """Voila's page handler, answering with the busy page when no kernel may start, and refusing
    template/theme overrides before a kernel starts."""

    @tornado.web.authenticated
    async def get(self, path=None):
        overrides = sorted({"template", "theme"} & set(self.request.arguments))
        if overrides:
            self.set_status(400)
            self.finish(_page("bad request", f"This server does not take {' or '.join(overrides)} from the "
                                             "address; open it without a query string."))
            return
        try:
            async for snippet in self.get_generator(path=path):
                self.write(snippet)
                self.flush()
        except ServerBusy as exc:  # raised by start_kernel, before any byte of the page is written
            self.set_status(503)
            self.set_header("Retry-After", str(RETRY_AFTER_S))
            self.finish(busy_page(str(exc)))


class KernelListHandler(APIHandler):
    """``GET /api/kernels``: the live kernels (id, execution state, last activity, connections)."""

    @tornado.web.authenticated
    async def get(self):
        km = self.kernel_manager
        self.finish(json.dumps([km.kernel_model(kid) for kid in km.list_kernel_ids()], default=str))


class ForbiddenHostHandler(tornado.web.RequestHandler):
    """Every request whose Host header is not on the allowlist: 403, nothing else runs."""

    def prepare(self):
        app_log.warning("embgeo: refused a request for Host %r (not in the allowlist)", self.request.host)
        self.set_status(403)
        self.finish(_page("forbidden", "This server answers only to its own address."))


def host_pattern(names: list[str]) -> str:
    """A tornado host pattern matching every host name except ``names`` (compared without the port,
    lower case, as tornado's ``request.host_name``)."""
    import re

    alternatives = "|".join(re.escape(n.lower()) for n in names)
    return rf"^(?!(?:{alternatives})$).*$"


class EmbgeoVoila(Voila):
    """Voila with an upload limit that the server accepts and a Host allowlist; see the module docstring."""

    max_upload_mb = Integer(50, config=True, help="Largest upload in MiB (the websocket limit is raised to fit it).")
    allowed_hosts = List(Unicode(), config=True,
                         help="Host names accepted in the Host header (empty: any; then a token guards the server).")

    def init_handlers(self):
        handlers = super().init_handlers()  # called by Voila.start once self.app exists
        limits = upload_limits(self.max_upload_mb)
        message_limit = self.app.settings["websocket_max_message_size"] = limits.pop("websocket_max_message_size")
        self.app.listen = functools.partial(self.app.listen, **limits)  # Voila.listen calls app.listen(port, ip)
        if self.allowed_hosts:
            self.app.settings["allow_remote_access"] = False
            self.app.settings["local_hostnames"] = [h for h in self.allowed_hosts if not _is_ip(h)]
            # checked before any handler: static files and the login page included
            self.app.add_handlers(host_pattern(self.allowed_hosts), [(r".*", ForbiddenHostHandler)])
        handlers = [(h[0], EmbgeoVoilaHandler, *h[2:]) if h[1] is TornadoVoilaHandler else h for h in handlers]
        handlers.insert(0, (url_path_join(self.server_url, r"/api/kernels"), KernelListHandler))
        self.log.info("embgeo: uploads up to %d MiB (websocket messages up to %d bytes); Host allowlist: %s",
                      self.max_upload_mb, message_limit, ", ".join(self.allowed_hosts) or "off (token)")
        return handlers


def _is_ip(name: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def main(argv: list[str] | None = None) -> None:
    token = os.environ.pop(TOKEN_ENV, None)  # popped: the kernels inherit this process's environment
    EmbgeoVoila.launch_instance(argv if argv is not None else sys.argv[1:],
                                **({} if token is None else {"token": token}))


if __name__ == "__main__":
    # run the copy importable as embgeo._voila_server: the kernel manager class is configured by that
    # name, and its ServerBusy must be the one the page handler catches
    from embgeo._voila_server import main as _main

    _main()
